package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/storetest"
)

// The fuzz signer's key and clock are fixed, so a token kept in
// testdata/fuzz checks the same thing on every later run.
const fuzzKeyID = "fuzz-key-1"

var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fuzzKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// fuzzSigner returns a Signer over a fresh SQLite store whose only signing
// key is fuzzKey.
func fuzzSigner(tb testing.TB) *Signer {
	tb.Helper()
	macKey, encKey := make([]byte, secret.KeySize), make([]byte, secret.KeySize)
	for i := range macKey {
		macKey[i], encKey[i] = byte(i), byte(100+i)
	}
	keys, err := secret.NewKeyring(macKey, []secret.Key{{ID: "k1", Key: encKey}}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Signer{Store: storetest.OpenSQLite(tb), Keys: keys, Issuer: "https://tessera.example", Audience: "tessera-api",
		TTL: 15 * time.Minute, Now: func() time.Time { return fuzzNow }}
	ctx := context.Background()
	priv := fuzzKey()
	sealed, err := keys.Seal(priv.Seed(), sealAD(fuzzKeyID))
	if err != nil {
		tb.Fatal(err)
	}
	err = s.Store.CreateSigningKey(ctx, &tessera.SigningKey{ID: fuzzKeyID, Algorithm: "EdDSA",
		PublicKey: priv.Public().(ed25519.PublicKey), PrivateSealed: sealed, Generation: 1, CreatedAt: fuzzNow.Add(-time.Hour), ActivatesAt: fuzzNow.Add(-time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Maintain(ctx); err != nil { // finds fuzzKey: no rotation
		tb.Fatal(err)
	}
	return s
}

// fuzzClaims are the claims Issue writes, with a fixed jti.
func fuzzClaims(s *Signer) Claims {
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.Issuer, Subject: "user-1", Audience: jwt.ClaimStrings{s.Audience},
			IssuedAt: jwt.NewNumericDate(fuzzNow), NotBefore: jwt.NewNumericDate(fuzzNow),
			ExpiresAt: jwt.NewNumericDate(fuzzNow.Add(s.TTL)), ID: "00000000-0000-4000-8000-000000000001",
		},
		Profile: Profile{SessionID: "session-1", AMR: []string{"pwd"}},
	}
}

func signWith(tb testing.TB, method jwt.SigningMethod, kid string, claims Claims, key any) string {
	tb.Helper()
	t := jwt.NewWithClaims(method, claims)
	if kid != "" {
		t.Header["kid"] = kid
	}
	raw, err := t.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func FuzzVerifyToken(f *testing.F) {
	s := fuzzSigner(f)
	ctx := context.Background()
	priv := fuzzKey()
	pub := priv.Public().(ed25519.PublicKey)

	// The tokens Tessera issued: the only ones Verify may accept.
	good := signWith(f, jwt.SigningMethodEdDSA, fuzzKeyID, fuzzClaims(s), priv)
	issued, _, err := s.Issue(ctx, &tessera.User{ID: "user-2", Email: "u2@example.com"}, &tessera.Session{ID: "session-2", UserID: "user-2", AAL: 2, AMR: []string{"pwd", "otp", "mfa"}, AuthTime: time.Now()})
	if err != nil {
		f.Fatal(err)
	}
	for _, raw := range []string{good, issued} {
		if _, err := s.Verify(ctx, raw); err != nil {
			f.Fatalf("Verify rejects an issued token: %v", err)
		}
	}
	// Issue's token has a random jti, so it differs in every fuzzing
	// process: only the fixed one seeds the corpus.
	known := map[string]bool{good: true, issued: true}
	f.Add(good)

	parts := strings.Split(good, ".")
	enc := base64.RawURLEncoding.EncodeToString
	tampered := fuzzClaims(s)
	tampered.Subject = "admin"
	tamperedPayload := signWith(f, jwt.SigningMethodEdDSA, fuzzKeyID, tampered, priv)
	noneToken := signWith(f, jwt.SigningMethodNone, fuzzKeyID, fuzzClaims(s), jwt.UnsafeAllowNoneSignatureType)
	signedBad := func(edit func(c *Claims)) string {
		c := fuzzClaims(s)
		edit(&c)
		return signWith(f, jwt.SigningMethodEdDSA, fuzzKeyID, c, priv)
	}
	for _, raw := range []string{
		// alg none, with and without the (empty) signature segment.
		noneToken,
		strings.TrimSuffix(noneToken, "."),
		enc([]byte(`{"alg":"none","kid":"`+fuzzKeyID+`"}`)) + "." + parts[1] + "." + parts[2],
		// The payload of another token under the good signature.
		parts[0] + "." + strings.Split(tamperedPayload, ".")[1] + "." + parts[2],
		// HS256 keyed with the public key (algorithm confusion), and with "".
		signWith(f, jwt.SigningMethodHS256, fuzzKeyID, fuzzClaims(s), []byte(pub)),
		signWith(f, jwt.SigningMethodHS256, fuzzKeyID, fuzzClaims(s), []byte(enc(pub))),
		// Signed with the real key but not valid.
		signedBad(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(fuzzNow.Add(-time.Minute)) }),
		signedBad(func(c *Claims) { c.ExpiresAt = nil }),
		signedBad(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(fuzzNow.Add(time.Hour)) }),
		signedBad(func(c *Claims) { c.Issuer = "https://evil.example" }),
		signedBad(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }),
		signedBad(func(c *Claims) { c.Subject = "" }),
		signedBad(func(c *Claims) { c.SessionID = "" }),
		// A good signature under another key id, and another key.
		signWith(f, jwt.SigningMethodEdDSA, "unknown", fuzzClaims(s), priv),
		signWith(f, jwt.SigningMethodEdDSA, "", fuzzClaims(s), priv),
		signWith(f, jwt.SigningMethodEdDSA, fuzzKeyID, fuzzClaims(s), ed25519.NewKeyFromSeed(make([]byte, 32))),
		// The good token, broken.
		parts[0] + "." + parts[1],
		parts[0] + "." + parts[1] + ".",
		good + ".",
		good + "=",
		"Bearer " + good,
		parts[0] + "." + parts[1] + "." + parts[2] + "==",
		parts[0] + "=." + parts[1] + "." + parts[2],
		"", ".", "..", "a.b.c", "e30.e30.", "e30.e30.e30", "eyJhbGciOiJFZERTQSJ9.e30." + parts[2],
	} {
		f.Add(raw)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := s.Verify(ctx, raw)
		if err != nil {
			var te *tessera.Error
			if !errors.As(err, &te) || te.Code != tessera.EUNAUTHORIZED {
				t.Fatalf("Verify(%q) = %v, want an unauthorized *tessera.Error", raw, err)
			}
			return
		}
		if !known[raw] {
			t.Fatalf("Verify accepted %q, a token Tessera did not issue (claims %+v)", raw, claims)
		}
		if claims.Subject == "" || claims.SessionID == "" || claims.Issuer != s.Issuer {
			t.Fatalf("Verify(%q) accepted claims %+v", raw, claims)
		}
	})
}
