// Package token issues and checks ID tokens: short-lived JWTs signed with
// EdDSA (Ed25519), ES256 or RS256 as configured. Signing keys live in the
// database, their private halves sealed with the server's encryption key,
// so every instance signs and verifies with the same set;
// /.well-known/jwks.json publishes the public halves. A key goes through
// next (published, not yet signing), active (signing) and retired
// (published until the last token it signed has expired) — see keys.go.
package token

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
)

// The claims an ID token may carry besides the registered ones (iss, sub,
// aud, exp, nbf, iat, jti), by their OpenID Connect names.
const (
	ClaimEmail               = "email"
	ClaimEmailVerified       = "email_verified"
	ClaimPhoneNumber         = "phone_number"
	ClaimPhoneNumberVerified = "phone_number_verified"
	ClaimSID                 = "sid"
	ClaimACR                 = "acr"
	ClaimAMR                 = "amr"
	ClaimAuthTime            = "auth_time"
)

// AllClaims lists every optional claim.
var AllClaims = []string{ClaimEmail, ClaimEmailVerified, ClaimPhoneNumber, ClaimPhoneNumberVerified, ClaimSID, ClaimACR, ClaimAMR, ClaimAuthTime}

// DefaultClaims are the claims of an ID token unless configured: the
// session and its assurance, but no personal data, because tokens travel
// as bearer credentials and end up in proxies' and apps' logs. Apps read
// the email and phone from /auth/userinfo.
const DefaultClaims = "sid,acr,amr,auth_time"

// ParseClaims reads a comma-separated list of claim names. sid is always
// included: Tessera checks with it that the token's session is still live.
func ParseClaims(spec string) (map[string]bool, error) {
	set := map[string]bool{ClaimSID: true}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		known := false
		for _, c := range AllClaims {
			known = known || c == name
		}
		if !known {
			return nil, fmt.Errorf("%q is not a claim Tessera can add; choose from %s", name, strings.Join(AllClaims, ","))
		}
		set[name] = true
	}
	return set, nil
}

// FormatClaims writes a claim set as ParseClaims reads it.
func FormatClaims(set map[string]bool) string {
	var out []string
	for _, c := range AllClaims {
		if set[c] {
			out = append(out, c)
		}
	}
	return strings.Join(out, ",")
}

// Profile is who the user is and how the session was authenticated, by
// OpenID Connect's claim names: the optional claims of an ID token, and
// the answer of /auth/userinfo. ACR, AMR and AuthTime copy the session's
// assurance (OpenID Connect Core 2): acr is "aal1" or "aal2".
type Profile struct {
	Email               string           `json:"email,omitempty"`
	EmailVerified       *bool            `json:"email_verified,omitempty"`
	PhoneNumber         string           `json:"phone_number,omitempty"`
	PhoneNumberVerified *bool            `json:"phone_number_verified,omitempty"`
	SessionID           string           `json:"sid,omitempty"`
	ACR                 string           `json:"acr,omitempty"`
	AMR                 []string         `json:"amr,omitempty"`
	AuthTime            *jwt.NumericDate `json:"auth_time,omitempty"`
}

// ProfileOf returns the claims of set for u and sess. A user without a
// phone has neither phone claim.
func ProfileOf(u *tessera.User, sess *tessera.Session, set map[string]bool) Profile {
	var p Profile
	if set[ClaimEmail] {
		p.Email = u.Email
	}
	if set[ClaimEmailVerified] {
		p.EmailVerified = ptr(!u.EmailVerifiedAt.IsZero())
	}
	if u.Phone != "" && set[ClaimPhoneNumber] {
		p.PhoneNumber = u.Phone
	}
	if u.Phone != "" && set[ClaimPhoneNumberVerified] {
		p.PhoneNumberVerified = ptr(!u.PhoneVerifiedAt.IsZero())
	}
	if set[ClaimSID] {
		p.SessionID = sess.ID
	}
	if set[ClaimACR] {
		p.ACR = ACR(sess.AAL)
	}
	if set[ClaimAMR] {
		p.AMR = sess.AMR
	}
	if set[ClaimAuthTime] {
		p.AuthTime = jwt.NewNumericDate(sess.AuthTime)
	}
	return p
}

