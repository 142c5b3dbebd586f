package httpapi_test

import (
	"strings"
	"testing"
	"time"
)

// label is a processingId a client chose: a label, never a flow.
const label = "7d2c9e43-5b1a-4f7e-9a6b-2f3c1d0e8a91"

// withSMSMFA registers a user and turns texted codes on as a second factor.
func withSMSMFA(t *testing.T, e *env, email, phone string) *user {
	t.Helper()
	u := register(t, e, email)
	u.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": phone, "country": "US"}).want(t, 200)
	r := u.call("POST", "/auth/otp/code", map[string]any{"channel": "sms"}, "x-otp", e.codeFor(phone)).want(t, 200)
	for _, c := range r.body["recoveryCodes"].([]any) {
		u.recoveryCodes = append(u.recoveryCodes, c.(string))
	}
	return u
}

// noticeTo returns the body of a message to `to` that carries no code.
func noticeTo(t *testing.T, e *env, to, about string) {
	t.Helper()
	for _, m := range e.deliver() {
		if m.To == to && strings.Contains(m.Subject, about) {
			return
		}
	}
	t.Fatalf("no notice about %q went to %s", about, to)
}

func TestPasswordRecovery(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "pat@example.com")
		ask := func(email string) *response {
			return e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": email, "destination": "EMAIL", "processingId": label}, nil).want(t, 200)
		}
		known, unknown := ask("pat@example.com"), ask("nobody@example.com")
		if known.str("expiration") != "30min." || unknown.str("expiration") != "30min." || known.str("destination") != "p***t@example.com" {
			t.Fatalf("answers %s / %s", known.raw, unknown.raw)
		}
		token := e.codeFor("pat@example.com")
		for _, m := range e.deliver() {
			if m.To == "nobody@example.com" {
				t.Fatal("a recovery was sent for an account that does not exist")
			}
		}
		// The reset names the flow the server issued; the client's own
		// processingId is only a label.
		pid := known.str("processingId")
		if pid == "" || unknown.str("processingId") == "" || pid == label {
			t.Fatalf("no server-issued processingId: %s / %s", known.raw, unknown.raw)
		}
		reset := func(processingID, code, pw string) *response {
			return e.doWith("POST", "/api/v1/password/recovery", map[string]any{
				"email": u.email, "destination": "EMAIL", "processingId": processingID, "oneTimeToken": code, "newPassword": pw}, nil)
		}
		reset(label, token, "a new long password").want(t, 404)                       // the client's label is no flow
		reset(unknown.str("processingId"), token, "a new long password").want(t, 422) // another flow's token
		reset(pid, token, "short").want(t, 422)
		reset(pid, token, "a new long password").want(t, 200)
		reset(pid, token, "yet another password").want(t, 404) // replay: the flow is used
		u.call("GET", "/auth/me", nil).want(t, 401)            // every session ended
		noticeTo(t, e, "pat@example.com", "password was reset")
		u.login(t).want(t, 401)
		u.password = "a new long password"
		u.login(t).want(t, 200)

		// Expiry.
		e.clock.Advance(time.Minute)
		pid = ask("pat@example.com").str("processingId")
		token = e.codeFor("pat@example.com")
		e.clock.Advance(31 * time.Minute)
		if r := reset(pid, token, "the third password").want(t, 422); r.str("code") != "expired" {
			t.Fatalf("an expired token answered %s", r.raw)
		}
	})
}

