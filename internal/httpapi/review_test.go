package httpapi_test

// A security review of issue 10, as an attacker: each test names what the
// attacker holds and fails while the attack works.

import (
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/password"
)

// TestReviewSIMSwapAloneReachesAAL2: the owner set up a password and texted
// codes as a second factor (two factors). The attacker holds only the
// phone (a SIM swap): not the password, not the mailbox. Password recovery
// to PHONE_NUMBER gives him the password, and the same phone then passes as
// the second factor: one factor, counted twice, yields an aal2 session,
// which is privileged (it may enrol the attacker's own authenticator app
// and regenerate the recovery codes, locking the owner out).
func TestReviewSIMSwapAloneReachesAAL2(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const phone = "+14155552671" // the owner's number, now on the attacker's SIM
		owner := withSMSMFA(t, e, "sims@example.com", phone)
		e.deliver()

		// 1. Recovery by SMS: the phone alone sets a new password.
		e.clock.Advance(31 * time.Second)
		flow := e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": owner.email, "destination": "PHONE_NUMBER"}, nil).want(t, 200).str("processingId")
		e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": flow, "oneTimeToken": e.codeFor(phone), "newPassword": "the attacker's password"}, nil).want(t, 200)

		// 2. The same phone as the "second" factor.
		attacker := &user{e: e, email: owner.email, password: "the attacker's password"}
		e.clock.Advance(31 * time.Second)
		ch := mfaChallenge(t, attacker)
		pid := ch.str("processingId")
		if !slices.Contains(methodsOf(ch), "sms") {
			return // the phone that recovered the password is not offered again: sound
		}
		e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "PHONE_NUMBER", "processingId": pid}, nil).want(t, 200)
		done := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "sms", "code": e.codeFor(phone)}, nil)
		if done.status != 200 {
			return
		}
		attacker.take(done)
		a := assuranceOf(t, e, attacker.idToken)
		t.Errorf("the phone alone (recovery by SMS, then an SMS code) logged in at %s, amr %v: a factor counted twice", a.acr, a.amr)

		// What that session may do: replace the owner's recovery codes.
		// (x-otp: the OpenAPI document requires the header; the server
		// ignores it when no authenticator app is enrolled.)
		r := attacker.call("POST", "/auth/mfa/recovery-codes", nil, "x-otp", "000000")
		if r.status == 200 {
			t.Errorf("and regenerated the owner's recovery codes (the printed set is void)")
		}
		// ... and enrol the attacker's authenticator app.
		secret, _ := enrolTOTP(t, e, attacker)
		if secret != "" {
			t.Errorf("and enrolled an authenticator app of the attacker's")
		}
		// The owner, back with the mailbox, resets the password but cannot
		// finish a login: the printed recovery codes are void, the app and
		// the SIM are the attacker's.
		e.clock.Advance(31 * time.Second)
		flow = e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": owner.email, "destination": "EMAIL"}, nil).want(t, 200).str("processingId")
		e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": flow, "oneTimeToken": e.codeFor(owner.email), "newPassword": "the owner's new password"}, nil).want(t, 200)
		owner.password = "the owner's new password"
		pid = mfaChallenge(t, owner).str("processingId")
		if r := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "recovery_code", "code": owner.recoveryCodes[1]}, nil); r.status != 200 {
			t.Errorf("the owner's printed recovery code no longer logs in (%d %s): the owner is locked out for good", r.status, r.str("code"))
		}
	})
}

// TestReviewSignUpLastRegistrantWins: the attacker holds only the victim's
// address. The owner signs up; 31 s later (past the cooldown) the attacker
// registers the same address with his password, and the owner's mailbox
// gets a second code. The owner, like the README's walkthrough, confirms
// with the newest code and no processingId: the account is created with
// the attacker's password, and the attacker logs in.
func TestReviewSignUpLastRegistrantWins(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const addr = "late@example.com"
		owner := &user{e: e, email: addr, password: "the owner's password"}
		attacker := &user{e: e, email: addr, password: "the attacker's password"}
		e.doWith("POST", "/auth/register", map[string]any{"email": addr, "password": owner.password}, nil).want(t, 202)
		e.codeFor(addr) // the owner's code, still unread
		e.clock.Advance(31 * time.Second)
		e.doWith("POST", "/auth/register", map[string]any{"email": addr, "password": attacker.password}, nil).want(t, 202)
		newest := e.codeFor(addr)

		// The owner uses the newest code in the inbox.
		r := e.doWith("POST", "/auth/register/confirm", map[string]any{"email": addr, "code": newest}, nil)
		if r.status == 200 {
			owner.take(r) // the owner is logged in and sees nothing wrong
		}
		if a := attacker.login(t); a.status == 200 && a.str("idToken") != "" {
			t.Fatalf("the owner confirmed the newest code in the inbox, and the attacker's password logs in to the new account: %s", clipBody([]byte(a.raw)))
		}
	})
}

// TestReviewRegistrationConfirmTellsAccountsApart: the attacker holds
// nothing. He registers an address and guesses six codes against the
// processingId he got: for an address without an account the code locks
// (and says so), for an address with an account no code was ever sent and
// every guess is invalid_code. The answers tell accounts apart.
func TestReviewRegistrationConfirmTellsAccountsApart(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	register(t, e, "taken@example.com")
	e.deliver()
	e.clock.Advance(11 * time.Minute) // past the registration notice's cooldown

	answers := func(addr string) []string {
		pid := e.doWith("POST", "/auth/register", map[string]any{"email": addr, "password": "a guessing password"}, nil).want(t, 202).str("processingId")
		var out []string
		for i := 0; i < 6; i++ {
			r := e.doWith("POST", "/auth/register/confirm", map[string]any{"email": addr, "code": "000000", "processingId": pid}, nil)
			out = append(out, r.str("code"))
		}
		return out
	}
	taken, free := answers("taken@example.com"), answers("free@example.com")
	if !slices.Equal(taken, free) {
		t.Fatalf("six wrong codes on a registration of an address with an account answered %v, of one without %v: the answers tell whether an account exists", taken, free)
	}
}

