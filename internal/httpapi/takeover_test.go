package httpapi_test

// The attacker's regression tests of issue 10: each path that took over an
// account with fewer factors than its owner set up, tried again through
// HTTP. Each test says what the attacker holds.
//
// The rules they check: ID tokens say how their session was authenticated
// (acr, amr, auth_time); with an authenticator app enrolled an emailed code
// never finishes a login; privileged actions need the user's full assurance
// level and an auth_time under 10 minutes old, else 403
// reauthentication_required, which POST /auth/reauthenticate steps up;
// recovery never grants more than the password; a pending registration
// never changes what an earlier code confirms.

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"
)

// Addresses only an attacker reads.
const (
	attackerPhone = "+14155550123"
	attackerEmail = "attacker@evil.test"
)

// ---- helpers ----

// enrolTOTP turns an authenticator app on for u, as
// TestTOTPEnrolmentAndMFALogin does, from u's current (fresh) session. It
// returns the app's secret and the recovery codes that come with it.
func enrolTOTP(t *testing.T, e *env, u *user) (string, []string) {
	t.Helper()
	enrol := u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200)
	secret := totpSecret(t, enrol.str("totpUri"), u.email)
	ok := u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
	var codes []string // none when MFA was on already
	list, _ := ok.body["recoveryCodes"].([]any)
	for _, c := range list {
		codes = append(codes, c.(string))
	}
	return secret, codes
}

// mfaChallenge logs u in with the password and checks that a second factor
// is asked for.
func mfaChallenge(t *testing.T, u *user) *response {
	t.Helper()
	r := u.login(t).want(t, 200)
	if r.body["mfaRequired"] != true || r.str("processingId") == "" || r.str("idToken") != "" {
		t.Fatalf("the password of %s, who has MFA on, answered %s", u.email, r.raw)
	}
	return r
}

// methodsOf lists the second factors a challenge offers.
func methodsOf(r *response) []string {
	var out []string
	for _, m := range r.body["methods"].([]any) {
		out = append(out, m.(string))
	}
	return out
}

// loginWithTOTP logs u in with the password and a code from the app. It
// first moves 30 s on: the app's code of a time step is accepted once.
func loginWithTOTP(t *testing.T, e *env, u *user, secret string) {
	t.Helper()
	e.clock.Advance(30 * time.Second)
	pid := mfaChallenge(t, u).str("processingId")
	u.take(e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": totpCode(secret, e.clock.Now())}, nil).want(t, 200))
}

// loginWithSMS logs u in with the password and a code texted to phone. It
// first moves 31 s on: one login code per 30 s.
func loginWithSMS(t *testing.T, e *env, u *user, phone string) {
	t.Helper()
	e.clock.Advance(31 * time.Second)
	pid := mfaChallenge(t, u).str("processingId")
	e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "PHONE_NUMBER", "processingId": pid}, nil).want(t, 200)
	u.take(e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "sms", "code": e.codeFor(phone)}, nil).want(t, 200))
}

// assurance is what an ID token says about its session: acr, amr,
// auth_time and the session id.
type assurance struct {
	acr, sid string
	amr      []string
	authTime int64 // 0 when missing
}

func assuranceOf(t *testing.T, e *env, idToken string) assurance {
	t.Helper()
	c := claimsOf(t, e, idToken)
	a := assurance{amr: amr(c)}
	a.acr, _ = c["acr"].(string)
	a.sid, _ = c["sid"].(string)
	switch v := c["auth_time"].(type) {
	case float64:
		a.authTime = int64(v)
	case json.Number:
		a.authTime, _ = v.Int64()
	}
	return a
}