func TestDisablingMFA(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := withSMSMFA(t, e, "mia@example.com", "+14155552671")
		enrol := u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200)
		secret := totpSecret(t, enrol.str("totpUri"), u.email)
		u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)

		// Texted codes off: the token goes to the phone.
		sent := u.call("POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "PHONE_NUMBER"}).want(t, 200)
		if sent.str("destination") != "+14*******71" || sent.str("expiration") != "30min." {
			t.Fatalf("answered %s", sent.raw)
		}
		code := e.codeFor("+14155552671")
		u.call("POST", "/api/v1/mfa/disabling", map[string]any{"destination": "EMAIL", "oneTimeToken": code}).want(t, 422) // bound to PHONE_NUMBER
		off := u.call("POST", "/api/v1/mfa/disabling", map[string]any{"destination": "PHONE_NUMBER", "oneTimeToken": code}).want(t, 200)
		if off.body["smsMfaEnabled"] != false || off.body["mfaEnabled"] != true || off.body["hasValidatedPhone"] != true {
			t.Fatalf("after disabling SMS: %s", off.raw)
		}
		noticeTo(t, e, u.email, "MFA was turned off")
		u.call("POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "PHONE_NUMBER"}).want(t, 409)

		// MFA off altogether: the token goes by email.
		u.call("POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "EMAIL"}).want(t, 200)
		code = e.codeFor(u.email)
		off = u.call("POST", "/api/v1/mfa/disabling", map[string]any{"destination": "EMAIL", "oneTimeToken": code}).want(t, 200)
		if off.body["mfaEnabled"] != false || off.body["hasValidatedSecret"] != false {
			t.Fatalf("after disabling MFA: %s", off.raw)
		}
		u.call("POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "EMAIL"}).want(t, 409)
		if r := u.login(t).want(t, 200); r.str("idToken") == "" {
			t.Fatalf("with MFA off the password logs in: %s", r.raw)
		}
	})
}

func TestAntiPhishingCode(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "otto@example.com")
		u.call("POST", "/api/v1/token/antiPhishing/changing", nil).want(t, 409)
		u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
		code := e.codeFor(u.email)
		u.call("POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": code, "antiPhishingCode": "x"}).want(t, 422)
		u.call("POST", "/api/v1/antiPhishing/changing", map[string]any{"oneTimeToken": code, "antiPhishingCode": "blue-otter-42"}).want(t, 409)
		set := u.call("POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": code, "antiPhishingCode": "blue-otter-42"}).want(t, 200)
		if set.body["hasAntiPhishingCode"] != true {
			t.Fatalf("answered %s", set.raw)
		}
		u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 409)

		// Every email from now on shows it.
		e.clock.Advance(time.Minute)
		u.call("GET", "/auth/otp/code?method=email", nil).want(t, 200)
		msgs := e.deliver()
		if len(msgs) != 1 || !strings.Contains(msgs[0].Body, "Your anti-phishing code: blue-otter-42") {
			t.Fatalf("an email after the code was set: %+v", msgs)
		}
		u.call("POST", "/api/v1/token/antiPhishing/changing", nil).want(t, 200)
		code = e.codeFor(u.email)
		u.call("POST", "/api/v1/antiPhishing/changing", map[string]any{"oneTimeToken": code, "antiPhishingCode": "green-heron-7"}).want(t, 200)
		e.clock.Advance(time.Minute)
		u.call("GET", "/auth/otp/code?method=email", nil).want(t, 200)
		if msgs := e.deliver(); len(msgs) != 1 || !strings.Contains(msgs[0].Body, "green-heron-7") {
			t.Fatalf("after the change: %+v", msgs)
		}
	})
}

