package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/token"
)

// fetchJWKS reads the key set over HTTP, as a relying party does.
func fetchJWKS(t *testing.T, e *env) jose.JSONWebKeySet {
	t.Helper()
	res, err := http.Get(e.srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("JWKS answered %d (Cache-Control %q): %s", res.StatusCode, res.Header.Get("Cache-Control"), raw)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("go-jose cannot read the JWKS %s: %v", raw, err)
	}
	return set
}

// kids lists the key ids of a key set.
func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// verifyWith checks raw with go-jose — a JWT library Tessera does not use —
// against set, the way a gateway would: the key by kid, the key's alg the
// only one accepted, issuer, audience and lifetime at the env's clock. It
// returns the claims, or the reason it failed.
func verifyWith(e *env, set jose.JSONWebKeySet, raw string) (map[string]any, string) {
	algs := []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256}
	tok, err := josejwt.ParseSigned(raw, algs)
	if err != nil {
		return nil, "parse: " + err.Error()
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		return nil, "no key " + tok.Headers[0].KeyID + " in the JWKS"
	}
	if keys[0].Algorithm != tok.Headers[0].Algorithm {
		return nil, "the token's alg " + tok.Headers[0].Algorithm + " is not the key's " + keys[0].Algorithm
	}
	var std josejwt.Claims
	all := map[string]any{}
	if err := tok.Claims(keys[0].Key, &std, &all); err != nil {
		return nil, "signature: " + err.Error()
	}
	if err := std.ValidateWithLeeway(josejwt.Expected{Issuer: "tessera", AnyAudience: josejwt.Audience{"tessera"}, Time: e.clock.Now()}, 0); err != nil {
		return nil, "claims: " + err.Error()
	}
	return all, ""
}

func mustVerify(t *testing.T, e *env, set jose.JSONWebKeySet, raw string) map[string]any {
	t.Helper()
	claims, why := verifyWith(e, set, raw)
	if why != "" {
		t.Fatalf("go-jose rejects the ID token: %s", why)
	}
	return claims
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Headers[0].KeyID
}

// TestIDTokenAlgorithms: with each TESSERA_ID_TOKEN_ALG the JWKS publishes
// the matching key type, and an independent JWT library verifies the
// tokens with it, claims included.
func TestIDTokenAlgorithms(t *testing.T) {
	all, _ := token.ParseClaims(strings.Join(token.AllClaims, ","))
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		kty string
		ok  func(any) bool
	}{
		{jose.EdDSA, "OKP", func(k any) bool { _, ok := k.(ed25519.PublicKey); return ok }},
		{jose.ES256, "EC", func(k any) bool { p, ok := k.(*ecdsa.PublicKey); return ok && p.Curve.Params().Name == "P-256" }},
		{jose.RS256, "RSA", func(k any) bool { p, ok := k.(*rsa.PublicKey); return ok && p.N.BitLen() >= 2048 }},
	} {
		t.Run(string(tc.alg), func(t *testing.T) {
			t.Parallel()
			for _, s := range stores {
				t.Run(s.name, func(t *testing.T) {
					t.Parallel()
					e := newEnvWith(t, s.open(t), func(o *app.Options) { o.IDTokenAlg = string(tc.alg); o.IDTokenClaims = all })
					u := register(t, e, "gina@example.com")

					res, err := http.Get(e.srv.URL + "/.well-known/jwks.json")
					if err != nil {
						t.Fatal(err)
					}
					var raw struct{ Keys []map[string]any }
					json.NewDecoder(res.Body).Decode(&raw)
					res.Body.Close()
					if len(raw.Keys) != 1 || raw.Keys[0]["kty"] != tc.kty || raw.Keys[0]["alg"] != string(tc.alg) || raw.Keys[0]["use"] != "sig" || raw.Keys[0]["kid"] == "" {
						t.Fatalf("JWKS %v, want one %s key for %s", raw.Keys, tc.kty, tc.alg)
					}
					set := fetchJWKS(t, e)
					if !tc.ok(set.Keys[0].Key) {
						t.Fatalf("the JWKS key is a %T", set.Keys[0].Key)
					}

					claims := mustVerify(t, e, set, u.idToken)
					if claims["email"] != "gina@example.com" || claims["email_verified"] != true || claims["sid"] == nil || claims["acr"] != "aal1" ||
						claims["auth_time"] == nil || claims["amr"] == nil || claims["phone_number"] != nil {
						t.Fatalf("claims %v", claims)
					}
					// Tessera takes its own tokens, and a refreshed one verifies too.
					u.call("GET", "/auth/userinfo", nil).want(t, 200)
					u.take(e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 200))
					mustVerify(t, e, set, u.idToken)

					// Tampered: another user's sub under the same signature.
					parts := strings.Split(u.idToken, ".")
					forged := parts[0] + "." + jsonB64(t, map[string]any{"sub": "someone-else", "iss": "tessera", "aud": "tessera"}) + "." + parts[2]
					if _, why := verifyWith(e, set, forged); why == "" {
						t.Fatal("go-jose accepts a forged token: the test proves nothing")
					}
					u.idToken = forged
					u.call("GET", "/auth/userinfo", nil).want(t, 401)
				})
			}
		})
	}
}

