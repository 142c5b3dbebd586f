package httpapi_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// user is an end user driving the accounts API through HTTP.
type user struct {
	e                     *env
	email, password       string
	idToken, refreshToken string
	recoveryCodes         []string // as shown when MFA was turned on
}

func (u *user) auth() map[string]string {
	return map[string]string{"Authorization": "Bearer " + u.idToken}
}

func (u *user) call(method, path string, body any, extra ...string) *response {
	h := u.auth()
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return u.e.doWith(method, path, body, h)
}

func (u *user) take(r *response) {
	u.idToken, u.refreshToken = r.str("idToken"), r.str("refreshToken")
	if u.idToken == "" || u.refreshToken == "" {
		u.e.t.Fatalf("no tokens in %s", r.raw)
	}
}

// register signs up and confirms the address with the emailed code.
func register(t *testing.T, e *env, email string) *user {
	t.Helper()
	u := &user{e: e, email: email, password: "correct horse battery"}
	e.doWith("POST", "/auth/register", map[string]any{"email": email, "password": u.password}, nil).want(t, 202)
	code := e.codeFor(email)
	r := e.doWith("POST", "/auth/register/confirm", map[string]any{"email": email, "code": code}, nil).want(t, 200)
	u.take(r)
	return u
}

func (u *user) login(t *testing.T) *response {
	t.Helper()
	return u.e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": u.password}, map[string]string{"User-Agent": "TestBrowser/1.0"})
}

// claimsOf verifies an ID token with the published JWKS, as a relying
// party would, and returns its claims.
func claimsOf(t *testing.T, e *env, idToken string) jwt.MapClaims {
	t.Helper()
	res, err := http.Get(e.srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string }
	}
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS %s: %v", raw, err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(idToken, claims, func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tok.Header["kid"] && k.Kty == "OKP" && k.Crv == "Ed25519" {
				x, err := base64.RawURLEncoding.DecodeString(k.X)
				return ed25519.PublicKey(x), err
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer("tessera"), jwt.WithAudience("tessera"), jwt.WithTimeFunc(e.clock.Now))
	if err != nil {
		t.Fatalf("ID token does not verify with the JWKS: %v", err)
	}
	return claims
}

func amr(c jwt.MapClaims) []string {
	var out []string
	for _, v := range c["amr"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

func TestRegisterLoginRefreshLogout(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "alice@example.com")
		me := u.call("GET", "/auth/me", nil).want(t, 200)
		if me.str("email") != "a***e@example.com" || me.body["hasValidatedEmail"] != true || me.str("status") != "active" || me.body["mfaEnabled"] != false {
			t.Fatalf("me: %s", me.raw)
		}
		c := claimsOf(t, e, u.idToken)
		if c["sub"] != me.str("id") || c["jti"] == "" || c["iat"] == nil || c["exp"] == nil {
			t.Fatalf("claims %v", c)
		}

		// Wrong password and unknown account: the same answer.
		bad := e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": "wrong password"}, nil).want(t, 401)
		unknown := e.doWith("POST", "/auth/login", map[string]any{"email": "nobody@example.com", "password": "wrong password"}, nil).want(t, 401)
		if bad.raw != unknown.raw {
			t.Fatalf("a wrong password (%s) and an unknown account (%s) answer differently", bad.raw, unknown.raw)
		}

		r := u.login(t).want(t, 200)
		u.take(r)
		if got := amr(claimsOf(t, e, u.idToken)); !slices.Equal(got, []string{"pwd"}) {
			t.Fatalf("amr %v", got)
		}
		if me := u.call("GET", "/auth/me", nil).want(t, 200); me.str("lastLoggedDevice") != "TestBrowser/1.0" {
			t.Fatalf("lastLoggedDevice %q", me.str("lastLoggedDevice"))
		}

		// Refresh rotates; the old token is then reuse, which revokes the session.
		old := u.refreshToken
		r = e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": old}, nil).want(t, 200)
		if r.str("refreshToken") == old || r.str("idToken") == "" {
			t.Fatalf("refresh did not rotate: %s", r.raw)
		}
		u.take(r)
		e.clock.Advance(time.Minute) // past the reuse grace
		e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": old}, nil).want(t, 401)
		u.call("GET", "/auth/me", nil).want(t, 401)
		e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 401)

		// Logout ends the session.
		u.take(u.login(t).want(t, 200))
		u.call("POST", "/auth/logout", nil).want(t, 200)
		u.call("GET", "/auth/me", nil).want(t, 401)
		e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 401)

		// ID tokens expire.
		u.take(u.login(t).want(t, 200))
		e.clock.Advance(16 * time.Minute)
		u.call("GET", "/auth/me", nil).want(t, 401)
	})
}

