package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/storetest"
)

const owner = "client-1"

// t0 is a whole TOTP step (1_800_000_000 / 30 = 60_000_000).
var t0 = time.Unix(1_800_000_000, 0).UTC()

type engineFixture struct {
	e   *Engine
	db  *sqlstore.DB
	now time.Time // the engine's clock; tests move it
}

func newEngine(t *testing.T) *engineFixture {
	t.Helper()
	keys, err := secret.NewKeyring(bytes.Repeat([]byte{1}, 32), []secret.Key{{ID: "k1", Key: bytes.Repeat([]byte{2}, 32)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &engineFixture{db: storetest.OpenSQLite(t), now: t0}
	f.e = &Engine{
		Store:  f.db,
		Keys:   keys,
		Now:    func() time.Time { return f.now },
		Random: mathrand.NewChaCha8([32]byte{'t', 'e', 's', 's', 'e', 'r', 'a'}),
	}
	return f
}

func (f *engineFixture) initiate(t *testing.T, method tessera.Method, req *InitiateRequest) *Initiated {
	t.Helper()
	out, err := f.e.Initiate(context.Background(), owner, method, req)
	if err != nil {
		t.Fatalf("Initiate: %v", err)
	}
	return out
}

func (f *engineFixture) validate(method tessera.Method, id, code string) (*tessera.Verification, error) {
	return f.e.Validate(context.Background(), owner, method, id, code, false)
}

// message returns the decrypted outbox message of a verification.
func (f *engineFixture) message(t *testing.T, id string) (*tessera.Message, tessera.MessageContent) {
	t.Helper()
	m, err := f.db.MessageForVerification(context.Background(), owner, id)
	if err != nil {
		t.Fatalf("message of %s: %v", id, err)
	}
	plain, err := f.e.Keys.Open(m.Sealed, MessageAD(m.ID))
	if err != nil {
		t.Fatalf("open message: %v", err)
	}
	var c tessera.MessageContent
	if err := json.Unmarshal(plain, &c); err != nil {
		t.Fatal(err)
	}
	return m, c
}

// wantCode checks err is a *tessera.Error with code and returns it.
func wantCode(t *testing.T, err error, code string) *tessera.Error {
	t.Helper()
	if got := tessera.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
	var te *tessera.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v is not a *tessera.Error", err)
	}
	return te
}

// attemptsOf returns the attempts of the verification an error carries.
func attemptsOf(t *testing.T, te *tessera.Error) int {
	t.Helper()
	v, ok := te.Data.(*tessera.Verification)
	if !ok || v == nil {
		t.Fatalf("error %v carries %T, want *tessera.Verification", te, te.Data)
	}
	return v.Attempts
}

func TestInitiateValidation(t *testing.T) {
	const uuid = "6f1c1b1e-8a43-4d43-9b7e-0d2f7f1c2a10"
	tests := []struct {
		name   string
		method tessera.Method
		edit   func(r *InitiateRequest)
		paths  []string // nil: the request is accepted
	}{
		{name: "valid defaults", edit: func(r *InitiateRequest) {}},
		{name: "valid bounds", edit: func(r *InitiateRequest) {
			r.GenerateCode.Length = MaxCodeLength
			r.Policy.MaxAttempts = MaxMaxAttempts
			r.Policy.ExpiredOn = "720:00:00"
		}},
		{name: "valid lower bounds", edit: func(r *InitiateRequest) {
			r.GenerateCode.Length = MinCodeLength
			r.Policy.MaxAttempts = 1
			r.Policy.ExpiredOn = "00:00:01"
		}},
		{name: "valid phone", method: tessera.MethodPhone, edit: func(r *InitiateRequest) { r.Consumer = "+14155552671" }},
		{name: "valid forced id", edit: func(r *InitiateRequest) { r.Policy.ForcedVerificationID = uuid }},
		{name: "valid payload", edit: func(r *InitiateRequest) { r.Payload = json.RawMessage(`{"user":42}`) }},

		{name: "missing consumer", edit: func(r *InitiateRequest) { r.Consumer = "" }, paths: []string{"consumer"}},
		{name: "bad email", edit: func(r *InitiateRequest) { r.Consumer = "not-an-email" }, paths: []string{"consumer"}},
		{name: "phone without +", method: tessera.MethodPhone, edit: func(r *InitiateRequest) { r.Consumer = "4155552671" }, paths: []string{"consumer"}},
		{name: "email given to phone", method: tessera.MethodPhone, edit: func(r *InitiateRequest) {}, paths: []string{"consumer"}},
		{name: "length too short", edit: func(r *InitiateRequest) { r.GenerateCode.Length = MinCodeLength - 1 }, paths: []string{"generateCode.length"}},
		{name: "length too long", edit: func(r *InitiateRequest) { r.GenerateCode.Length = MaxCodeLength + 1 }, paths: []string{"generateCode.length"}},
		{name: "negative length", edit: func(r *InitiateRequest) { r.GenerateCode.Length = -6 }, paths: []string{"generateCode.length"}},
		{name: "one-character symbol set", edit: func(r *InitiateRequest) { r.GenerateCode.SymbolSet = []string{"a"} }, paths: []string{"generateCode.symbolSet"}},
		{name: "non-ASCII symbol set", edit: func(r *InitiateRequest) { r.GenerateCode.SymbolSet = []string{"DIGITS", "é"} }, paths: []string{"generateCode.symbolSet"}},
		{name: "empty symbol set entry", edit: func(r *InitiateRequest) { r.GenerateCode.SymbolSet = []string{""} }, paths: []string{"generateCode.symbolSet"}},
		{name: "expiredOn not HMS", edit: func(r *InitiateRequest) { r.Policy.ExpiredOn = "1h" }, paths: []string{"policy.expiredOn"}},
		{name: "expiredOn zero", edit: func(r *InitiateRequest) { r.Policy.ExpiredOn = "00:00:00" }, paths: []string{"policy.expiredOn"}},
		{name: "expiredOn over 30 days", edit: func(r *InitiateRequest) { r.Policy.ExpiredOn = "720:00:01" }, paths: []string{"policy.expiredOn"}},
		{name: "maxAttempts negative", edit: func(r *InitiateRequest) { r.Policy.MaxAttempts = -1 }, paths: []string{"policy.maxAttempts"}},
		{name: "maxAttempts too high", edit: func(r *InitiateRequest) { r.Policy.MaxAttempts = MaxMaxAttempts + 1 }, paths: []string{"policy.maxAttempts"}},
		{name: "forced id not a UUID", edit: func(r *InitiateRequest) { r.Policy.ForcedVerificationID = "abc" }, paths: []string{"policy.forcedVerificationId"}},
		{name: "forced id in braces", edit: func(r *InitiateRequest) { r.Policy.ForcedVerificationID = "{" + uuid + "}" }, paths: []string{"policy.forcedVerificationId"}},
		{name: "forced id as URN", edit: func(r *InitiateRequest) { r.Policy.ForcedVerificationID = "urn:uuid:" + uuid }, paths: []string{"policy.forcedVerificationId"}},
		{name: "forced code with a newline", edit: func(r *InitiateRequest) { r.Policy.ForcedCode = "12\n34" }, paths: []string{"policy.forcedCode"}},
		{name: "forced code too long", edit: func(r *InitiateRequest) { r.Policy.ForcedCode = strings.Repeat("1", MaxCodeInput+1) }, paths: []string{"policy.forcedCode"}},
		{name: "body without code", edit: func(r *InitiateRequest) { r.Template.Body = "Your code: {{{VERIFICATION_ID}}}" }, paths: []string{"template.body"}},
		{name: "body with a misspelt placeholder", edit: func(r *InitiateRequest) { r.Template.Body = "Your code: {{CODE}}" }, paths: []string{"template.body"}},
		{name: "bad fromEmail", edit: func(r *InitiateRequest) { r.Template.FromEmail = "nobody" }, paths: []string{"template.fromEmail"}},
		{name: "payload too large", edit: func(r *InitiateRequest) {
			r.Payload = json.RawMessage(`"` + strings.Repeat("a", MaxPayloadBytes) + `"`)
		}, paths: []string{"payload"}},
		{name: "every problem at once", edit: func(r *InitiateRequest) {
			r.Consumer = "x"
			r.GenerateCode.Length = 1
			r.Policy.MaxAttempts = 1000
			r.Template.Body = "no code"
		}, paths: []string{"consumer", "generateCode.length", "policy.maxAttempts", "template.body"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newEngine(t)
			method := tc.method
			if method == "" {
				method = tessera.MethodEmail
			}
			req := &InitiateRequest{Consumer: "alice@example.com", Issuer: "Acme"}
			tc.edit(req)
			out, err := f.e.Initiate(context.Background(), owner, method, req)
			if tc.paths == nil {
				if err != nil {
					t.Fatalf("Initiate: %v", err)
				}
				if _, err := f.db.Verification(context.Background(), owner, out.Verification.ID); err != nil {
					t.Errorf("verification not stored: %v", err)
				}
				return
			}
			te := wantCode(t, err, tessera.EINVALID)
			var paths []string
			for _, d := range te.Details {
				paths = append(paths, d.Path)
				if d.Error == "" {
					t.Errorf("%s: no explanation", d.Path)
				}
			}
			slices.Sort(paths)
			if !slices.Equal(paths, tc.paths) {
				t.Errorf("error paths = %q, want %q", paths, tc.paths)
			}
		})
	}
}

func TestForcedCodeIsSingleUse(t *testing.T) {
	f := newEngine(t)
	const id, code = "0e5d3b52-1c8f-4f7a-9a41-3f1d2b7c9e01", "493817"
	out := f.initiate(t, tessera.MethodEmail, &InitiateRequest{
		Consumer: "alice@example.com",
		Issuer:   "Acme",
		Template: Template{Body: "Code {{{CODE}}} for {{{VERIFICATION_ID}}}"},
		Policy:   Policy{ForcedCode: code, ForcedVerificationID: strings.ToUpper(id)},
	})
	v := out.Verification
	if v.ID != id {
		t.Errorf("id = %q, want the forced id %q in canonical form", v.ID, id)
	}
	if out.TOTPURI != "" {
		t.Errorf("email verification has a TOTP URI %q", out.TOTPURI)
	}
	if want := t0.Add(DefaultExpiry); !v.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v, want %v", v.ExpiresAt, want)
	}

	m, c := f.message(t, id)
	if m.To != "alice@example.com" || m.Channel != tessera.ChannelEmail {
		t.Errorf("message to %q over %q", m.To, m.Channel)
	}
	if want := "Code " + code + " for " + id; c.Body != want {
		t.Errorf("message body = %q, want %q", c.Body, want)
	}
	if c.Subject != "Acme verification code" {
		t.Errorf("message subject = %q", c.Subject)
	}
	stored, err := f.db.Verification(context.Background(), owner, id)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.CodeHash, []byte(code)) || len(stored.CodeHash) == 0 {
		t.Errorf("stored code hash %x is empty or holds the code", stored.CodeHash)
	}

	// Another method does not see it.
	_, err = f.validate(tessera.MethodPhone, id, code)
	wantCode(t, err, tessera.ENOTFOUND)

	f.now = f.now.Add(time.Minute)
	got, err := f.validate(tessera.MethodEmail, id, code)
	if err != nil {
		t.Fatalf("Validate with the right code: %v", err)
	}
	if !got.ConsumedAt.Equal(f.now) {
		t.Errorf("ConsumedAt = %v, want %v", got.ConsumedAt, f.now)
	}
	if got.Attempts != 0 {
		t.Errorf("right code counted as an attempt: %d", got.Attempts)
	}

	_, err = f.validate(tessera.MethodEmail, id, code)
	wantCode(t, err, tessera.ENOTFOUND)
	_, err = f.e.Get(context.Background(), owner, tessera.MethodEmail, id)
	wantCode(t, err, tessera.ENOTFOUND)
}