// wantAssurance checks an ID token's acr and auth_time, and that its amr
// holds every one of has.
func wantAssurance(t *testing.T, e *env, what, idToken, acr string, authTime time.Time, has ...string) assurance {
	t.Helper()
	a := assuranceOf(t, e, idToken)
	if a.acr != acr {
		t.Errorf("%s: acr %q, want %q", what, a.acr, acr)
	}
	if a.authTime != authTime.Unix() {
		t.Errorf("%s: auth_time %d, want %d (%s)", what, a.authTime, authTime.Unix(), authTime.Format(time.RFC3339))
	}
	for _, m := range has {
		if !slices.Contains(a.amr, m) {
			t.Errorf("%s: amr %v, want it to hold %q", what, a.amr, m)
		}
	}
	return a
}

// wantReauth checks that r refuses a privileged action: 403
// reauthentication_required.
func wantReauth(t *testing.T, what string, r *response) {
	t.Helper()
	if r.status != 403 || r.str("code") != "reauthentication_required" {
		t.Errorf("%s: answered %d %s, want 403 reauthentication_required", what, r.status, clipBody([]byte(r.raw)))
	}
}

// wantRefused checks that r is a 4xx that grants nothing.
func wantRefused(t *testing.T, what string, r *response) {
	t.Helper()
	if r.status < 400 || r.status >= 500 || r.str("idToken") != "" {
		t.Errorf("%s: answered %d %s, want a 4xx and no tokens", what, r.status, clipBody([]byte(r.raw)))
	}
}

// codesTo returns the 6-digit codes of the messages just delivered to `to`.
func codesTo(e *env, to string) []string {
	var out []string
	for _, m := range e.deliver() {
		if c := sixDigits.FindString(m.Body); m.To == to && c != "" {
			out = append(out, c)
		}
	}
	return out
}

// ---- 1. what an ID token says ----

// TestStepUpClaimsSayHowTheSessionWasAuthenticated: acr, amr and auth_time
// for each way in, and a refresh keeps auth_time (a refresh token is no
// fresh proof).
func TestStepUpClaimsSayHowTheSessionWasAuthenticated(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "ada@example.com")
		u.take(u.login(t).want(t, 200))
		loggedIn := e.clock.Now()
		if a := wantAssurance(t, e, "password, MFA off", u.idToken, "aal1", loggedIn, "pwd"); !slices.Equal(a.amr, []string{"pwd"}) {
			t.Errorf("password, MFA off: amr %v, want [pwd]", a.amr)
		}
		e.clock.Advance(5 * time.Minute)
		u.take(e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 200))
		wantAssurance(t, e, "refreshed 5 minutes later", u.idToken, "aal1", loggedIn, "pwd")

		// The authenticator app.
		secret, recovery := enrolTOTP(t, e, u)
		loginWithTOTP(t, e, u, secret)
		wantAssurance(t, e, "password and app", u.idToken, "aal2", e.clock.Now(), "pwd", "otp", "mfa")

		// A recovery code.
		pid := mfaChallenge(t, u).str("processingId")
		done := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "recovery_code", "code": recovery[0]}, nil).want(t, 200)
		wantAssurance(t, e, "password and recovery code", done.str("idToken"), "aal2", e.clock.Now(), "pwd", "recovery_code", "mfa")

		// A texted code: "sms", not "otp" (which stands for the app).
		s := withSMSMFA(t, e, "sol@example.com", "+14155552671")
		loginWithSMS(t, e, s, "+14155552671")
		if a := wantAssurance(t, e, "password and SMS", s.idToken, "aal2", e.clock.Now(), "pwd", "sms", "mfa"); slices.Contains(a.amr, "otp") {
			t.Errorf("password and SMS: amr %v holds otp: an SMS code is not the authenticator app", a.amr)
		}
	})
}

// ---- 2. highest available second factor ----