func TestRegisterTakenEmailSendsANotice(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		register(t, e, "bob@example.com")
		e.doWith("POST", "/auth/register", map[string]any{"email": "Bob@Example.com", "password": "another password"}, nil).want(t, 202)
		msgs := e.deliver()
		if len(msgs) != 1 || msgs[0].To != "bob@example.com" || sixDigits.MatchString(msgs[0].Body) || !strings.Contains(msgs[0].Body, "already has one") {
			t.Fatalf("second registration delivered %+v", msgs)
		}
		// Notices are not a way to flood someone's mailbox.
		e.doWith("POST", "/auth/register", map[string]any{"email": "bob@example.com", "password": "another password"}, nil).want(t, 202)
		if msgs := e.deliver(); len(msgs) != 0 {
			t.Fatalf("a second notice within minutes: %+v", msgs)
		}
		e.doWith("POST", "/auth/register", map[string]any{"email": "carol@example.com", "password": "short"}, nil).want(t, 422)
		e.doWith("POST", "/auth/register/confirm", map[string]any{"email": "nobody@example.com", "code": "123456"}, nil).want(t, 422)
	})
}

func TestRefreshRaceGetsTheSameSuccessor(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "tabs@example.com")
		var wg sync.WaitGroup
		results := make([]*response, 2)
		for i := range results {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i] = e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil)
			}(i)
		}
		wg.Wait()
		for _, r := range results {
			r.want(t, 200)
		}
		if results[0].str("refreshToken") != results[1].str("refreshToken") {
			t.Fatal("two tabs refreshing at once got different successors: one of them is now logged out")
		}
		u.take(results[0])
		u.call("GET", "/auth/me", nil).want(t, 200)
	})
}

var recoveryCode = regexp.MustCompile(`^[a-z0-9]{5}-[a-z0-9]{5}$`)

