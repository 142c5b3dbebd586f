package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/webauthntest"
)

// The env's relying party: RP ID localhost, origin http://localhost:8080.
const passkeyOrigin = "http://localhost:8080"

// rawJSON is a JSON value of an answer, re-encoded, for the authenticator.
func rawJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// addPasskey enrols a passkey of a through the API and returns the
// passkey's view.
func addPasskey(t *testing.T, u *user, a *webauthntest.Authenticator, opts ...webauthntest.Option) *response {
	t.Helper()
	begin := u.call("POST", "/auth/passkeys/registration/begin", map[string]any{}).want(t, 200)
	cred, err := a.Create(rawJSON(t, begin.body["publicKey"]), opts...)
	if err != nil {
		t.Fatalf("the authenticator refused the creation options: %v\n%s", err, begin.raw)
	}
	return u.call("POST", "/auth/passkeys/registration/finish", map[string]any{
		"processingId": begin.str("processingId"), "name": "Laptop", "credential": json.RawMessage(cred)})
}

// passkeyLogin logs in with a passkey alone (no email typed).
func passkeyLogin(t *testing.T, e *env, a *webauthntest.Authenticator, opts ...webauthntest.Option) *response {
	t.Helper()
	begin := e.doWith("POST", "/auth/passkeys/login/begin", map[string]any{}, nil).want(t, 200)
	cred, err := a.Get(rawJSON(t, begin.body["publicKey"]), opts...)
	if err != nil {
		t.Fatalf("the authenticator refused the request options: %v\n%s", err, begin.raw)
	}
	return e.doWith("POST", "/auth/passkeys/login/finish", map[string]any{"processingId": begin.str("processingId"), "credential": json.RawMessage(cred)}, nil)
}

// TestPasskeyEnrolAndLogInAlone: a user adds a passkey, lists and renames
// it, and logs in with it alone at AAL 2; the session may then do
// privileged things.
func TestPasskeyEnrolAndLogInAlone(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "pia@example.com")
		e.deliver()
		a := webauthntest.New(passkeyOrigin)
		added := addPasskey(t, u, a).want(t, 200)
		if added.str("name") != "Laptop" || added.str("id") == "" || added.body["cloneWarning"] != false {
			t.Fatalf("added %s", added.raw)
		}
		// The first passkey turns MFA on: recovery codes come with it.
		if codes, _ := added.body["recoveryCodes"].([]any); len(codes) != 10 {
			t.Fatalf("no recovery codes with the first passkey: %s", added.raw)
		}
		noticeTo(t, e, u.email, "passkey was added")
		list := u.call("GET", "/auth/passkeys", nil).want(t, 200).body["passkeys"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["id"] != added.str("id") {
			t.Fatalf("passkeys %v", list)
		}
		if r := u.call("PATCH", "/auth/passkeys/"+added.str("id"), map[string]any{"name": "Work laptop"}).want(t, 200); r.str("name") != "Work laptop" {
			t.Fatalf("renamed %s", r.raw)
		}
		u.call("PATCH", "/auth/passkeys/bm9uZQ", map[string]any{"name": "x"}).want(t, 404)

		// With a passkey, the password alone no longer logs in.
		ch := u.login(t).want(t, 200)
		if ch.body["mfaRequired"] != true || !slices.Contains(methodsOf(ch), "passkey") || slices.Contains(methodsOf(ch), "email") {
			t.Fatalf("login with a passkey enrolled answered %s", ch.raw)
		}

		done := passkeyLogin(t, e, a).want(t, 200)
		got := assuranceOf(t, e, done.str("idToken"))
		if got.acr != "aal2" || !slices.Contains(got.amr, "hwk") || !slices.Contains(got.amr, "user") {
			t.Fatalf("a passkey login gave %s %v", got.acr, got.amr)
		}
		p := &user{e: e, email: u.email}
		p.take(done)
		p.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200) // privileged: fresh AAL 2
		if l := p.call("GET", "/auth/passkeys", nil).want(t, 200).body["passkeys"].([]any); l[0].(map[string]any)["lastUsedAt"] == nil {
			t.Fatalf("last use not recorded: %v", l)
		}
	})
}