// TestTakeoverEmailCodeNeverFinishesALoginWithAnApp: the attacker holds the
// password and the mailbox; the owner has an authenticator app.
func TestTakeoverEmailCodeNeverFinishesALoginWithAnApp(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		victim := register(t, e, "nora@example.com")
		enrolTOTP(t, e, victim)
		e.deliver()

		attacker := &user{e: e, email: victim.email, password: victim.password}
		ch := mfaChallenge(t, attacker)
		methods := methodsOf(ch)
		if slices.Contains(methods, "email") || slices.Contains(methods, "sms") || !slices.Contains(methods, "totp") || !slices.Contains(methods, "recovery_code") {
			t.Errorf("methods %v, want totp and recovery_code, never email (nor sms, not turned on)", methods)
		}
		pid := ch.str("processingId")
		wantRefused(t, "an emailed login code for an account with an app", e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "EMAIL", "processingId": pid}, nil))
		code := "123456" // a guess, unless the server mails one
		for _, c := range codesTo(e, victim.email) {
			t.Errorf("a login code was mailed to %s although the account has an app", victim.email)
			code = c
		}
		done := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "email", "code": code}, nil)
		wantRefused(t, "finishing the login with an emailed code", done)
	})
}

// ---- 3. a stolen ID token ----

// privilegedCalls are the privileged actions, as a thief holding only an ID
// token would try them: his own phone, address and codes, guessed tokens.
var privilegedCalls = []struct {
	method, path string
	body         any
	otp          string // x-otp header
}{
	{"POST", "/auth/password", map[string]any{"oldPassword": "a guess at the password", "newPassword": "the thief's password"}, ""},
	{"POST", "/auth/otp/methods/sms", map[string]any{"phone": "4155550123", "country": "US"}, ""},
	{"POST", "/auth/otp/methods/totp", nil, ""},
	{"POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "123456"},
	{"POST", "/auth/otp/code", map[string]any{"channel": "sms"}, "123456"},
	{"DELETE", "/auth/otp/methods/totp", nil, "123456"},
	{"POST", "/auth/mfa/recovery-codes", nil, "123456"},
	{"POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber=%2B14155550123", nil, ""},
	{"POST", "/api/v1/token/userKeys/adding/email?newEmail=attacker%40evil.test", nil, ""},
	{"POST", "/api/v1/userKeys/adding", map[string]any{"newKey": attackerPhone, "oneTimeToken": "123456"}, ""},
	{"POST", "/api/v1/token/userKeys/changing?keyType=EMAIL", nil, ""},
	{"POST", "/api/v1/token/userKeys/changing/newKey", map[string]any{"oneTimeToken": "123456", "newUserKey": attackerEmail}, ""},
	{"POST", "/api/v1/userKeys/changing", map[string]any{"newUserKey": attackerEmail, "oneTimeToken": "123456"}, ""},
	{"POST", "/api/v1/token/userKeys/removing?keyType=PHONE_NUMBER", nil, ""},
	{"POST", "/api/v1/userKeys/removing", map[string]any{"keyType": "PHONE_NUMBER", "oneTimeToken": "123456"}, ""},
	{"POST", "/api/v1/token/antiPhishing/adding", nil, ""},
	{"POST", "/api/v1/token/antiPhishing/changing", nil, ""},
	{"POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": "123456", "antiPhishingCode": "thief-code"}, ""},
	{"POST", "/api/v1/antiPhishing/changing", map[string]any{"oneTimeToken": "123456", "antiPhishingCode": "thief-code"}, ""},
	{"POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "EMAIL"}, ""},
	{"POST", "/api/v1/mfa/disabling", map[string]any{"destination": "EMAIL", "oneTimeToken": "123456"}, ""},
}

// TestStolenIDTokenCannotDoPrivilegedActions: the thief holds an ID token
// 11 minutes old (valid for 15), of a user with MFA off and of one with an
// authenticator app. Every privileged action is refused and changes nothing.
func TestStolenIDTokenCannotDoPrivilegedActions(t *testing.T) {
	t.Run("mfa off", func(t *testing.T) { onEachStore(t, func(t *testing.T, e *env) { stolenIDToken(t, e, false) }) })
	t.Run("authenticator app", func(t *testing.T) { onEachStore(t, func(t *testing.T, e *env) { stolenIDToken(t, e, true) }) })
}

func stolenIDToken(t *testing.T, e *env, withApp bool) {
	u := register(t, e, "tom@example.com")
	var secret string
	if withApp {
		secret, _ = enrolTOTP(t, e, u)
		loginWithTOTP(t, e, u, secret)
	} else {
		u.take(u.login(t).want(t, 200))
	}
	before := u.call("GET", "/auth/me", nil).want(t, 200)
	e.deliver()

	e.clock.Advance(11 * time.Minute)
	thief := &user{e: e, email: u.email, idToken: u.idToken}
	thief.call("GET", "/auth/me", nil).want(t, 200) // the token is still valid
	for _, c := range privilegedCalls {
		var extra []string
		if c.otp != "" {
			extra = []string{"x-otp", c.otp}
		}
		what := c.method + " " + c.path
		if b, ok := c.body.(map[string]any); ok && b["channel"] != nil {
			what += " " + b["channel"].(string)
		}
		wantReauth(t, what+" with an 11-minute-old token", thief.call(c.method, c.path, c.body, extra...))
	}

	// Nothing changed, and nothing went out.
	after := thief.call("GET", "/auth/me", nil).want(t, 200)
	for _, k := range []string{"email", "phoneNumber", "hasValidatedPhone", "hasValidatedSecret", "mfaEnabled", "smsMfaEnabled", "hasAntiPhishingCode", "lastPasswordChangeDate"} {
		if a, b := after.body[k], before.body[k]; !equalJSON(a, b) {
			t.Errorf("%s changed from %v to %v", k, b, a)
		}
	}
	for _, m := range e.deliver() {
		if m.To == attackerPhone || m.To == attackerEmail || sixDigits.MatchString(m.Body) {
			t.Errorf("a refused action sent a message to %s: %q", m.To, m.Body)
		}
	}
	// The owner's password and factors are as they were.
	if withApp {
		loginWithTOTP(t, e, u, secret)
	} else if r := u.login(t).want(t, 200); r.str("idToken") == "" {
		t.Fatalf("the owner's password no longer logs in: %s", r.raw)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// ---- 4. stepping up ----

// TestStepUpReauthenticate: a session too old for a privileged action gets
// a fresh auth_time from POST /auth/reauthenticate (the password, and with
// MFA on the app), without a new login; then the action succeeds. The 403
// is no blanket refusal.
func TestStepUpReauthenticate(t *testing.T) {
	t.Run("mfa off", func(t *testing.T) { onEachStore(t, func(t *testing.T, e *env) { stepUp(t, e, false) }) })
	t.Run("authenticator app", func(t *testing.T) { onEachStore(t, func(t *testing.T, e *env) { stepUp(t, e, true) }) })
}

func stepUp(t *testing.T, e *env, withApp bool) {
	u := register(t, e, "stella@example.com")
	var secret string
	if withApp {
		secret, _ = enrolTOTP(t, e, u)
		loginWithTOTP(t, e, u, secret)
	} else {
		u.take(u.login(t).want(t, 200))
	}
	before := assuranceOf(t, e, u.idToken)
	e.deliver()
	e.clock.Advance(11 * time.Minute)
	wantReauth(t, "an anti-phishing token from an 11-minute-old session", u.call("POST", "/api/v1/token/antiPhishing/adding", nil))

	reauth := func(pw string) *response {
		return e.doWith("POST", "/auth/reauthenticate", map[string]any{"password": pw}, u.auth())
	}
	if r := reauth("not the password"); (r.status != 401 && r.status != 422) || r.str("idToken") != "" || r.str("processingId") != "" {
		t.Fatalf("POST /auth/reauthenticate with a wrong password answered %d %s, want 401 or 422 and nothing else", r.status, r.raw)
	}
	r := reauth(u.password).want(t, 200)
	if withApp {
		// The password is only the first step: the app finishes it.
		if r.body["mfaRequired"] != true || r.str("processingId") == "" || r.str("expiresAt") == "" || r.str("idToken") != "" {
			t.Fatalf("step-up with MFA on answered %s", r.raw)
		}
		if m := methodsOf(r); !slices.Contains(m, "totp") || slices.Contains(m, "email") {
			t.Errorf("step-up methods %v, want totp and never email", m)
		}
		r = e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": r.str("processingId"), "method": "totp", "code": totpCode(secret, e.clock.Now())}, nil).want(t, 200)
	}
	if r.str("idToken") == "" || r.str("idTokenExpiresAt") == "" || r.str("refreshToken") != "" {
		t.Fatalf("step-up answered %s, want an ID token only", r.raw)
	}
	acr, has := "aal1", []string{"pwd"}
	if withApp {
		acr, has = "aal2", []string{"pwd", "otp"}
	}
	if a := wantAssurance(t, e, "after step-up", r.str("idToken"), acr, e.clock.Now(), has...); a.sid != before.sid {
		t.Errorf("step-up made session %q, want the same session %q", a.sid, before.sid)
	}
	u.idToken = r.str("idToken")

	// The privileged action now succeeds.
	if withApp {
		e.clock.Advance(30 * time.Second)
		codes := u.call("POST", "/auth/mfa/recovery-codes", nil, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
		if len(codes.body["recoveryCodes"].([]any)) != 10 {
			t.Fatalf("recovery codes after step-up: %s", codes.raw)
		}
	} else {
		u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
		u.call("POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": e.codeFor(u.email), "antiPhishingCode": "blue-otter-42"}).want(t, 200)
	}
	// Same session: its refresh token still works.
	e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 200)
}

// ---- 5. takeover 1: the mailbox alone ----

// TestTakeoverWithTheMailboxAlone: the attacker holds only the victim's
// mailbox; the victim has an authenticator app. A password reset works, but
// never yields a session, and the app stays.
func TestTakeoverWithTheMailboxAlone(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		victim := register(t, e, "vera@example.com")
		secret, _ := enrolTOTP(t, e, victim)
		e.deliver()

		// The processingId the client sends is a label; the server issues its own.
		const label = "0b7c6a52-3f1e-4d2a-9c8b-5e4f3a2b1c0d"
		asked := e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": victim.email, "destination": "EMAIL", "processingId": label}, nil).want(t, 200)
		flow := asked.str("processingId")
		if flow == "" || flow == label {
			t.Fatalf("password recovery answered %s: want a processingId the server issued (the client's %s is only a label)", asked.raw, label)
		}
		token := e.codeFor(victim.email)
		reset := func(pid string) *response {
			return e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": pid, "oneTimeToken": token, "newPassword": "the attacker's password"}, nil)
		}
		wantRefused(t, "a reset bound by the client's label", reset(label))
		if r := reset(flow).want(t, 200); r.str("idToken") != "" || r.str("refreshToken") != "" {
			t.Fatalf("a password reset granted a session: %s", r.raw)
		}

		// The new password is only the first factor; the mailbox is no second.
		attacker := &user{e: e, email: victim.email, password: "the attacker's password"}
		ch := mfaChallenge(t, attacker)
		if m := methodsOf(ch); slices.Contains(m, "email") || !slices.Contains(m, "totp") {
			t.Errorf("after a reset, methods %v: want totp, never email", m)
		}
		pid := ch.str("processingId")
		e.deliver() // the reset notice
		wantRefused(t, "an emailed login code after a reset", e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "EMAIL", "processingId": pid}, nil))
		code := token
		for _, c := range codesTo(e, victim.email) {
			t.Errorf("a login code was mailed to %s although the account has an app", victim.email)
			code = c
		}
		if r := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "email", "code": code}, nil); r.status < 400 || r.str("idToken") != "" {
			t.Fatalf("the mailbox finished the login after a reset: %d %s", r.status, r.raw)
		}
		// With no session, the old way out (MFA disabling by EMAIL) is closed.
		e.doWith("POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "EMAIL"}, nil).want(t, 401)
		e.doWith("POST", "/api/v1/mfa/disabling", map[string]any{"destination": "EMAIL", "oneTimeToken": code}, nil).want(t, 401)

		// The app is still enrolled: the owner logs in with it.
		victim.password = attacker.password
		loginWithTOTP(t, e, victim, secret)
		if me := victim.call("GET", "/auth/me", nil).want(t, 200); me.body["hasValidatedSecret"] != true || me.body["mfaEnabled"] != true {
			t.Fatalf("after the reset: %s", me.raw)
		}
	})
}