func TestPhoneKeyAddChangeRemove(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "kai@example.com")
		u.call("POST", "/api/v1/token/userKeys/adding/email?newEmail=new@example.com", nil).want(t, 409)
		u.call("POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber=555", nil).want(t, 422)
		u.call("POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber=%2B14155552671", nil).want(t, 200)
		token := e.codeFor("+14155552671")
		u.call("POST", "/api/v1/userKeys/adding", map[string]any{"newKey": "+14155552672", "oneTimeToken": token}).want(t, 422) // another number
		added := u.call("POST", "/api/v1/userKeys/adding", map[string]any{"newKey": "+14155552671", "oneTimeToken": token}).want(t, 200)
		if added.body["hasValidatedPhone"] != true || added.body["smsMfaEnabled"] != false || added.str("phoneNumber") != "+14*******71" {
			t.Fatalf("added %s", added.raw)
		}
		u.call("POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber=%2B14155552672", nil).want(t, 409)

		// Changing: a token to the current phone, then one to the new phone.
		u.call("POST", "/api/v1/token/userKeys/changing?keyType=PHONE_NUMBER", nil).want(t, 200)
		first := e.codeFor("+14155552671")
		u.call("POST", "/api/v1/userKeys/changing", map[string]any{"newUserKey": "+14155552672", "oneTimeToken": first}).want(t, 404) // the flow is at its first step
		u.call("POST", "/api/v1/token/userKeys/changing/newKey", map[string]any{"oneTimeToken": first, "newUserKey": "+14155552672"}).want(t, 200)
		second := e.codeFor("+14155552672")
		changed := u.call("POST", "/api/v1/userKeys/changing", map[string]any{"newUserKey": "+14155552672", "oneTimeToken": second}).want(t, 200)
		if changed.str("phoneNumber") != "+14*******72" {
			t.Fatalf("changed %s", changed.raw)
		}
		noticeTo(t, e, u.email, "phone number was changed")

		// Removing: never the email; the phone with a token sent to it.
		u.call("POST", "/api/v1/token/userKeys/removing?keyType=EMAIL", nil).want(t, 409)
		u.call("POST", "/api/v1/token/userKeys/removing?keyType=PHONE_NUMBER", nil).want(t, 200)
		gone := u.call("POST", "/api/v1/userKeys/removing", map[string]any{"keyType": "PHONE_NUMBER", "oneTimeToken": e.codeFor("+14155552672")}).want(t, 200)
		if gone.str("phoneNumber") != "" || gone.body["hasValidatedPhone"] != false {
			t.Fatalf("removed %s", gone.raw)
		}
		u.call("POST", "/api/v1/token/userKeys/removing?keyType=PHONE_NUMBER", nil).want(t, 404)
	})
}

func TestKeysUsedByMFACannotChange(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := withSMSMFA(t, e, "lee@example.com", "+14155552671")
	for _, path := range []string{
		"/api/v1/token/userKeys/changing?keyType=PHONE_NUMBER",
		"/api/v1/token/userKeys/changing?keyType=EMAIL",
		"/api/v1/token/userKeys/removing?keyType=PHONE_NUMBER",
	} {
		if r := u.call("POST", path, nil).want(t, 409); !strings.Contains(r.str("error"), "disable it first") {
			t.Fatalf("%s: %s", path, r.raw)
		}
	}
}

func TestEmailChange(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "old@example.com")
		other := &user{e: e, email: u.email, password: u.password}
		other.take(other.login(t).want(t, 200))
		register(t, e, "taken@example.com")

		u.call("POST", "/api/v1/token/userKeys/changing?keyType=EMAIL", nil).want(t, 200)
		first := e.codeFor("old@example.com")
		u.call("POST", "/api/v1/token/userKeys/changing/newKey", map[string]any{"oneTimeToken": first, "newUserKey": "new@example.com"}).want(t, 200)
		second := e.codeFor("new@example.com")
		changed := u.call("POST", "/api/v1/userKeys/changing", map[string]any{"newUserKey": "new@example.com", "oneTimeToken": second}).want(t, 200)
		if changed.str("email") != "n***w@example.com" || changed.body["hasValidatedEmail"] != true {
			t.Fatalf("changed %s", changed.raw)
		}
		noticeTo(t, e, "old@example.com", "email address was changed")
		other.call("GET", "/auth/me", nil).want(t, 401)
		u.call("GET", "/auth/me", nil).want(t, 200)
		u.login(t).want(t, 401)
		u.email = "new@example.com"
		u.login(t).want(t, 200)

		// Another account's address cannot be taken.
		e.clock.Advance(time.Minute)
		u.call("POST", "/api/v1/token/userKeys/changing?keyType=EMAIL", nil).want(t, 200)
		first = e.codeFor("new@example.com")
		u.call("POST", "/api/v1/token/userKeys/changing/newKey", map[string]any{"oneTimeToken": first, "newUserKey": "taken@example.com"}).want(t, 200)
		u.call("POST", "/api/v1/userKeys/changing", map[string]any{"newUserKey": "taken@example.com", "oneTimeToken": e.codeFor("taken@example.com")}).want(t, 409)
	})
}

