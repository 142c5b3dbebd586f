package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
)

// The signing algorithms (JWS "alg").
const (
	AlgEdDSA = "EdDSA" // Ed25519
	AlgES256 = "ES256" // ECDSA on P-256 with SHA-256
	AlgRS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys
)

// Algorithms lists the algorithms Tessera signs with.
var Algorithms = []string{AlgEdDSA, AlgES256, AlgRS256}

// rsaBits is the size of new RSA keys: the smallest every verifier
// accepts and the one RFC 7518 requires at least.
const rsaBits = 2048

// JWKSMaxAge is how long verifiers may cache the JWKS (its Cache-Control
// max-age). A new key must be published longer than this, plus the
// reload interval, before it signs.
const JWKSMaxAge = 300 * time.Second

// MinPublishAhead is the shortest PublishAhead that lets every verifier
// see a new key before it signs: a JWKS cached just before the key was
// published, on an instance that read the key table just before that.
const MinPublishAhead = JWKSMaxAge + reloadEvery

// DefaultPublishAhead is PublishAhead's default.
const DefaultPublishAhead = 10 * time.Minute

// The states of a signing key.
const (
	StateNext    = "next"    // published, signs from ActivatesAt
	StateActive  = "active"  // signs new tokens
	StateRetired = "retired" // a later key signs; published until its tokens expire
	StateGone    = "gone"    // every token it signed has expired: no longer published
)

type key struct {
	stored  *tessera.SigningKey
	method  jwt.SigningMethod
	public  crypto.PublicKey
	private crypto.Signer
}

func sealAD(id string) []byte { return []byte("signing-key\x00" + id) }

// KeyStatus is a signing key and where it is in its life cycle.
type KeyStatus struct {
	*tessera.SigningKey
	State string
	// RetiredAt is when a later key took over (zero unless retired or
	// gone); PublishedUntil, when it leaves the JWKS.
	RetiredAt, PublishedUntil time.Time
}

// lifecycle places each key (latest generation first) at now. The latest
// generation that has activated signs; the keys before it retired when the
// next later key activated, and are published until every token they
// signed has expired: the ID token lifetime, plus the reload interval an
// instance may take to see that a newer key activated, after retirement.
func lifecycle(keys []*tessera.SigningKey, now time.Time, ttl time.Duration) []KeyStatus {
	out := make([]KeyStatus, len(keys))
	var takeover time.Time // activation of the nearest later key that activated
	for i, k := range keys {
		st := KeyStatus{SigningKey: k}
		switch {
		case takeover.IsZero() && k.ActivatesAt.After(now):
			st.State = StateNext
		case takeover.IsZero():
			st.State = StateActive
		default:
			st.RetiredAt = takeover
			st.PublishedUntil = takeover.Add(ttl + reloadEvery)
			st.State = StateRetired
			if !now.Before(st.PublishedUntil) {
				st.State = StateGone
			}
		}
		if !k.ActivatesAt.After(now) && (takeover.IsZero() || k.ActivatesAt.Before(takeover)) {
			takeover = k.ActivatesAt
		}
		out[i] = st
	}
	return out
}

// activeKey is the key that signs at now, nil if none.
func activeKey(keys []*key, now time.Time) *key {
	for _, k := range keys {
		if !k.stored.ActivatesAt.After(now) {
			return k
		}
	}
	return nil
}

func (s *Signer) stored(keys []*key) []*tessera.SigningKey {
	out := make([]*tessera.SigningKey, len(keys))
	for i, k := range keys {
		out[i] = k.stored
	}
	return out
}

// List returns the signing keys, latest generation first, with their
// states.
func (s *Signer) List(ctx context.Context) ([]KeyStatus, error) {
	keys, err := s.keys(ctx, true)
	if err != nil {
		return nil, err
	}
	return lifecycle(s.stored(keys), s.Now(), s.TTL), nil
}

func (s *Signer) algorithm() string {
	if s.Algorithm == "" {
		return AlgEdDSA
	}
	return s.Algorithm
}