func TestGeneratedCodeReachesTheMessage(t *testing.T) {
	tests := []struct {
		name   string
		method tessera.Method
		to     string
		spec   CodeSpec
		chars  string
	}{
		{"email default", tessera.MethodEmail, "alice@example.com", CodeSpec{}, digits},
		{"email upper 8", tessera.MethodEmail, "alice@example.com", CodeSpec{Length: 8, SymbolSet: []string{"ALPHAS"}}, upper},
		{"sms custom set", tessera.MethodPhone, "+447400123456", CodeSpec{Length: 12, SymbolSet: []string{"xyz", "DIGITS"}}, "xyz" + digits},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newEngine(t)
			out := f.initiate(t, tc.method, &InitiateRequest{Consumer: tc.to, GenerateCode: tc.spec, Template: Template{Body: "{{{CODE}}}"}})
			m, c := f.message(t, out.Verification.ID)
			if m.To != tc.to {
				t.Errorf("message to %q, want %q", m.To, tc.to)
			}
			code := c.Body
			length := tc.spec.Length
			if length == 0 {
				length = DefaultCodeLength
			}
			if len(code) != length || strings.Trim(code, tc.chars) != "" {
				t.Fatalf("code %q: want %d characters of %q", code, length, tc.chars)
			}
			if _, err := f.validate(tc.method, out.Verification.ID, code); err != nil {
				t.Fatalf("Validate with the sent code: %v", err)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	const code = "246810"
	req := func() *InitiateRequest {
		return &InitiateRequest{Consumer: "alice@example.com", Policy: Policy{ForcedCode: code, ExpiredOn: "00:10:00"}}
	}
	t.Run("just before expiry", func(t *testing.T) {
		f := newEngine(t)
		v := f.initiate(t, tessera.MethodEmail, req()).Verification
		if want := t0.Add(10 * time.Minute); !v.ExpiresAt.Equal(want) {
			t.Fatalf("ExpiresAt = %v, want %v", v.ExpiresAt, want)
		}
		f.now = v.ExpiresAt.Add(-time.Millisecond)
		if _, err := f.validate(tessera.MethodEmail, v.ID, code); err != nil {
			t.Fatalf("Validate before expiry: %v", err)
		}
	})
	for _, after := range []time.Duration{0, time.Second, 24 * time.Hour} {
		t.Run("at expiry plus "+after.String(), func(t *testing.T) {
			f := newEngine(t)
			v := f.initiate(t, tessera.MethodEmail, req()).Verification
			f.now = v.ExpiresAt.Add(after)
			te := wantCode(t, func() error { _, err := f.validate(tessera.MethodEmail, v.ID, code); return err }(), tessera.EEXPIRED)
			if got, ok := te.Data.(*tessera.Verification); !ok || got.ID != v.ID {
				t.Errorf("EEXPIRED carries %#v, want the verification", te.Data)
			}
		})
	}
	t.Run("after a wrong attempt", func(t *testing.T) {
		f := newEngine(t)
		v := f.initiate(t, tessera.MethodEmail, req()).Verification
		_, err := f.validate(tessera.MethodEmail, v.ID, "000000")
		if n := attemptsOf(t, wantCode(t, err, tessera.EINVALIDCODE)); n != 1 {
			t.Errorf("attempts = %d, want 1", n)
		}
		f.now = v.ExpiresAt.Add(time.Second)
		_, err = f.validate(tessera.MethodEmail, v.ID, code)
		if n := attemptsOf(t, wantCode(t, err, tessera.EEXPIRED)); n != 1 {
			t.Errorf("attempts = %d, want 1", n)
		}
	})
}

func TestWrongCodesLock(t *testing.T) {
	for _, maxAttempts := range []int{1, 3, DefaultMaxAttempts} {
		t.Run(fmt.Sprintf("max %d", maxAttempts), func(t *testing.T) {
			f := newEngine(t)
			const code = "135790"
			policy := Policy{ForcedCode: code}
			if maxAttempts != DefaultMaxAttempts {
				policy.MaxAttempts = maxAttempts
			}
			v := f.initiate(t, tessera.MethodEmail, &InitiateRequest{Consumer: "alice@example.com", Policy: policy}).Verification
			if v.MaxAttempts != maxAttempts {
				t.Fatalf("MaxAttempts = %d, want %d", v.MaxAttempts, maxAttempts)
			}
			for i := 1; i <= maxAttempts; i++ {
				_, err := f.validate(tessera.MethodEmail, v.ID, "13579"+string(rune('0'+i%10)))
				if n := attemptsOf(t, wantCode(t, err, tessera.EINVALIDCODE)); n != i {
					t.Errorf("wrong code %d: attempts = %d, want %d", i, n, i)
				}
			}
			for range 2 {
				_, err := f.validate(tessera.MethodEmail, v.ID, code)
				if n := attemptsOf(t, wantCode(t, err, tessera.ELOCKED)); n != maxAttempts {
					t.Errorf("locked: attempts = %d, want %d", n, maxAttempts)
				}
			}
		})
	}
}

func TestValidateInput(t *testing.T) {
	f := newEngine(t)
	v := f.initiate(t, tessera.MethodEmail, &InitiateRequest{Consumer: "alice@example.com", Policy: Policy{ForcedCode: "111111"}}).Verification
	tests := []struct {
		name, id, code, path string
	}{
		{"empty code", v.ID, "", "code"},
		{"code too long", v.ID, strings.Repeat("1", MaxCodeInput+1), "code"},
		{"id not a UUID", "nope", "111111", "verificationId"},
	}
	for _, tc := range tests {
		_, err := f.validate(tessera.MethodEmail, tc.id, tc.code)
		te := wantCode(t, err, tessera.EINVALID)
		if len(te.Details) != 1 || te.Details[0].Path != tc.path {
			t.Errorf("%s: details %+v, want path %q", tc.name, te.Details, tc.path)
		}
	}
	_, err := f.validate(tessera.MethodEmail, "6f1c1b1e-8a43-4d43-9b7e-0d2f7f1c2a10", "111111")
	wantCode(t, err, tessera.ENOTFOUND)
	// None of that used an attempt.
	if _, err := f.validate(tessera.MethodEmail, v.ID, "111111"); err != nil {
		t.Fatalf("right code after bad input: %v", err)
	}
}

// totpSecretOf parses an otpauth:// URI and returns its secret.
func totpSecretOf(t *testing.T, uri, issuer, account string) []byte {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("TOTP URI %q: %v", uri, err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		t.Errorf("TOTP URI %q: want otpauth://totp/", uri)
	}
	if !strings.Contains(u.Path, account) {
		t.Errorf("TOTP URI %q does not name the account %q", uri, account)
	}
	q := u.Query()
	if got := q.Get("issuer"); got != issuer {
		t.Errorf("TOTP URI issuer = %q, want %q", got, issuer)
	}
	for name, want := range map[string]string{"digits": "6", "period": "30", "algorithm": "SHA1"} {
		if got := q.Get(name); got != "" && got != want {
			t.Errorf("TOTP URI %s = %q, want %q", name, got, want)
		}
	}
	s := q.Get("secret")
	if s == "" {
		t.Fatalf("TOTP URI %q has no secret", uri)
	}
	key := decodeBase32(t, s)
	if len(key) < 16 {
		t.Errorf("TOTP secret is %d bytes, want at least 16", len(key))
	}
	return key
}

func (f *engineFixture) totpNow(key []byte) string { return totpCode(key, f.now.Unix()/30, 6) }

func TestGoogleAuth(t *testing.T) {
	ctx := context.Background()
	f := newEngine(t)
	const alice = "alice@example.com"
	req := &InitiateRequest{Consumer: alice, Issuer: "Acme"}

	first := f.initiate(t, tessera.MethodGoogleAuth, req)
	if first.TOTPURI == "" {
		t.Fatal("first initiate returned no TOTP URI")
	}
	if first.Verification.CodeHash != nil {
		t.Error("google_auth verification has a code hash")
	}
	if _, err := f.db.MessageForVerification(ctx, owner, first.Verification.ID); tessera.ErrorCode(err) != tessera.ENOTFOUND {
		t.Errorf("google_auth queued a message (err %v)", err)
	}
	key := totpSecretOf(t, first.TOTPURI, "Acme", alice)
	stored, err := f.db.TOTPSecret(ctx, owner, alice)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.Sealed, []byte(mustQuery(t, first.TOTPURI, "secret"))) || bytes.Contains(stored.Sealed, key) {
		t.Error("TOTP secret is stored in plain text")
	}

	// A wrong code is an attempt.
	wrong := totpCode(key, f.now.Unix()/30+5, 6)
	_, err = f.validate(tessera.MethodGoogleAuth, first.Verification.ID, wrong)
	if n := attemptsOf(t, wantCode(t, err, tessera.EINVALIDCODE)); n != 1 {
		t.Errorf("attempts = %d, want 1", n)
	}

	f.now = f.now.Add(10 * time.Second)
	code := f.totpNow(key)
	if _, err := f.validate(tessera.MethodGoogleAuth, first.Verification.ID, code); err != nil {
		t.Fatalf("Validate with the app's code: %v", err)
	}

	// Verified: no new secret.
	second := f.initiate(t, tessera.MethodGoogleAuth, req)
	if second.TOTPURI != "" {
		t.Errorf("initiate after verification returned a new TOTP URI %q", second.TOTPURI)
	}
	// The same code (same step) is not accepted twice.
	_, err = f.validate(tessera.MethodGoogleAuth, second.Verification.ID, code)
	wantCode(t, err, tessera.EINVALIDCODE)

	// The next step's code works, with the same secret.
	f.now = f.now.Add(30 * time.Second)
	next := f.totpNow(key)
	if _, err := f.validate(tessera.MethodGoogleAuth, second.Verification.ID, next); err != nil {
		t.Fatalf("Validate with the next step's code %s: %v", next, err)
	}

	// An earlier step's code within the skew is not accepted after a later one.
	third := f.initiate(t, tessera.MethodGoogleAuth, req)
	_, err = f.validate(tessera.MethodGoogleAuth, third.Verification.ID, totpCode(key, f.now.Unix()/30-1, 6))
	wantCode(t, err, tessera.EINVALIDCODE)
	// One step of drift ahead is accepted.
	if _, err := f.validate(tessera.MethodGoogleAuth, third.Verification.ID, totpCode(key, f.now.Unix()/30+1, 6)); err != nil {
		t.Fatalf("Validate with the code one step ahead: %v", err)
	}
}

func mustQuery(t *testing.T, uri, name string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get(name)
}

// TestInitiateRenewKeepsAVerificationInForce: Renew re-initiates a forced
// id only once its verification is expired or consumed. Until then it is
// ECONFLICT, and the attempts counted so far stand.
func TestInitiateRenewKeepsAVerificationInForce(t *testing.T) {
	for _, method := range []tessera.Method{tessera.MethodEmail, tessera.MethodGoogleAuth} {
		t.Run(string(method), func(t *testing.T) {
			f := newEngine(t)
			const id = "0b7e6c2a-5d0f-4c53-a1d4-3f2b9e8c7a61"
			req := &InitiateRequest{Consumer: "alice@example.com", Policy: Policy{ForcedVerificationID: id, ForcedCode: "135790", MaxAttempts: 2}, Renew: true}
			f.initiate(t, method, req)
			_, err := f.validate(method, id, "000000")
			wantCode(t, err, tessera.EINVALIDCODE)
			_, err = f.e.Initiate(context.Background(), owner, method, req)
			wantCode(t, err, tessera.ECONFLICT)
			_, err = f.validate(method, id, "000001")
			wantCode(t, err, tessera.EINVALIDCODE)
			_, err = f.e.Initiate(context.Background(), owner, method, req)
			wantCode(t, err, tessera.ECONFLICT) // locked, not expired: still in force
			_, err = f.validate(method, id, "000002")
			if n := attemptsOf(t, wantCode(t, err, tessera.ELOCKED)); n != 2 {
				t.Fatalf("attempts %d after a refused renewal, want 2", n)
			}

			f.now = f.now.Add(DefaultExpiry)
			v := f.initiate(t, method, req).Verification
			if v.Attempts != 0 || !v.ExpiresAt.Equal(f.now.Add(DefaultExpiry)) {
				t.Fatalf("renewal of an expired verification: %+v", v)
			}
			_, err = f.validate(method, id, "000003")
			if n := attemptsOf(t, wantCode(t, err, tessera.EINVALIDCODE)); n != 1 {
				t.Fatalf("attempts %d after renewal and a wrong code, want 1", n)
			}
		})
	}
}

func TestGoogleAuthReinitiateBeforeVerification(t *testing.T) {
	f := newEngine(t)
	const bob = "bob"
	req := &InitiateRequest{Consumer: bob} // no issuer: the default one
	first := f.initiate(t, tessera.MethodGoogleAuth, req)
	second := f.initiate(t, tessera.MethodGoogleAuth, req)
	if first.TOTPURI == "" || second.TOTPURI == "" {
		t.Fatalf("unverified consumer got URIs %q and %q, want two", first.TOTPURI, second.TOTPURI)
	}
	key1 := totpSecretOf(t, first.TOTPURI, "Tessera", bob)
	key2 := totpSecretOf(t, second.TOTPURI, "Tessera", bob)
	if bytes.Equal(key1, key2) {
		t.Fatal("re-initiate before verification returned the same secret")
	}
	// The replaced secret no longer works; the new one does.
	_, err := f.validate(tessera.MethodGoogleAuth, second.Verification.ID, f.totpNow(key1))
	wantCode(t, err, tessera.EINVALIDCODE)
	if _, err := f.validate(tessera.MethodGoogleAuth, second.Verification.ID, f.totpNow(key2)); err != nil {
		t.Fatalf("Validate with the new secret: %v", err)
	}
}

func TestGoogleAuthRemoveSecret(t *testing.T) {
	ctx := context.Background()
	f := newEngine(t)
	const carol = "carol@example.com"
	req := &InitiateRequest{Consumer: carol, Issuer: "Acme"}
	first := f.initiate(t, tessera.MethodGoogleAuth, req)
	key1 := totpSecretOf(t, first.TOTPURI, "Acme", carol)

	if _, err := f.e.Validate(ctx, owner, tessera.MethodGoogleAuth, first.Verification.ID, f.totpNow(key1), true); err != nil {
		t.Fatalf("Validate with removeSecret: %v", err)
	}
	if _, err := f.db.TOTPSecret(ctx, owner, carol); tessera.ErrorCode(err) != tessera.ENOTFOUND {
		t.Fatalf("secret still there after removeSecret (err %v)", err)
	}

	second := f.initiate(t, tessera.MethodGoogleAuth, req)
	if second.TOTPURI == "" {
		t.Fatal("initiate after removeSecret returned no TOTP URI")
	}
	key2 := totpSecretOf(t, second.TOTPURI, "Acme", carol)
	if bytes.Equal(key1, key2) {
		t.Error("initiate after removeSecret returned the removed secret")
	}
	f.now = f.now.Add(30 * time.Second)
	_, err := f.validate(tessera.MethodGoogleAuth, second.Verification.ID, f.totpNow(key1))
	wantCode(t, err, tessera.EINVALIDCODE)
	if _, err := f.validate(tessera.MethodGoogleAuth, second.Verification.ID, f.totpNow(key2)); err != nil {
		t.Fatalf("Validate with the new secret: %v", err)
	}
}

func TestGoogleAuthIgnoresCodeSettings(t *testing.T) {
	f := newEngine(t)
	// Code length, symbol set and template do not apply to TOTP.
	out := f.initiate(t, tessera.MethodGoogleAuth, &InitiateRequest{
		Consumer:     "dave",
		GenerateCode: CodeSpec{Length: 1, SymbolSet: []string{"a"}},
		Template:     Template{Body: "no code"},
	})
	if out.TOTPURI == "" {
		t.Error("no TOTP URI")
	}
	_, err := f.e.Initiate(context.Background(), owner, tessera.MethodGoogleAuth, &InitiateRequest{Consumer: ""})
	te := wantCode(t, err, tessera.EINVALID)
	if len(te.Details) != 1 || te.Details[0].Path != "consumer" {
		t.Errorf("details %+v, want consumer", te.Details)
	}
}