func TestUserKeyRecovery(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := withSMSMFA(t, e, "rio@example.com", "+14155552671")
		mallory := register(t, e, "mallory@example.com")
		processing := u.login(t).want(t, 200).str("processingId")
		verification := func(keyType, dest string) *response {
			return e.doWith("POST", "/api/v1/token/userKeys/recovery/verification", map[string]any{"keyType": keyType, "destination": dest, "processingId": processing}, nil)
		}
		// The phone is lost: a token to the phone itself is refused.
		verification("PHONE_NUMBER", "PHONE_NUMBER").want(t, 422)
		verification("PHONE_NUMBER", "EMAIL").want(t, 200)
		check := e.codeFor(u.email)
		nk := e.doWith("POST", "/api/v1/token/userKeys/recovery/newKey", map[string]any{"destination": "+14155552672", "processingId": processing}, nil).want(t, 200)
		if nk.str("expiration") != "30min." {
			t.Fatalf("newKey answered %s", nk.raw)
		}
		fresh := e.codeFor("+14155552672")
		// The phone was the second factor: a recovery code stands in for it.
		recover := func(vt, key, kt string) *response {
			return e.doWith("POST", "/api/v1/userKeys/recovery", map[string]any{
				"processingId": processing, "keyType": "PHONE_NUMBER", "verificationToken": vt, "newKey": key, "newKeyToken": kt,
				"mfaMethod": "recovery_code", "mfaCode": u.recoveryCodes[0]}, nil)
		}
		recover(fresh, "+14155552672", check).want(t, 422) // tokens swapped
		// Another user's token is worthless here.
		e.clock.Advance(time.Minute)
		mallory.call("GET", "/auth/otp/code?method=email", nil).want(t, 200)
		recover(e.codeFor("mallory@example.com"), "+14155552672", fresh).want(t, 422)
		ok := recover(check, "+14155552672", fresh).want(t, 200)
		if ok.str("phoneNumber") != "+14*******72" || ok.body["smsMfaEnabled"] != true {
			t.Fatalf("recovered %s", ok.raw)
		}
		noticeTo(t, e, u.email, "phone number was recovered")
		recover(check, "+14155552672", fresh).want(t, 404) // the login is used up
		u.call("GET", "/auth/me", nil).want(t, 401)        // every session ended

		// The new phone finishes the next login.
		p := u.login(t).want(t, 200).str("processingId")
		e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "PHONE_NUMBER", "processingId": p}, nil).want(t, 200)
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": p, "method": "sms", "code": e.codeFor("+14155552672")}, nil).want(t, 200)
	})
}

func TestOneTimeTokenSendLimits(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "sam@example.com")
	u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
	r := u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 429)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	// The hourly cap per destination holds across purposes and cooldowns.
	// (The registration's code counts toward the sign-up's own cap: the
	// account did not exist yet.)
	sent := 1
	for ; sent < 10; sent++ {
		e.clock.Advance(31 * time.Second)
		u.call("GET", "/auth/otp/code?method=email", nil).want(t, 200)
	}
	e.clock.Advance(31 * time.Second)
	u.call("GET", "/auth/otp/code?method=email", nil).want(t, 429)
	e.clock.Advance(time.Hour)
	u.take(u.login(t).want(t, 200))
	u.call("GET", "/auth/otp/code?method=email", nil).want(t, 200)
}

// TestNewTokenVoidsThePrevious: a second token for the same purpose makes
// the first one worthless.
func TestNewTokenVoidsThePrevious(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "vic@example.com")
	u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
	first := e.codeFor(u.email)
	e.clock.Advance(time.Minute)
	u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
	second := e.codeFor(u.email)
	if first != second {
		u.call("POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": first, "antiPhishingCode": "first-code"}).want(t, 422)
	}
	u.call("POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": second, "antiPhishingCode": "second-code"}).want(t, 200)
}