// UserInfo is the answer of /auth/userinfo: sub and every claim, whatever
// the ID tokens carry (it is the user's own data, asked for with their
// token, and not a credential that travels on).
type UserInfo struct {
	Subject string `json:"sub"`
	Profile
}

// UserInfoOf returns the user info of u in sess.
func UserInfoOf(u *tessera.User, sess *tessera.Session) *UserInfo {
	all := map[string]bool{}
	for _, c := range AllClaims {
		all[c] = true
	}
	return &UserInfo{Subject: u.ID, Profile: ProfileOf(u, sess, all)}
}

func ptr[T any](v T) *T { return &v }

// Claims are an ID token's claims.
type Claims struct {
	jwt.RegisteredClaims
	Profile
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
	// Claims are the optional claims ID tokens carry (ParseClaims); nil:
	// DefaultClaims.
	Claims map[string]bool
	// Algorithm is the algorithm of keys made from now on: AlgEdDSA (the
	// default when empty), AlgES256 or AlgRS256.
	Algorithm string
	// PublishAhead is how long a new key is published before it signs
	// (DefaultPublishAhead when zero); RotateEvery, how often a new key
	// is made without being asked (zero: only by Rotate).
	PublishAhead time.Duration
	RotateEvery  time.Duration

	mu       sync.Mutex
	loaded   []*key
	loadedAt time.Time
}

// minForcedReload spaces out the reloads that unknown key ids force, so
// tokens with made-up kids cannot make every request read the key table.
const minForcedReload = 5 * time.Second

// reloadEvery is how often the key set is read again, so a key rotated on
// another instance is published and trusted here soon after.
const reloadEvery = time.Minute

// Issue signs an ID token for u's session, with its assurance, by the
// active key.
func (s *Signer) Issue(ctx context.Context, u *tessera.User, sess *tessera.Session) (string, time.Time, error) {
	keys, err := s.keys(ctx, false)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.Now()
	signer := activeKey(keys, now)
	if signer == nil {
		return "", time.Time{}, errors.New("no active signing key: run tessera keys rotate --now")
	}
	exp := now.Add(s.TTL)
	set := s.Claims
	if set == nil {
		set, _ = ParseClaims(DefaultClaims)
	}
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.Issuer, Subject: sess.UserID, Audience: jwt.ClaimStrings{s.Audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
			ID: uuid.NewString(),
		},
		Profile: ProfileOf(u, sess, set),
	}
	// sid is not optional: Authenticate looks the session up by it.
	claims.SessionID = sess.ID
	t := jwt.NewWithClaims(signer.method, claims)
	t.Header["kid"] = signer.stored.ID
	signed, err := t.SignedString(signer.private)
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
				if k.stored.ID == kid {
					// The key decides the algorithm, never the token.
					if t.Method.Alg() != k.stored.Algorithm {
						return nil, errors.New("algorithm does not match the key")
					}
					return k.public, nil
				}
			}
		}
		return nil, errors.New("unknown key id")
	}, jwt.WithValidMethods(Algorithms), jwt.WithIssuer(s.Issuer), jwt.WithAudience(s.Audience),
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

// keys returns the key set, latest generation first, reading it again when
// stale or when force is set.
func (s *Signer) keys(ctx context.Context, force bool) ([]*key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	age := time.Since(s.loadedAt)
	if s.loaded != nil && (age < minForcedReload || (!force && age < reloadEvery)) {
		return s.loaded, nil
	}
	stored, err := s.Store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*key, 0, len(stored))
	for _, k := range stored {
		parsed, err := s.open(k)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
		}
		out = append(out, parsed)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].stored.Generation > out[j].stored.Generation })
	s.loaded, s.loadedAt = out, time.Now()
	return out, nil
}

// forget makes the next use read the key set again.
func (s *Signer) forget() {
	s.mu.Lock()
	s.loaded = nil
	s.mu.Unlock()
}
