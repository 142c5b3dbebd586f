package httpapi_test

// The attacker's tests of the passkey support (issue 12), second review.
// Each TestReview2... test fails while the weakness it names is there.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/webauthntest"
)

// rawCall sends one request without failing the test from its goroutine
// (doWith calls t.Fatal), for the parallel calls of a race. It returns the
// status and body.
func rawCall(e *env, method, path, idToken string, body any) (int, string) {
	var rdr io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rdr)
	if err != nil {
		return 0, err.Error()
	}
	if rdr != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idToken != "" {
		req.Header.Set("Authorization", "Bearer "+idToken)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(raw)
}

// cloneWarn makes u's only passkey (held by a) clone-warned: two logins
// move its counter to 2, and a copy of the key signs with counter 1.
func cloneWarn(t *testing.T, e *env, a *webauthntest.Authenticator) {
	t.Helper()
	passkeyLogin(t, e, a).want(t, 200)
	passkeyLogin(t, e, a).want(t, 200)
	clone := webauthntest.New(passkeyOrigin)
	if err := clone.Import(a.Credentials()[0]); err != nil {
		t.Fatal(err)
	}
	passkeyLogin(t, e, clone, webauthntest.WithSignCount(1)).want(t, 403)
}

// TestReview2PasswordAndLastPasskeyRemovedInParallel: DELETE /auth/password
// and DELETE /auth/passkeys/{last} each check the other credential on the
// user they loaded when the request came in, and neither write checks it
// again (SavePasskeys compares the passkey list only; RemovePassword
// deletes the password row unconditionally). Sent together, both succeed:
// no password and no passkey, only a password reset by email gets back in.
func TestReview2PasswordAndLastPasskeyRemovedInParallel(t *testing.T) {
	e := newEnv(t, stores[1].open(t))
	for try := 0; try < 15; try++ {
		u := register(t, e, "race"+string(rune('a'+try))+"@example.com")
		e.deliver()
		a := webauthntest.New(passkeyOrigin)
		id := addPasskey(t, u, a).want(t, 200).str("id")
		// The enrolling session used a passkey: it may remove the password
		// and a passkey, one at a time.
		var wg sync.WaitGroup
		var pwStatus, pkStatus int
		var pwBody, pkBody string
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			pwStatus, pwBody = rawCall(e, "DELETE", "/auth/password", u.idToken, nil)
		}()
		go func() {
			defer wg.Done()
			<-start
			pkStatus, pkBody = rawCall(e, "DELETE", "/auth/passkeys/"+id, u.idToken, nil)
		}()
		close(start)
		wg.Wait()
		if pwStatus >= 500 || pkStatus >= 500 {
			t.Fatalf("try %d: DELETE /auth/password %d %s; DELETE /auth/passkeys %d %s", try, pwStatus, pwBody, pkStatus, pkBody)
		}
		if pwStatus == 200 && pkStatus == 200 {
			list := u.call("GET", "/auth/passkeys", nil).want(t, 200).body["passkeys"].([]any)
			u.login(t).want(t, 401)
			t.Fatalf("try %d: the password and the last passkey were both removed (passkeys left: %d): nothing logs the account in", try, len(list))
		}
	}
}

// TestReview2CloneWarnedPasskeyCountsAsALoginMethod: a passkey marked as
// possibly cloned is refused from then on, yet RemovePassword (and
// DeletePasskey's last-way check) still count it: the password goes and
// only a refused passkey is left.
func TestReview2CloneWarnedPasskeyCountsAsALoginMethod(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "cw@example.com")
	e.deliver()
	a := webauthntest.New(passkeyOrigin)
	addPasskey(t, u, a).want(t, 200)
	cloneWarn(t, e, a)
	// u's session enrolled the passkey a minute ago: privileged, AAL 2.
	r := u.call("DELETE", "/auth/password", nil)
	if r.status == 200 {
		u.login(t).want(t, 401)
		passkeyLogin(t, e, a).want(t, 403)
		t.Fatalf("the password was removed while the only passkey is refused as a clone: the account has no way to log in")
	}
}