func (s *Signer) publishAhead() time.Duration {
	if s.PublishAhead == 0 {
		return DefaultPublishAhead
	}
	return s.PublishAhead
}

// ErrKeyWaiting is Rotate's answer while a next key waits to activate:
// a second would retire the first before it ever signed.
var ErrKeyWaiting = errors.New("a new signing key is already published and waiting to sign")

// Rotate makes a key of the configured algorithm, published at once and
// signing after PublishAhead (at once when now is set, or when there is no
// key yet); the key signing until then retires. Another instance rotating
// at the same moment makes the same generation: one of the two gets
// ECONFLICT.
func (s *Signer) Rotate(ctx context.Context, now bool) (*tessera.SigningKey, error) {
	keys, err := s.keys(ctx, true)
	if err != nil {
		return nil, err
	}
	at := s.Now().UTC().Truncate(time.Millisecond)
	activates := at.Add(s.publishAhead())
	var generation int64 = 1
	if len(keys) > 0 {
		generation = keys[0].stored.Generation + 1
		if !now && keys[0].stored.ActivatesAt.After(at) {
			return nil, fmt.Errorf("%w: %s signs from %s", ErrKeyWaiting, keys[0].stored.ID, keys[0].stored.ActivatesAt.Format(time.RFC3339))
		}
	}
	if now || activeKey(keys, at) == nil {
		activates = at
	}
	k, err := s.newKey(generation, at, activates)
	if err != nil {
		return nil, err
	}
	if err := s.Store.CreateSigningKey(ctx, k); err != nil {
		return nil, err
	}
	s.forget()
	return k, nil
}

// Maintain keeps the key set in shape; the service runs it at start and
// then every few minutes, on every instance: it makes a first key; it
// publishes a new key when the active one is due for automatic rotation
// (RotateEvery) or is of another algorithm than configured; it deletes
// keys whose tokens have all expired. Each step is safe to race: a
// generation is made once, deleting twice is no error. It returns what it
// did, for the log.
func (s *Signer) Maintain(ctx context.Context) ([]string, error) {
	keys, err := s.keys(ctx, true)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	var did []string
	rotate := func(why string) error {
		k, err := s.Rotate(ctx, false)
		if tessera.ErrorCode(err) == tessera.ECONFLICT {
			return nil // another instance did it
		}
		if err == nil {
			did = append(did, fmt.Sprintf("made signing key %s (%s, %s), signing from %s", k.ID, k.Algorithm, why, k.ActivatesAt.Format(time.RFC3339)))
		}
		return err
	}
	states := lifecycle(s.stored(keys), now, s.TTL)
	if len(states) == 0 {
		return did, rotate("the first key")
	}
	if states[0].State == StateActive {
		active := states[0]
		switch {
		case active.Algorithm != s.algorithm():
			err = rotate("TESSERA_ID_TOKEN_ALG changed from " + active.Algorithm)
		case s.RotateEvery > 0 && !now.Add(s.publishAhead()).Before(active.ActivatesAt.Add(s.RotateEvery)):
			err = rotate("automatic rotation")
		}
		if err != nil {
			return did, err
		}
	}
	for _, st := range states {
		if st.State == StateGone {
			if err := s.Store.DeleteSigningKey(ctx, st.ID); err != nil {
				return did, err
			}
			did = append(did, "deleted signing key "+st.ID+": every token it signed has expired")
			s.forget()
		}
	}
	return did, nil
}