// TestPasskeyAsSecondFactor: after the password, a passkey completes the
// login; once a user has one, a texted code no longer does.
func TestPasskeyAsSecondFactor(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	const phone = "+14155552671"
	u := withSMSMFA(t, e, "sam@example.com", phone)
	e.deliver()
	a := webauthntest.New(passkeyOrigin)
	addPasskey(t, u, a).want(t, 200)

	ch := u.login(t).want(t, 200)
	pid := ch.str("processingId")
	if m := methodsOf(ch); !slices.Contains(m, "passkey") || slices.Contains(m, "sms") {
		t.Fatalf("methods with a passkey and SMS: %v", m)
	}
	e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "PHONE_NUMBER", "processingId": pid}, nil).want(t, 422)
	opts := e.doWith("POST", "/auth/login/passkey", map[string]any{"processingId": pid}, nil).want(t, 200)
	allowed, _ := opts.body["publicKey"].(map[string]any)["allowCredentials"].([]any)
	if len(allowed) != 1 {
		t.Fatalf("the second-factor options allow %v", allowed)
	}
	cred, err := a.Get(rawJSON(t, opts.body["publicKey"]))
	if err != nil {
		t.Fatal(err)
	}
	done := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "passkey", "credential": json.RawMessage(cred)}, nil).want(t, 200)
	got := assuranceOf(t, e, done.str("idToken"))
	if got.acr != "aal2" || !slices.Contains(got.amr, "pwd") || !slices.Contains(got.amr, "hwk") {
		t.Fatalf("password + passkey gave %s %v", got.acr, got.amr)
	}
	// The same assertion again: the flow is used.
	e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "passkey", "credential": json.RawMessage(cred)}, nil).want(t, 404)
}

// TestPasskeyRefusals: what a relying party must refuse.
func TestPasskeyRefusals(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "ref@example.com")
	e.deliver()

	// Enrolment from a phishing origin, for another RP ID, or without user
	// verification: refused, naming the credential.
	for name, opt := range map[string]webauthntest.Option{
		"wrong origin": webauthntest.WithOrigin("http://localhost.evil.test:8080"), "wrong RP ID": webauthntest.WithRPID("evil.test"),
		"no user verification": webauthntest.WithoutUserVerification(),
	} {
		r := addPasskey(t, u, webauthntest.New(passkeyOrigin), opt).want(t, 422)
		if path, _ := r.detail(); path != "credential" {
			t.Fatalf("%s: answered %s", name, r.raw)
		}
	}
	if l := u.call("GET", "/auth/passkeys", nil).want(t, 200).body["passkeys"].([]any); len(l) != 0 {
		t.Fatalf("a refused enrolment left %v", l)
	}

	a := webauthntest.New(passkeyOrigin)
	addPasskey(t, u, a).want(t, 200)

	// Login from a phishing origin or for another RP ID.
	passkeyLogin(t, e, a, webauthntest.WithOrigin("http://evil.test")).want(t, 401)
	passkeyLogin(t, e, a, webauthntest.WithRPID("evil.test")).want(t, 401)

	// A replayed challenge: the answer to one flow, sent again to it and
	// to another flow.
	begin := e.doWith("POST", "/auth/passkeys/login/begin", map[string]any{}, nil).want(t, 200)
	cred, err := a.Get(rawJSON(t, begin.body["publicKey"]))
	if err != nil {
		t.Fatal(err)
	}
	finish := func(pid string) *response {
		return e.doWith("POST", "/auth/passkeys/login/finish", map[string]any{"processingId": pid, "credential": json.RawMessage(cred)}, nil)
	}
	finish(begin.str("processingId")).want(t, 200)
	finish(begin.str("processingId")).want(t, 404)
	other := e.doWith("POST", "/auth/passkeys/login/begin", map[string]any{}, nil).want(t, 200)
	finish(other.str("processingId")).want(t, 401)

	// An expired flow.
	late := e.doWith("POST", "/auth/passkeys/login/begin", map[string]any{}, nil).want(t, 200)
	cred, err = a.Get(rawJSON(t, late.body["publicKey"]))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(31 * time.Minute)
	if r := e.doWith("POST", "/auth/passkeys/login/finish", map[string]any{"processingId": late.str("processingId"), "credential": json.RawMessage(cred)}, nil); r.status != 422 || r.str("code") != "expired" {
		t.Fatalf("an expired passkey flow answered %d %s", r.status, r.raw)
	}

	// Another user's passkey as this user's second factor.
	e.clock.Advance(time.Minute)
	mallory := register(t, e, "mal@example.com")
	e.deliver()
	ma := webauthntest.New(passkeyOrigin)
	addPasskey(t, mallory, ma).want(t, 200)
	pid := u.login(t).want(t, 200).str("processingId")
	opts := e.doWith("POST", "/auth/login/passkey", map[string]any{"processingId": pid}, nil).want(t, 200)
	malloryKey := ma.Credentials()[0].ID
	forged, err := ma.Get(rawJSON(t, opts.body["publicKey"]), webauthntest.WithCredential(malloryKey))
	if err != nil {
		t.Fatal(err)
	}
	if r := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "passkey", "credential": json.RawMessage(forged)}, nil); r.status != 422 {
		t.Fatalf("another user's passkey as the second factor answered %d %s", r.status, r.raw)
	}
}