// TestReviewResetTimingTellsAccountsApart: the attacker holds nothing. A
// password reset with a wrong token hashes the new password (argon2id)
// before checking the token, but only when the address has an account (and
// the chosen destination exists): the time of the answer says so. The
// README promises the same timing.
func TestReviewResetTimingTellsAccountsApart(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.PasswordParams = password.Params{Memory: 16 * 1024, Time: 1, Threads: 1} // makes the gap plain (tens of ms, even under -race), cheaply
	})
	register(t, e, "known@example.com")
	e.deliver()
	fastest := func(addr string) time.Duration {
		flow := e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": addr, "destination": "EMAIL"}, nil).want(t, 200).str("processingId")
		e.deliver()
		var ds []time.Duration
		for i := 0; i < 4; i++ {
			start := time.Now()
			e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": flow, "oneTimeToken": "000000", "newPassword": "a guess of a new password"}, nil).want(t, 422)
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[0]
	}
	known, unknown := fastest("known@example.com"), fastest("unknown@example.com")
	if known > 3*unknown+20*time.Millisecond {
		t.Fatalf("a wrong reset token takes %v for an address with an account and %v for one without: the timing tells accounts apart", known, unknown)
	}
}

// TestReviewNULInRecoveryLabelIs500: the client's processingId of a
// password recovery is kept as a label in a TEXT column; a NUL in it makes
// PostgreSQL refuse the row and the answer is a 500 (no recovery starts).
func TestReviewNULInRecoveryLabelIs500(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		r := e.doWith("POST", "/api/v1/token/password/recovery", `{"email":"nul@example.com","destination":"EMAIL","processingId":"a\u0000b"}`, nil)
		if r.status >= 500 {
			t.Fatalf("a NUL in the processingId label answered %d %s", r.status, clipBody([]byte(r.raw)))
		}
	})
}

// TestReviewYoungIDTokenBecomesAPermanentSession: the thief holds only an
// ID token under 10 minutes old (no refresh token, no password) of an
// owner with an authenticator app. The policy lets such a session enrol a
// factor, so he turns texted codes on with his own phone. Once the token
// has expired, that phone recovers the password and then passes as the
// second factor (the finding above): a 15-minute token became an aal2
// session of his own, for good.
func TestReviewYoungIDTokenBecomesAPermanentSession(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		owner := register(t, e, "young@example.com")
		secret, _ := enrolTOTP(t, e, owner)
		loginWithTOTP(t, e, owner, secret)
		e.deliver()

		thief := &user{e: e, email: owner.email, idToken: owner.idToken}
		thief.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "4155550123", "country": "US"}).want(t, 200)
		thief.call("POST", "/auth/otp/code", map[string]any{"channel": "sms"}, "x-otp", e.codeFor(attackerPhone)).want(t, 200)

		e.clock.Advance(20 * time.Minute) // the stolen ID token has expired
		thief.call("GET", "/auth/me", nil).want(t, 401)
		flow := e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": owner.email, "destination": "PHONE_NUMBER"}, nil).want(t, 200).str("processingId")
		e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": flow, "oneTimeToken": e.codeFor(attackerPhone), "newPassword": "the thief's password"}, nil).want(t, 200)
		thief.password = "the thief's password"
		e.clock.Advance(31 * time.Second)
		pid := mfaChallenge(t, thief).str("processingId")
		if r := e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "PHONE_NUMBER", "processingId": pid}, nil); r.status != 200 {
			return
		}
		if r := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "sms", "code": e.codeFor(attackerPhone)}, nil); r.status == 200 {
			t.Fatalf("a stolen 15-minute ID token became an aal2 session of the thief's, with his phone alone: %s", assuranceOf(t, e, r.str("idToken")).acr)
		}
	})
}

// TestReviewPasswordResetLeavesPendingLoginsAlive: the attacker holds the
// old password and has started an MFA login with it. The owner notices and
// resets the password ("every session ended"). The login flow started with
// the old password is still live for its 30 minutes: its processingId
// still finishes the login (here with a texted code) and still serves as
// the password proof of a key recovery.
func TestReviewPasswordResetLeavesPendingLoginsAlive(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const phone = "+14155552671"
		owner := withSMSMFA(t, e, "stale@example.com", phone)
		e.deliver()
		pid := mfaChallenge(t, &user{e: e, email: owner.email, password: owner.password}).str("processingId")

		e.clock.Advance(31 * time.Second)
		flow := e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": owner.email, "destination": "EMAIL"}, nil).want(t, 200).str("processingId")
		e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": flow, "oneTimeToken": e.codeFor(owner.email), "newPassword": "the owner's new password"}, nil).want(t, 200)
		e.deliver()

		if r := e.doWith("POST", "/api/v1/token/login", map[string]any{"destination": "PHONE_NUMBER", "processingId": pid}, nil); r.status != 200 {
			return // the flow died with the old password: sound
		}
		if r := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "sms", "code": e.codeFor(phone)}, nil); r.status == 200 {
			t.Fatalf("a login started with the old password finished after the reset: %s", assuranceOf(t, e, r.str("idToken")).acr)
		}
	})
}
