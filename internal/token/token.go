// Package token issues and checks ID tokens: short-lived JWTs signed with
// Ed25519 (EdDSA). Signing keys live in the database, their private halves
// sealed with the server's encryption key, so every instance signs and
// verifies with the same set; /.well-known/jwks.json publishes the public
// halves. Rotating adds a key: tokens signed with older keys verify until
// they expire.
package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
)

// Claims are an ID token's claims. ACR, AMR and AuthTime copy the
// session's assurance (OpenID Connect Core 2): acr is "aal1" or "aal2".
type Claims struct {
	jwt.RegisteredClaims
	SessionID string           `json:"sid"`
	ACR       string           `json:"acr"`
	AMR       []string         `json:"amr"`
	AuthTime  *jwt.NumericDate `json:"auth_time"`
}

// ACR names an assurance level as the acr claim carries it.
func ACR(aal int) string { return fmt.Sprintf("aal%d", aal) }

// Signer issues and verifies ID tokens.
type Signer struct {
	Store    tessera.AccountStore
	Keys     *secret.Keyring
	Issuer   string        // "iss"
	Audience string        // "aud"
	TTL      time.Duration // lifetime of an ID token
	Now      func() time.Time

	mu       sync.Mutex
	loaded   []*key
	loadedAt time.Time
}

// minForcedReload spaces out the reloads that unknown key ids force, so
// tokens with made-up kids cannot make every request read the key table.
const minForcedReload = 5 * time.Second

type key struct {
	id      string
	public  ed25519.PublicKey
	private ed25519.PrivateKey
	created time.Time
}

// reloadEvery is how often the key set is read again, so a key rotated on
// another instance is used and trusted here soon after.
const reloadEvery = time.Minute

func sealAD(id string) []byte { return []byte("signing-key\x00" + id) }

// Rotate creates a new signing key, which signs from now on (on other
// instances within a minute).
func (s *Signer) Rotate(ctx context.Context) (*tessera.SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	id := uuid.NewString()
	sealed, err := s.Keys.Seal(priv.Seed(), sealAD(id))
	if err != nil {
		return nil, err
	}
	// The newest key signs, so a new key must sort after every existing
	// one even when the clock has not moved (or moved back).
	created := s.Now().UTC().Truncate(time.Millisecond)
	if existing, err := s.Store.SigningKeys(ctx); err != nil {
		return nil, err
	} else if len(existing) > 0 && !created.After(existing[0].CreatedAt) {
		created = existing[0].CreatedAt.Add(time.Millisecond)
	}
	k := &tessera.SigningKey{ID: id, Algorithm: "EdDSA", PublicKey: pub, PrivateSealed: sealed, CreatedAt: created}
	if err := s.Store.CreateSigningKey(ctx, k); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.loaded = nil // reload on next use
	s.mu.Unlock()
	return k, nil
}

// EnsureKey creates a first signing key if there is none.
func (s *Signer) EnsureKey(ctx context.Context) error {
	keys, err := s.keys(ctx, false)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		_, err = s.Rotate(ctx)
	}
	return err
}

// keys returns the key set, newest first, reading it again when stale or
// when force is set.
func (s *Signer) keys(ctx context.Context, force bool) ([]*key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	age := time.Since(s.loadedAt)
	if len(s.loaded) > 0 && (age < minForcedReload || (!force && age < reloadEvery)) {
		return s.loaded, nil
	}
	stored, err := s.Store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*key, 0, len(stored))
	for _, k := range stored {
		seed, err := s.Keys.Open(k.PrivateSealed, sealAD(k.ID))
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
		}
		out = append(out, &key{id: k.ID, public: ed25519.PublicKey(k.PublicKey), private: ed25519.NewKeyFromSeed(seed), created: k.CreatedAt})
	}
	s.loaded, s.loadedAt = out, time.Now()
	return out, nil
}

// Issue signs an ID token for a user's session, with its assurance.
func (s *Signer) Issue(ctx context.Context, sess *tessera.Session) (string, time.Time, error) {
	keys, err := s.keys(ctx, false)
	if err != nil {
		return "", time.Time{}, err
	}
	if len(keys) == 0 {
		return "", time.Time{}, errors.New("no signing key: run tessera keys rotate")
	}
	now := s.Now()
	exp := now.Add(s.TTL)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.Issuer, Subject: sess.UserID, Audience: jwt.ClaimStrings{s.Audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
			ID: uuid.NewString(),
		},
		SessionID: sess.ID, ACR: ACR(sess.AAL), AMR: sess.AMR, AuthTime: jwt.NewNumericDate(sess.AuthTime),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = keys[0].id
	signed, err := t.SignedString(keys[0].private)
	return signed, exp, err
}

// Verify checks an ID token's signature, issuer, audience and lifetime and
// returns its claims; EUNAUTHORIZED for any token that does not pass.
func (s *Signer) Verify(ctx context.Context, raw string) (*Claims, error) {
	var claims Claims
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, force := range []bool{false, true} {
			keys, err := s.keys(ctx, force)
			if err != nil {
				return nil, err
			}
			for _, k := range keys {
				if k.id == kid {
					return k.public, nil
				}
			}
		}
		return nil, errors.New("unknown key id")
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(s.Issuer), jwt.WithAudience(s.Audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.Now), jwt.WithLeeway(5*time.Second),
		// Only the exact bytes Tessera issued: lax base64 would accept
		// other spellings of the same signature.
		jwt.WithStrictDecoding())
	if err != nil {
		return nil, tessera.Errorf(tessera.EUNAUTHORIZED, "Invalid or expired ID token")
	}
	if claims.Subject == "" || claims.SessionID == "" {
		return nil, tessera.Errorf(tessera.EUNAUTHORIZED, "Invalid ID token")
	}
	return &claims, nil
}

// JWKS returns the public keys as a JSON Web Key Set (RFC 7517, OKP keys
// of RFC 8037).
func (s *Signer) JWKS(ctx context.Context) ([]byte, error) {
	keys, err := s.keys(ctx, false)
	if err != nil {
		return nil, err
	}
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.public), Kid: k.id, Alg: "EdDSA", Use: "sig"})
	}
	return json.Marshal(set)
}