// ---- 6. takeover 2: a SIM swap ----

// TestTakeoverBySIMSwap: the victim has an app and a phone added only as a
// user key. The attacker holds the password and, after a SIM swap, the
// phone. Key recovery of the email needs a second factor besides the phone.
func TestTakeoverBySIMSwap(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const phone = attackerPhone // the victim's number, now the attacker's SIM
		victim := register(t, e, "sid@example.com")
		victim.take(victim.login(t).want(t, 200))
		victim.call("POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber=%2B14155550123", nil).want(t, 200)
		victim.call("POST", "/api/v1/userKeys/adding", map[string]any{"newKey": phone, "oneTimeToken": e.codeFor(phone)}).want(t, 200)
		secret, _ := enrolTOTP(t, e, victim)
		e.deliver()

		// recoverEmail runs key recovery of the email with a token to the
		// phone, plus the fields in mfa.
		recoverEmail := func(newEmail string, mfa map[string]any) *response {
			pid := mfaChallenge(t, victim).str("processingId")
			e.doWith("POST", "/api/v1/token/userKeys/recovery/verification", map[string]any{"keyType": "EMAIL", "destination": "PHONE_NUMBER", "processingId": pid}, nil).want(t, 200)
			check := e.codeFor(phone)
			e.doWith("POST", "/api/v1/token/userKeys/recovery/newKey", map[string]any{"destination": newEmail, "processingId": pid}, nil).want(t, 200)
			body := map[string]any{"processingId": pid, "keyType": "EMAIL", "verificationToken": check, "newKey": newEmail, "newKeyToken": e.codeFor(newEmail)}
			maps.Copy(body, mfa)
			return e.doWith("POST", "/api/v1/userKeys/recovery", body, nil)
		}
		if r := recoverEmail(attackerEmail, nil); r.status < 400 || r.status >= 500 {
			t.Fatalf("key recovery with the password and the phone alone answered %d: the email was replaced: %s", r.status, r.raw)
		}
		// The email is unchanged: it still logs in, the attacker's does not.
		mfaChallenge(t, victim)
		(&user{e: e, email: attackerEmail, password: victim.password}).login(t).want(t, 401)

		// The owner who lost the mailbox proves the app as well, and recovers.
		e.clock.Advance(31 * time.Second)
		ok := recoverEmail("sid.new@example.com", map[string]any{"mfaMethod": "totp", "mfaCode": totpCode(secret, e.clock.Now())}).want(t, 200)
		if ok.str("email") != "s***w@example.com" {
			t.Fatalf("recovered %s", ok.raw)
		}
		victim.email = "sid.new@example.com"
		mfaChallenge(t, victim)
	})
}