func jsonB64(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestSigningKeyLifeCycle: a rotated key is published before it signs, so
// a verifier's cached JWKS holds it when tokens start carrying it; the old
// key retires, its tokens verify until they expire, and it leaves the JWKS
// (and the database) once the last of them has.
func TestSigningKeyLifeCycle(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := register(t, e, "hugo@example.com")
		beforeRotation := fetchJWKS(t, e)
		first := kidOf(t, u.idToken)

		next, err := e.app.Tokens.Rotate(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.app.Tokens.Rotate(ctx, false); err == nil {
			t.Fatal("a second rotation while a key waits was accepted")
		}
		// Right after the rotation tokens are still signed by the old key:
		// a verifier holding the JWKS from before accepts them.
		u.take(u.login(t).want(t, 200))
		if kidOf(t, u.idToken) != first {
			t.Fatal("the new key signs before it was published for TESSERA_KEY_PUBLISH_AHEAD")
		}
		mustVerify(t, e, beforeRotation, u.idToken)
		cached := fetchJWKS(t, e)
		if got := kids(cached); len(got) != 2 || got[0] != next.ID || got[1] != first {
			t.Fatalf("JWKS after the rotation lists %v, want the next key %s and the active %s", got, next.ID, first)
		}
		states := func() map[string]string {
			list, err := e.app.Tokens.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]string{}
			for _, k := range list {
				out[k.ID] = k.State
			}
			return out
		}
		if s := states(); s[next.ID] != token.StateNext || s[first] != token.StateActive {
			t.Fatalf("states %v", s)
		}

		// The last token of the old key, just before the new one activates.
		e.clock.Advance(token.DefaultPublishAhead - time.Second)
		last := &user{e: e, email: u.email, password: u.password}
		last.take(last.login(t).want(t, 200))
		e.clock.Advance(time.Second)

		// Now the new key signs; the JWKS a verifier cached before that
		// (at most 300 s old, and fetched well after the rotation) has it.
		u.take(u.login(t).want(t, 200))
		if kidOf(t, u.idToken) != next.ID {
			t.Fatal("the new key does not sign after TESSERA_KEY_PUBLISH_AHEAD")
		}
		mustVerify(t, e, cached, u.idToken)
		if s := states(); s[next.ID] != token.StateActive || s[first] != token.StateRetired {
			t.Fatalf("states %v", s)
		}

		// A token of the retired key works until it expires.
		e.clock.Advance(15*time.Minute - 2*time.Second)
		mustVerify(t, e, fetchJWKS(t, e), last.idToken)
		last.call("GET", "/auth/userinfo", nil).want(t, 200)
		e.clock.Advance(10 * time.Second) // past exp and the 5 s leeway
		last.call("GET", "/auth/userinfo", nil).want(t, 401)

		// The retired key stays published a minute longer (instances read
		// the keys every minute), then leaves; the janitor deletes it.
		if got := kids(fetchJWKS(t, e)); len(got) != 2 {
			t.Fatalf("JWKS right after the last token expired: %v", got)
		}
		e.clock.Advance(time.Minute)
		if got := kids(fetchJWKS(t, e)); len(got) != 1 || got[0] != next.ID {
			t.Fatalf("JWKS once every token of the retired key expired: %v, want only %s", got, next.ID)
		}
		if err := e.app.MaintainKeys(ctx); err != nil {
			t.Fatal(err)
		}
		if stored, err := e.store.SigningKeys(ctx); err != nil || len(stored) != 1 || stored[0].ID != next.ID {
			t.Fatalf("stored keys after maintenance: %v %v", stored, err)
		}
		u.take(u.login(t).want(t, 200))
		if kidOf(t, u.idToken) != next.ID {
			t.Fatal("the remaining key does not sign")
		}
		mustVerify(t, e, fetchJWKS(t, e), u.idToken)
		u.call("GET", "/auth/userinfo", nil).want(t, 200)
	})
}