// TestReview2FirstPasskeyIssuesNoRecoveryCodes: the first passkey turns
// MFA on (policy.Of counts it), but FinishPasskeyEnrolment issues no
// recovery codes, unlike the first authenticator app or SMS factor (README:
// "Turning MFA on the first time issues ten single-use recovery codes").
// A user with a password and one passkey whose passkey is then refused as
// a clone (or whose device is lost) is told to "log in another way and
// remove it", but there is none: every password login offers only the
// passkey, and a password reset by email changes nothing. Locked out for
// good, with no operator command to undo it.
func TestReview2FirstPasskeyIssuesNoRecoveryCodes(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "nb@example.com")
	e.deliver()
	a := webauthntest.New(passkeyOrigin)
	added := addPasskey(t, u, a).want(t, 200)
	cloneWarn(t, e, a)
	e.deliver()

	// The owner resets the password by email, as a locked-out user would.
	flow := e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": u.email, "destination": "EMAIL"}, nil).want(t, 200).str("processingId")
	token := e.codeFor(u.email)
	u.password = "a brand new password"
	e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": flow, "oneTimeToken": token, "newPassword": u.password}, nil).want(t, 200)

	m := methodsOf(mfaChallenge(t, u))
	var usable []string
	for _, x := range m {
		if x != "passkey" {
			usable = append(usable, x)
		}
	}
	if len(usable) == 0 {
		t.Fatalf("the first passkey came with no recovery codes (finish answered %s); with it refused, even after a password reset the login offers only %v: no way back into the account", added.raw, m)
	}
}

// TestReview2EnrolledPasskeyLaundersTheRightToRemovePasskeys: removing a
// passkey takes "a session that used a passkey or a recovery code"
// (policy.MayRemove: an authenticator app's code, which a phishing page
// can relay, is not enough). But FinishPasskeyEnrolment adds hwk to the
// enrolling session's amr, so a session that proved only the password and
// the app enrols the attacker's own passkey and then removes the owner's.
func TestReview2EnrolledPasskeyLaundersTheRightToRemovePasskeys(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	owner := register(t, e, "lau@example.com")
	e.deliver()
	secret, _ := enrolTOTP(t, e, owner)
	ownerKey := webauthntest.New(passkeyOrigin)
	id := addPasskey(t, owner, ownerKey).want(t, 200).str("id")

	// The attacker relayed the password and an app code: a fresh AAL 2
	// session that did not use a passkey.
	attacker := &user{e: e, email: owner.email, password: owner.password}
	e.clock.Advance(30 * time.Second)
	pid := mfaChallenge(t, attacker).str("processingId")
	attacker.take(e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": totpCode(secret, e.clock.Now())}, nil).want(t, 200))
	if r := attacker.call("DELETE", "/auth/passkeys/"+id, nil); r.status != 403 {
		t.Fatalf("a password+app session removing a passkey answered %d %s, want 403", r.status, r.raw)
	}
	// Its own passkey first, then the owner's.
	addPasskey(t, attacker, webauthntest.New(passkeyOrigin)).want(t, 200)
	if r := attacker.call("DELETE", "/auth/passkeys/"+id, nil); r.status == 200 {
		t.Fatalf("after enrolling its own passkey, a session that never used the owner's passkey removed it")
	}
}

// TestReview2PasskeyCapBypassedByOpenFlows: maxPasskeys (20) is checked
// when an enrolment begins, not when it finishes: flows begun at 19
// passkeys all finish, past the cap.
func TestReview2PasskeyCapBypassedByOpenFlows(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "cap@example.com")
	e.deliver()
	first := webauthntest.New(passkeyOrigin)
	addPasskey(t, u, first).want(t, 200)
	u.take(passkeyLogin(t, e, first).want(t, 200)) // with MFA on, a session at AAL 2
	for i := 1; i < 19; i++ {
		addPasskey(t, u, webauthntest.New(passkeyOrigin)).want(t, 200)
	}
	var begins []*response
	for i := 0; i < 4; i++ {
		begins = append(begins, u.call("POST", "/auth/passkeys/registration/begin", map[string]any{}).want(t, 200))
	}
	for _, b := range begins {
		cred, err := webauthntest.New(passkeyOrigin).Create(rawJSON(t, b.body["publicKey"]))
		if err != nil {
			t.Fatal(err)
		}
		u.call("POST", "/auth/passkeys/registration/finish", map[string]any{"processingId": b.str("processingId"), "credential": json.RawMessage(cred)})
	}
	if n := len(u.call("GET", "/auth/passkeys", nil).want(t, 200).body["passkeys"].([]any)); n > 20 {
		t.Fatalf("the account holds %d passkeys, past the cap of 20", n)
	}
}