// ---- 7. takeover 3: the sign-up race ----

// TestTakeoverBySignUpRace: the owner registers; the attacker registers the
// same address with his own password, within the 30 s cooldown (and, in
// the second case, again after it). The owner's code confirms the owner's
// password, and no later code confirms the attacker's.
func TestTakeoverBySignUpRace(t *testing.T) {
	t.Run("within the cooldown", func(t *testing.T) { onEachStore(t, func(t *testing.T, e *env) { signUpRace(t, e, false) }) })
	t.Run("within and after the cooldown", func(t *testing.T) { onEachStore(t, func(t *testing.T, e *env) { signUpRace(t, e, true) }) })
}

func signUpRace(t *testing.T, e *env, again bool) {
	const addr = "ivy@example.com"
	owner := &user{e: e, email: addr, password: "the owner's password"}
	attacker := &user{e: e, email: addr, password: "the attacker's password"}
	signUp := func(u *user) *response {
		return e.doWith("POST", "/auth/register", map[string]any{"email": addr, "password": u.password}, nil).want(t, 202)
	}
	reg := signUp(owner)
	first := e.codeFor(addr)
	signUp(attacker)
	if again {
		e.clock.Advance(31 * time.Second)
		signUp(attacker)
	}
	later := codesTo(e, addr)

	if again {
		// Two sign-ups with codes wait: a code alone may be either's (the
		// attacker's code reached the owner's inbox too), so the owner's
		// client names its own registration.
		r := e.doWith("POST", "/auth/register/confirm", map[string]any{"email": addr, "code": first}, nil).want(t, 422)
		if path, _ := r.detail(); path != "processingId" {
			t.Fatalf("an ambiguous confirmation answered %s, want the processingId asked for", r.raw)
		}
		owner.take(e.doWith("POST", "/auth/register/confirm", map[string]any{"email": addr, "code": first, "processingId": reg.str("processingId")}, nil).want(t, 200))
	} else {
		owner.take(e.doWith("POST", "/auth/register/confirm", map[string]any{"email": addr, "code": first}, nil).want(t, 200))
	}
	if r := owner.login(t); r.status != 200 || r.str("idToken") == "" {
		t.Fatalf("after confirming with the first code the owner's password answered %d %s: a later registration replaced it", r.status, r.raw)
	}
	attacker.login(t).want(t, 401)
	for _, c := range later {
		if c != first {
			wantRefused(t, "a later registration's code, after the owner confirmed", e.doWith("POST", "/auth/register/confirm", map[string]any{"email": addr, "code": c}, nil))
		}
	}
	attacker.login(t).want(t, 401)
	owner.login(t).want(t, 200)
	if reg.str("processingId") == "" {
		t.Errorf("POST /auth/register answered %s: want a processingId", reg.raw)
	}
}