func TestTOTPEnrolmentAndMFALogin(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "dora@example.com")
		other := &user{e: e, email: u.email, password: u.password}
		other.take(other.login(t).want(t, 200))

		enrol := u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200)
		if !strings.HasPrefix(enrol.str("qrCode"), "data:image/png;base64,") {
			t.Fatalf("no QR code: %.200s", enrol.raw)
		}
		secret := totpSecret(t, enrol.str("totpUri"), "dora@example.com")
		u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", wrong(totpCode(secret, e.clock.Now()))).want(t, 422)
		ok := u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
		codes, _ := ok.body["recoveryCodes"].([]any)
		if ok.body["hasValidatedSecret"] != true || ok.body["mfaEnabled"] != true || len(codes) != 10 || !recoveryCode.MatchString(codes[0].(string)) {
			t.Fatalf("verifying TOTP answered %s", ok.raw)
		}
		u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(secret, e.clock.Now())).want(t, 409)
		other.call("GET", "/auth/me", nil).want(t, 401) // turning MFA on ended the other session
		u.call("GET", "/auth/me", nil).want(t, 200)

		// The password alone no longer logs in.
		r := u.login(t).want(t, 200)
		if r.body["mfaRequired"] != true || r.str("processingId") == "" || r.str("idToken") != "" {
			t.Fatalf("MFA login answered %s", r.raw)
		}
		methods := r.body["methods"].([]any)
		// Highest available: the authenticator app, or a recovery code; an
		// emailed code never completes the second factor.
		if !slices.Contains(methods, any("totp")) || !slices.Contains(methods, any("recovery_code")) || slices.Contains(methods, any("email")) {
			t.Fatalf("methods %v", methods)
		}
		pid := r.str("processingId")
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": "000000"}, nil).want(t, 422)
		e.clock.Advance(30 * time.Second)
		done := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": totpCode(secret, e.clock.Now())}, nil).want(t, 200)
		if got := amr(claimsOf(t, e, done.str("idToken"))); !slices.Contains(got, "mfa") {
			t.Fatalf("amr after MFA %v", got)
		}
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": totpCode(secret, e.clock.Now())}, nil).want(t, 404)

		// A recovery code works once.
		rc := codes[3].(string)
		pid = u.login(t).want(t, 200).str("processingId")
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "recovery_code", "code": strings.ToUpper(rc)}, nil).want(t, 200)
		pid = u.login(t).want(t, 200).str("processingId")
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "recovery_code", "code": rc}, nil).want(t, 422)

		// The emailed one-time token (api/v1/token/login) is refused: the
		// mailbox is where passwords are recovered to.
		e.deliver()
		e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "EMAIL", "processingId": pid}, nil).want(t, 422)
		if got := e.deliver(); len(got) != 0 {
			t.Fatalf("a refused login token still sent %v", got)
		}
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "email", "code": "123456"}, nil).want(t, 422)
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "sms", "code": "123456"}, nil).want(t, 422) // no phone
		e.clock.Advance(30 * time.Second)
		u.take(e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": totpCode(secret, e.clock.Now())}, nil).want(t, 200))

		// Removing the authenticator needs a code from it, and ends other sessions.
		u.call("DELETE", "/auth/otp/methods/totp", nil).want(t, 422)
		e.clock.Advance(30 * time.Second)
		off := u.call("DELETE", "/auth/otp/methods/totp", nil, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
		if off.body["hasValidatedSecret"] != false || off.body["mfaEnabled"] != false {
			t.Fatalf("after DELETE totp: %s", off.raw)
		}
		other.call("GET", "/auth/me", nil).want(t, 401)
		u.call("GET", "/auth/me", nil).want(t, 200)
		if r := u.login(t).want(t, 200); r.str("idToken") == "" {
			t.Fatalf("with MFA off the password logs in: %s", r.raw)
		}
	})
}

func TestSMSEnrolmentAndLogin(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "eve@example.com")
		u.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "4155552671", "country": "XX"}).want(t, 422)
		u.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "12", "country": "US"}).want(t, 422)
		r := u.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "(415) 555-2671", "country": "us"}).want(t, 200)
		if r.str("phoneNumber") != "+14*******71" || r.body["hasValidatedPhone"] != false {
			t.Fatalf("add phone answered %s", r.raw)
		}
		code := e.codeFor("+14155552671")
		v := u.call("POST", "/auth/otp/code", map[string]any{"channel": "sms"}, "x-otp", code).want(t, 200)
		if v.body["hasValidatedPhone"] != true || v.body["mfaEnabled"] != true || len(v.body["recoveryCodes"].([]any)) != 10 {
			t.Fatalf("verify sms answered %s", v.raw)
		}
		u.call("POST", "/auth/otp/code", map[string]any{"channel": "sms"}, "x-otp", code).want(t, 409)
		u.call("POST", "/auth/otp/code", map[string]any{"channel": "fax"}, "x-otp", code).want(t, 422)
		u.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "4155552672", "country": "US"}).want(t, 409)

		pid := u.login(t).want(t, 200).str("processingId")
		e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "PHONE_NUMBER", "processingId": pid}, nil).want(t, 200)
		smsCode := e.codeFor("+14155552671")
		// The code is bound to this login: another login's processingId cannot use it.
		pid2 := u.login(t).want(t, 200).str("processingId")
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid2, "method": "sms", "code": smsCode}, nil).want(t, 422)
		done := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "sms", "code": smsCode}, nil).want(t, 200)
		if got := amr(claimsOf(t, e, done.str("idToken"))); !slices.Contains(got, "sms") || !slices.Contains(got, "mfa") || slices.Contains(got, "otp") {
			t.Fatalf("amr after an SMS login %v", got)
		}
	})
}