// TestUserInfo: /auth/userinfo answers the user's own claims unmasked and
// fresh from the account, while /auth/me keeps masking them; ID tokens
// carry no personal data unless configured to.
func TestUserInfo(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "Ines.Long@example.com")
		e.doWith("GET", "/auth/userinfo", nil, nil).want(t, 401)

		info := u.call("GET", "/auth/userinfo", nil).want(t, 200)
		claims := mustVerify(t, e, fetchJWKS(t, e), u.idToken)
		if info.body["sub"] != claims["sub"] || info.body["email"] != "Ines.Long@example.com" || info.body["email_verified"] != true ||
			info.body["sid"] != claims["sid"] || info.body["acr"] != "aal1" || info.body["auth_time"] != claims["auth_time"] ||
			info.body["phone_number"] != nil || info.body["phone_number_verified"] != nil {
			t.Fatalf("userinfo %s for the token claims %v", info.raw, claims)
		}
		if me := u.call("GET", "/auth/me", nil).want(t, 200); strings.Contains(me.raw, "Ines.Long") {
			t.Fatalf("/auth/me shows the address unmasked: %s", me.raw)
		}
		// The default claims: the session and its assurance, no personal data.
		for _, c := range []string{"email", "email_verified", "phone_number", "phone_number_verified"} {
			if _, ok := claims[c]; ok || strings.Contains(string(mustDecodePayload(t, u.idToken)), "Ines") {
				t.Fatalf("the default ID token carries %s: %v", c, claims)
			}
		}
		for _, c := range []string{"sid", "acr", "amr", "auth_time"} {
			if _, ok := claims[c]; !ok {
				t.Fatalf("the default ID token lacks %s: %v", c, claims)
			}
		}

		// A verified phone shows up at once, from the account.
		if err := e.store.ChangePhone(context.Background(), info.str("sub"), "+14155552671", "US", e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		info = u.call("GET", "/auth/userinfo", nil).want(t, 200)
		if info.body["phone_number"] != "+14155552671" || info.body["phone_number_verified"] != true {
			t.Fatalf("userinfo with a phone: %s", info.raw)
		}
	})
}

func mustDecodePayload(t *testing.T, raw string) []byte {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHMACKeyRotation: values made before HMAC keys had ids — an API
// token, a refresh token, recovery codes, a pending verification code —
// keep working once a newer key with an id is added in front of the old
// one; new values are made with the newest key, and stop depending on the
// old one, whose values stop working when it is removed.
func TestHMACKeyRotation(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			store := s.open(t)
			oldKey, newKey, encKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{2}, 32)
			enc := []secret.Key{{ID: "k1", Key: encKey}}
			keyring := func(macs ...secret.Key) func(*app.Options) {
				ring, err := secret.New(macs, enc, nil)
				if err != nil {
					t.Fatal(err)
				}
				return func(o *app.Options) { o.Keys = ring }
			}

			// Before the upgrade: one key without id.
			before := newEnvWith(t, store, keyring(secret.Key{Key: oldKey}))
			u := register(t, before, "jana@example.com")
			enrol := u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200)
			totp := totpSecret(t, enrol.str("totpUri"), u.email)
			codes := u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(totp, before.clock.Now())).want(t, 200).body["recoveryCodes"].([]any)
			u.take(mfaLogin(t, before, u, "recovery_code", codes[0].(string)))
			oldRefresh := u.refreshToken
			id := before.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "kim@example.com", "issuer": "Acme"}).want(t, 200).str("verificationId")
			code := before.codeFor("kim@example.com")

			// The operator puts a new key with an id in front of the old one.
			after := newEnvWith(t, store, keyring(secret.Key{ID: "h2", Key: newKey}, secret.Key{Key: oldKey}))
			after.token = before.token
			after.do("GET", "/methods/email/verifiers/"+id, nil).want(t, 200)
			after.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
			u.e = after
			u.take(after.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": oldRefresh}, nil).want(t, 200))
			u.take(mfaLogin(t, after, u, "recovery_code", codes[1].(string)))
			if mfaLogin(t, after, u, "recovery_code", codes[1].(string)) != nil {
				t.Fatal("a recovery code made before the upgrade works twice")
			}
			// New values: a refresh token and recovery codes made under h2.
			after.clock.Advance(30 * time.Second) // a TOTP step not used before
			newCodes := u.call("POST", "/auth/mfa/recovery-codes", nil, "x-otp", totpCode(totp, after.clock.Now())).want(t, 200).body["recoveryCodes"].([]any)
			newRefresh := u.refreshToken

			// Once the old key is gone, its values are void; h2's still work.
			only := newEnvWith(t, store, keyring(secret.Key{ID: "h2", Key: newKey}))
			only.token = before.token
			only.do("GET", "/methods/email/verifiers/"+id, nil).want(t, 401)
			only.token = after.newClient("made-after")
			only.do("GET", "/methods/email/verifiers/"+id, nil).want(t, 404) // authenticated; another client's verification
			u.e = only
			u.take(only.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": newRefresh}, nil).want(t, 200))
			u.take(mfaLogin(t, only, u, "recovery_code", newCodes[0].(string)))
		})
	}
}

// mfaLogin logs u in with the password and then method and code; it
// answers the final response's tokens, or fails the test unless the
// code is refused (then nil).
func mfaLogin(t *testing.T, e *env, u *user, method, code string) *response {
	t.Helper()
	pid := e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": u.password}, nil).want(t, 200).str("processingId")
	if pid == "" {
		t.Fatal("no MFA challenge")
	}
	r := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": method, "code": code}, nil)
	if r.status == 422 {
		return nil
	}
	return r.want(t, 200)
}