// ---- 8. disabling MFA ----

// TestMFADisablingWithTheMailboxNeverRemovesTheApp: the victim has texted
// codes and an app. The attacker holds the password, the phone (SIM swap)
// and the mailbox: his session, reached by SMS, cannot remove the app. The
// owner, fresh from the app, can.
func TestMFADisablingWithTheMailboxNeverRemovesTheApp(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const phone = "+14155552671"
		victim := withSMSMFA(t, e, "mona@example.com", phone)
		loginWithSMS(t, e, victim, phone) // with MFA on, enrolling takes an aal2 session
		secret, _ := enrolTOTP(t, e, victim)
		e.deliver()

		attacker := &user{e: e, email: victim.email, password: victim.password}
		loginWithSMS(t, e, attacker, phone)
		// The refusal may come at either step.
		r := attacker.call("POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "EMAIL"})
		if r.status == 200 {
			r = attacker.call("POST", "/api/v1/mfa/disabling", map[string]any{"destination": "EMAIL", "oneTimeToken": e.codeFor(victim.email)})
		}
		wantReauth(t, "turning MFA off by email from a session reached by SMS", r)

		// The app is still there, and the owner, fresh from it, may turn MFA off.
		loginWithTOTP(t, e, victim, secret)
		e.clock.Advance(31 * time.Second)
		victim.call("POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "EMAIL"}).want(t, 200)
		off := victim.call("POST", "/api/v1/mfa/disabling", map[string]any{"destination": "EMAIL", "oneTimeToken": e.codeFor(victim.email)}).want(t, 200)
		if off.body["mfaEnabled"] != false || off.body["hasValidatedSecret"] != false {
			t.Fatalf("after the owner turned MFA off: %s", off.raw)
		}
	})
}