// TestPasskeyCloneWarning: a sign counter that goes backwards means two
// devices hold the key: refused, told, and refused from then on, even for
// the original device.
func TestPasskeyCloneWarning(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "clo@example.com")
		e.deliver()
		a := webauthntest.New(passkeyOrigin)
		addPasskey(t, u, a).want(t, 200)
		passkeyLogin(t, e, a).want(t, 200) // counter 1
		passkeyLogin(t, e, a).want(t, 200) // counter 2
		e.deliver()
		clone := webauthntest.New(passkeyOrigin)
		if err := clone.Import(a.Credentials()[0]); err != nil {
			t.Fatal(err)
		}
		passkeyLogin(t, e, clone, webauthntest.WithSignCount(1)).want(t, 403)
		noticeTo(t, e, u.email, "passkey may have been copied")
		passkeyLogin(t, e, a).want(t, 403)
		l := u.call("GET", "/auth/passkeys", nil).want(t, 200).body["passkeys"].([]any)
		if l[0].(map[string]any)["cloneWarning"] != true {
			t.Fatalf("the passkey is not marked: %v", l)
		}
		es := auditOf(t, e, tessera.AuditFilter{Kind: tessera.AuditPasskeyCloned})
		if len(es) != 1 {
			t.Fatalf("clone warnings audited: %d", len(es))
		}
	})
}

// TestPasskeyRemoval: removing a passkey takes a session that used one (or
// a recovery code), and the last way an account logs in stays.
func TestPasskeyRemoval(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "rem@example.com")
	e.deliver()
	a := webauthntest.New(passkeyOrigin)
	id := addPasskey(t, u, a).want(t, 200).str("id")

	// A session that logged in with the passkey may remove the password
	// (passkeys only from then on), but not the last passkey.
	u.take(passkeyLogin(t, e, a).want(t, 200))
	u.call("DELETE", "/auth/password", nil).want(t, 200)
	noticeTo(t, e, u.email, "password was removed")
	u.login(t).want(t, 401)
	if r := u.call("DELETE", "/auth/passkeys/"+id, nil).want(t, 409); r.str("code") != "conflict" {
		t.Fatalf("removing the last login method answered %s", r.raw)
	}

	// A second passkey (another device): now one may go, from a session
	// that used a passkey.
	b := webauthntest.New(passkeyOrigin)
	p := &user{e: e, email: u.email}
	p.take(passkeyLogin(t, e, a).want(t, 200))
	addPasskey(t, p, b).want(t, 200)
	p.call("DELETE", "/auth/passkeys/"+base64.RawURLEncoding.EncodeToString([]byte("no such key")), nil).want(t, 404)
	p.call("DELETE", "/auth/passkeys/"+id, nil).want(t, 200)
	noticeTo(t, e, u.email, "passkey was removed")
	passkeyLogin(t, e, a).want(t, 401) // the removed one
	passkeyLogin(t, e, b).want(t, 200)
}