// newKey generates a key of the configured algorithm.
func (s *Signer) newKey(generation int64, created, activates time.Time) (*tessera.SigningKey, error) {
	var public, private []byte
	switch alg := s.algorithm(); alg {
	case AlgEdDSA:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		public, private = pub, priv.Seed()
	case AlgES256, AlgRS256:
		var priv crypto.Signer
		var err error
		if alg == AlgES256 {
			priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		} else {
			priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
		}
		if err != nil {
			return nil, err
		}
		if public, err = x509.MarshalPKIXPublicKey(priv.Public()); err != nil {
			return nil, err
		}
		if private, err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("signing algorithm %q: choose one of EdDSA, ES256, RS256", alg)
	}
	id := uuid.NewString()
	sealed, err := s.Keys.Seal(private, sealAD(id))
	if err != nil {
		return nil, err
	}
	return &tessera.SigningKey{ID: id, Algorithm: s.algorithm(), PublicKey: public, PrivateSealed: sealed,
		Generation: generation, CreatedAt: created, ActivatesAt: activates}, nil
}

// open unseals a stored key.
func (s *Signer) open(k *tessera.SigningKey) (*key, error) {
	plain, err := s.Keys.Open(k.PrivateSealed, sealAD(k.ID))
	if err != nil {
		return nil, err
	}
	out := &key{stored: k}
	switch k.Algorithm {
	case AlgEdDSA:
		if len(plain) != ed25519.SeedSize || len(k.PublicKey) != ed25519.PublicKeySize {
			return nil, errors.New("malformed Ed25519 key")
		}
		out.method, out.public, out.private = jwt.SigningMethodEdDSA, ed25519.PublicKey(k.PublicKey), ed25519.NewKeyFromSeed(plain)
		return out, nil
	case AlgES256:
		out.method = jwt.SigningMethodES256
	case AlgRS256:
		out.method = jwt.SigningMethodRS256
	default:
		return nil, fmt.Errorf("unknown algorithm %q", k.Algorithm)
	}
	priv, err := x509.ParsePKCS8PrivateKey(plain)
	if err != nil {
		return nil, err
	}
	pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
	if err != nil {
		return nil, err
	}
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		if k.Algorithm != AlgES256 || p.Curve != elliptic.P256() || !p.PublicKey.Equal(pub) {
			return nil, errors.New("not a P-256 key pair")
		}
		out.private, out.public = p, pub
	case *rsa.PrivateKey:
		if k.Algorithm != AlgRS256 || p.N.BitLen() < rsaBits || !p.PublicKey.Equal(pub) {
			return nil, errors.New("not an RSA key pair of 2048 bits or more")
		}
		out.private, out.public = p, pub
	default:
		return nil, fmt.Errorf("a %T is not a %s key", priv, k.Algorithm)
	}
	return out, nil
}

// JWK is one public key as a JSON Web Key (RFC 7517): kty OKP (Ed25519,
// RFC 8037), EC (P-256) or RSA, with the algorithm it verifies.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"` // OKP, EC
	X   string `json:"x,omitempty"`   // OKP, EC
	Y   string `json:"y,omitempty"`   // EC
	N   string `json:"n,omitempty"`   // RSA
	E   string `json:"e,omitempty"`   // RSA
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

func (k *key) jwk() JWK {
	enc := base64.RawURLEncoding.EncodeToString
	j := JWK{Kid: k.stored.ID, Alg: k.stored.Algorithm, Use: "sig"}
	switch p := k.public.(type) {
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", enc(p)
	case *ecdsa.PublicKey:
		// The uncompressed point: 0x04, then X and Y of 32 bytes each.
		b, _ := p.Bytes()
		j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", enc(b[1:33]), enc(b[33:])
	case *rsa.PublicKey:
		j.Kty, j.N, j.E = "RSA", enc(p.N.Bytes()), enc(big.NewInt(int64(p.E)).Bytes())
	}
	return j
}

// JWKS returns the published keys — next, active and retired, not gone —
// as a JSON Web Key Set.
func (s *Signer) JWKS(ctx context.Context) ([]byte, error) {
	keys, err := s.keys(ctx, false)
	if err != nil {
		return nil, err
	}
	set := struct {
		Keys []JWK `json:"keys"`
	}{Keys: []JWK{}}
	for i, st := range lifecycle(s.stored(keys), s.Now(), s.TTL) {
		if st.State != StateGone {
			set.Keys = append(set.Keys, keys[i].jwk())
		}
	}
	return json.Marshal(set)
}