func TestLoginLockHoldsUnderParallelAttempts(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "frank@example.com")
		var wg sync.WaitGroup
		var mu sync.Mutex
		counts := map[int]int{}
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": "not the password"}, nil)
				mu.Lock()
				counts[r.status]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if counts[401] != 5 || counts[429] != 15 {
			t.Fatalf("20 parallel wrong passwords: %v, want 5 checked (401) and 15 locked out (429)", counts)
		}
		r := u.login(t).want(t, 429)
		if r.header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After on a locked login")
		}
		e.clock.Advance(31 * time.Second)
		u.login(t).want(t, 200)
	})
}

func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "gina@example.com")
		other := &user{e: e, email: u.email, password: u.password}
		other.take(other.login(t).want(t, 200))
		list := u.call("GET", "/auth/sessions", nil).want(t, 200)
		if n := len(list.body["sessions"].([]any)); n != 2 {
			t.Fatalf("%d sessions listed, want 2", n)
		}
		u.call("POST", "/auth/password", map[string]any{"oldPassword": "nope nope nope", "newPassword": "a brand new secret"}).want(t, 422)
		u.call("POST", "/auth/password", map[string]any{"oldPassword": u.password, "newPassword": "short"}).want(t, 422)
		u.call("POST", "/auth/password", map[string]any{"oldPassword": u.password, "newPassword": "a brand new secret"}).want(t, 200)
		other.call("GET", "/auth/me", nil).want(t, 401)
		u.call("GET", "/auth/me", nil).want(t, 200)
		u.login(t).want(t, 401)
		u.password = "a brand new secret"
		u.take(u.login(t).want(t, 200))

		// Revoking a session by id.
		list = u.call("GET", "/auth/sessions", nil).want(t, 200)
		var first string
		for _, s := range list.body["sessions"].([]any) {
			if m := s.(map[string]any); m["current"] == false {
				first = m["id"].(string)
			}
		}
		u.call("DELETE", "/auth/sessions/"+first, nil).want(t, 200)
		u.call("DELETE", "/auth/sessions/"+first, nil).want(t, 404)
	})
}

// TestRecoveryCodesRegenerate: a new set voids the old one.
func TestRecoveryCodesRegenerate(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "rhea@example.com")
	u.call("POST", "/auth/mfa/recovery-codes", nil, "x-otp", "123456").want(t, 409) // MFA off
	enrol := u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200)
	secret := totpSecret(t, enrol.str("totpUri"), u.email)
	first := u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200).body["recoveryCodes"].([]any)
	e.clock.Advance(30 * time.Second)
	u.call("POST", "/auth/mfa/recovery-codes", nil).want(t, 422)
	again := u.call("POST", "/auth/mfa/recovery-codes", nil, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200).body["recoveryCodes"].([]any)
	if len(again) != 10 || again[0] == first[0] {
		t.Fatalf("regenerated %v", again)
	}
	pid := u.login(t).want(t, 200).str("processingId")
	e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "recovery_code", "code": first[0]}, nil).want(t, 422)
	e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "recovery_code", "code": again[0]}, nil).want(t, 200)
}

// TestARegistrationCodeConfirmsItsOwnPassword: a sign-up is no account
// until confirmed (its password does not log in), and a code confirms the
// password it was sent for, whoever registered the address later. (This
// replaces the first version's rule that the last registrant wins.)
func TestARegistrationCodeConfirmsItsOwnPassword(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		first := e.doWith("POST", "/auth/register", map[string]any{"email": "ivan@example.com", "password": "first password"}, nil).want(t, 202)
		firstCode := e.codeFor("ivan@example.com")
		firstUser := &user{e: e, email: "ivan@example.com", password: "first password"}
		firstUser.login(t).want(t, 401) // nothing to log in to yet

		e.clock.Advance(time.Minute)
		e.doWith("POST", "/auth/register", map[string]any{"email": "ivan@example.com", "password": "second password"}, nil).want(t, 202)
		secondCode := e.codeFor("ivan@example.com")
		// The first code confirms the first registration, named or not.
		e.doWith("POST", "/auth/register/confirm", map[string]any{"email": "ivan@example.com", "code": firstCode, "processingId": first.str("processingId")}, nil).want(t, 200)
		firstUser.take(firstUser.login(t).want(t, 200))
		(&user{e: e, email: "ivan@example.com", password: "second password"}).login(t).want(t, 401)
		// The address has an account now: the other pending code is void.
		e.doWith("POST", "/auth/register/confirm", map[string]any{"email": "ivan@example.com", "code": secondCode}, nil).want(t, 422)

		// Confirmed: the confirmation endpoint is no way in any more.
		e.clock.Advance(time.Minute)
		firstUser.call("GET", "/auth/otp/code?method=email", nil).want(t, 200)
		code := e.codeFor("ivan@example.com")
		e.doWith("POST", "/auth/register/confirm", map[string]any{"email": "ivan@example.com", "code": code}, nil).want(t, 422)
		firstUser.call("POST", "/auth/otp/code", map[string]any{"channel": "email"}, "x-otp", code).want(t, 409)
		firstUser.call("GET", "/auth/otp/code?method=fax", nil).want(t, 422)
		firstUser.call("GET", "/auth/otp/code?method=sms", nil).want(t, 422) // no phone
	})
}

// TestAccountBadInput: malformed requests get 4xx JSON naming the field.
func TestAccountBadInput(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	for _, c := range []struct {
		path, body string
		status     int
		field      string
	}{
		{"/auth/login", `{"email":"a@example.com"}`, 422, "password"},
		{"/auth/login", `{"email":5,"password":"x"}`, 422, "email"},
		{"/auth/login", `{`, 400, "body"},
		{"/auth/register", `{"email":"not-an-email","password":"long enough pw"}`, 422, "email"},
		{"/auth/login/refresh", `{}`, 422, "refreshToken"},
		{"/auth/login/mfa", `{"processingId":"x","method":"totp","code":"1"}`, 422, "processingId"},
		{"/api/v1/token/login", `{"destination":"EMAIL","processingId":"nope"}`, 422, "processingId"},
		{"/api/v1/token/login", `{"destination":"EMAIL","processingId":"dc910ae0-7c67-4ace-8ebb-9edd4b5d8b0f"}`, 404, ""},
	} {
		r := e.doWith("POST", c.path, c.body, nil).want(t, c.status)
		if p, _ := r.detail(); p != c.field {
			t.Errorf("%s %s: field %q, want %q (%s)", c.path, c.body, p, c.field, r.raw)
		}
	}
	e.doWith("GET", "/auth/me", nil, map[string]string{"Authorization": "Bearer not.a.jwt"}).want(t, 401)
	e.doWith("GET", "/auth/me", nil, nil).want(t, 401)
}

// TestLoginLimitPerIP: many logins from one address, for accounts that
// do not even exist, are cut off at the per-IP limit (60 a minute), in
// parallel too.
func TestLoginLimitPerIP(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < 70; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := e.doWith("POST", "/auth/login", map[string]any{"email": "nobody" + string(rune('a'+i%26)) + "@example.com", "password": "whatever it is"}, nil)
			mu.Lock()
			counts[r.status]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if counts[401] != 60 || counts[429] != 10 {
		t.Fatalf("70 parallel logins from one IP: %v, want 60 answered and 10 refused", counts)
	}
	e.clock.Advance(2 * time.Minute)
	e.doWith("POST", "/auth/login", map[string]any{"email": "nobody@example.com", "password": "whatever it is"}, nil).want(t, 401)
}
