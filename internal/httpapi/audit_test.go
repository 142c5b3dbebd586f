package httpapi_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/storetest"
)

// The audit log, driven through HTTP: each flow leaves the events an
// operator expects (kind, user, email, IP, user agent), and no event
// field ever holds a password, code or token the flow used.

const (
	testUA   = "TestBrowser/1.0"
	goUA     = "Go-http-client/1.1" // what doWith sends when a test sets none
	clientIP = "127.0.0.1"
)

// secrets collects every password, code and token a test sends or
// receives, to prove none of them reaches the audit log.
type secrets []string

func (s *secrets) add(vs ...string) {
	for _, v := range vs {
		if v != "" {
			*s = append(*s, v)
		}
	}
}

// addTokens keeps the tokens of an answer.
func (s *secrets) addTokens(r *response) { s.add(r.str("idToken"), r.str("refreshToken")) }

// auditOf returns the events of a user (or with filter f), oldest first.
func auditOf(t *testing.T, e *env, f tessera.AuditFilter) []*tessera.AuditEvent {
	t.Helper()
	f.Limit = tessera.MaxAuditLimit
	es, err := e.app.Store.AuditEvents(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(es)
	return es
}

func kindsOf(es []*tessera.AuditEvent) []string {
	var out []string
	for _, ev := range es {
		out = append(out, ev.Kind)
	}
	return out
}

// wantKinds checks the user's events, oldest first, and that each came
// from the test's client with the given user agent and email.
func wantKinds(t *testing.T, e *env, userID string, want ...string) []*tessera.AuditEvent {
	t.Helper()
	es := auditOf(t, e, tessera.AuditFilter{UserID: userID})
	if got := kindsOf(es); !slices.Equal(got, want) {
		t.Fatalf("audit events of the user, oldest first:\n got %v\nwant %v", got, want)
	}
	for _, ev := range es {
		if ev.IP != clientIP || ev.UserID != userID || ev.ID == "" || ev.At.IsZero() || ev.At.After(e.clock.Now()) {
			t.Fatalf("event %+v: want IP %s, user %s, a time not after the clock", ev, clientIP, userID)
		}
	}
	return es
}

// wantEvent checks one event's user agent, email and detail (a substring).
func wantEvent(t *testing.T, ev *tessera.AuditEvent, kind, ua, email, detail string) {
	t.Helper()
	if ev.Kind != kind || ev.UserAgent != ua || ev.Email != email || !strings.Contains(ev.Detail, detail) {
		t.Fatalf("event %+v, want kind %s, user agent %q, email %q, detail with %q", ev, kind, ua, email, detail)
	}
}

// noSecretsIn checks every field of every event against every secret.
func noSecretsIn(t *testing.T, e *env, s secrets) {
	t.Helper()
	all := auditOf(t, e, tessera.AuditFilter{})
	if len(all) == 0 {
		t.Fatal("no audit events at all")
	}
	for _, ev := range all {
		for _, field := range []string{ev.ID, ev.Kind, ev.UserID, ev.Email, ev.IP, ev.UserAgent, ev.Detail} {
			for _, secret := range s {
				if strings.Contains(field, secret) {
					t.Fatalf("audit event %+v holds the secret %q", ev, secret)
				}
			}
		}
	}
}

// registerSecretly is register, keeping the code and tokens as secrets.
func registerSecretly(t *testing.T, e *env, email string, s *secrets) (*user, string) {
	t.Helper()
	u := &user{e: e, email: email, password: "correct horse battery"}
	e.doWith("POST", "/auth/register", map[string]any{"email": email, "password": u.password}, nil).want(t, 202)
	code := e.codeFor(email)
	r := e.doWith("POST", "/auth/register/confirm", map[string]any{"email": email, "code": code}, nil).want(t, 200)
	u.take(r)
	s.add(u.password, code)
	s.addTokens(r)
	return u, u.call("GET", "/auth/me", nil).want(t, 200).str("id")
}

func TestAuditLoginsLockoutReuseAndPasswordChange(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		var s secrets
		u, id := registerSecretly(t, e, "ada@example.com", &s)
		asBrowser := map[string]string{"User-Agent": testUA}
		wrongLogin := func() *response {
			s.add("Tr0ub4dor&3")
			return e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": "Tr0ub4dor&3"}, asBrowser).want(t, 401)
		}

		wrongLogin()
		ok := u.login(t).want(t, 200)
		s.addTokens(ok)
		// An unknown account: the address typed, no user.
		e.doWith("POST", "/auth/login", map[string]any{"email": " Nobody@Example.COM ", "password": "guessed password"}, asBrowser).want(t, 401)
		s.add("guessed password")
		// A password typed into the email field is not an address: not kept.
		e.doWith("POST", "/auth/login", map[string]any{"email": "hunter2-secret", "password": "guessed password"}, asBrowser).want(t, 401)
		s.add("hunter2-secret")

		// Lockout: the fifth wrong password in a row locks; the next login is refused.
		for range 5 {
			wrongLogin()
		}
		u.login(t).want(t, 429)
		e.clock.Advance(31 * time.Second)
		u.take(u.login(t).want(t, 200))
		s.add(u.idToken, u.refreshToken)

		// Refresh-token reuse revokes the session.
		old := u.refreshToken
		r := e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": old}, asBrowser).want(t, 200)
		s.addTokens(r)
		e.clock.Advance(time.Minute)
		e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": old}, asBrowser).want(t, 401)
		u.call("GET", "/auth/me", nil).want(t, 401)

		// Password change: a wrong current password, then the change; then logout.
		u.take(u.login(t).want(t, 200))
		s.add(u.idToken, u.refreshToken)
		u.call("POST", "/auth/password", map[string]any{"oldPassword": "not my password", "newPassword": "a brand new secret"}).want(t, 422)
		u.call("POST", "/auth/password", map[string]any{"oldPassword": u.password, "newPassword": "a brand new secret"}).want(t, 200)
		s.add("not my password", "a brand new secret")
		u.call("POST", "/auth/logout", nil).want(t, 200)

		es := wantKinds(t, e, id,
			tessera.AuditRegister, tessera.AuditRegisterConfirmed,
			tessera.AuditLoginFailed, tessera.AuditLoginSuccess,
			tessera.AuditLoginFailed, tessera.AuditLoginFailed, tessera.AuditLoginFailed, tessera.AuditLoginFailed, tessera.AuditLoginFailed,
			tessera.AuditLoginLocked, tessera.AuditLoginSuccess,
			tessera.AuditRefreshReuse,
			tessera.AuditLoginSuccess, tessera.AuditLoginFailed, tessera.AuditPasswordChanged, tessera.AuditLogout,
		)
		wantEvent(t, es[0], tessera.AuditRegister, goUA, u.email, "new account")
		wantEvent(t, es[1], tessera.AuditRegisterConfirmed, goUA, u.email, "")
		wantEvent(t, es[2], tessera.AuditLoginFailed, testUA, u.email, "wrong password (1 in a row)")
		wantEvent(t, es[3], tessera.AuditLoginSuccess, testUA, u.email, "")
		wantEvent(t, es[8], tessera.AuditLoginFailed, testUA, u.email, "locked for 30s")
		wantEvent(t, es[9], tessera.AuditLoginLocked, testUA, u.email, "locked until")
		wantEvent(t, es[11], tessera.AuditRefreshReuse, testUA, u.email, "revoked")
		wantEvent(t, es[13], tessera.AuditLoginFailed, goUA, u.email, "password change")
		wantEvent(t, es[14], tessera.AuditPasswordChanged, goUA, u.email, "")
		wantEvent(t, es[15], tessera.AuditLogout, goUA, u.email, "")

		unknown := auditOf(t, e, tessera.AuditFilter{Email: "nobody@example.com"})
		if len(unknown) != 1 || unknown[0].UserID != "" || unknown[0].Email != "Nobody@example.com" {
			t.Fatalf("the unknown account's failed login: %+v", unknown)
		}
		wantEvent(t, unknown[0], tessera.AuditLoginFailed, testUA, "Nobody@example.com", "unknown account")
		notAddress := auditOf(t, e, tessera.AuditFilter{Kind: tessera.AuditLoginFailed, Email: ""})
		blank := 0
		for _, ev := range notAddress {
			if ev.UserID == "" && ev.Email == "" {
				blank++
			}
		}
		if blank != 1 {
			t.Fatalf("%d failed logins with neither user nor email, want 1 (the non-address)", blank)
		}
		noSecretsIn(t, e, s)
	})
}

func TestAuditMFA(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		var s secrets
		u, id := registerSecretly(t, e, "mfa@example.com", &s)
		asBrowser := map[string]string{"User-Agent": testUA}

		enrol := u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200)
		secret := totpSecret(t, enrol.str("totpUri"), u.email)
		s.add(secret, enrol.str("totpUri"))
		code := totpCode(secret, e.clock.Now())
		on := u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", code).want(t, 200)
		s.add(code)
		for _, c := range on.body["recoveryCodes"].([]any) {
			s.add(c.(string))
		}

		// An MFA login: a wrong code, then the right one.
		pid := u.login(t).want(t, 200).str("processingId")
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": "000000"}, asBrowser).want(t, 422)
		e.clock.Advance(30 * time.Second)
		code = totpCode(secret, e.clock.Now())
		done := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": code}, asBrowser).want(t, 200)
		s.add(code)
		s.addTokens(done)
		u.take(done)

		e.clock.Advance(30 * time.Second)
		code = totpCode(secret, e.clock.Now())
		regen := u.call("POST", "/auth/mfa/recovery-codes", nil, "x-otp", code).want(t, 200)
		s.add(code)
		for _, c := range regen.body["recoveryCodes"].([]any) {
			s.add(c.(string))
		}
		e.clock.Advance(30 * time.Second)
		code = totpCode(secret, e.clock.Now())
		u.call("DELETE", "/auth/otp/methods/totp", nil, "x-otp", code).want(t, 200)
		s.add(code)

		es := wantKinds(t, e, id,
			tessera.AuditRegister, tessera.AuditRegisterConfirmed,
			tessera.AuditMFAEnabled,
			tessera.AuditLoginMFARequired, tessera.AuditLoginMFAFailed, tessera.AuditLoginMFASuccess,
			tessera.AuditRecoveryCodesRegen, tessera.AuditMFADisabled,
		)
		wantEvent(t, es[2], tessera.AuditMFAEnabled, goUA, u.email, "totp")
		wantEvent(t, es[3], tessera.AuditLoginMFARequired, testUA, u.email, "totp")
		wantEvent(t, es[4], tessera.AuditLoginMFAFailed, testUA, u.email, "totp: invalid_code")
		wantEvent(t, es[5], tessera.AuditLoginMFASuccess, testUA, u.email, "totp")
		wantEvent(t, es[7], tessera.AuditMFADisabled, goUA, u.email, "totp")
		noSecretsIn(t, e, s)
	})
}

func TestAuditKeysAntiPhishingAndPasswordReset(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		var s secrets
		u, id := registerSecretly(t, e, "kit@example.com", &s)
		token := func(to string) string {
			t.Helper()
			c := e.codeFor(to)
			s.add(c)
			return c
		}

		// A phone added, changed, then removed.
		u.call("POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber=%2B14155552671", nil).want(t, 200)
		u.call("POST", "/api/v1/userKeys/adding", map[string]any{"newKey": "+14155552671", "oneTimeToken": token("+14155552671")}).want(t, 200)
		u.call("POST", "/api/v1/token/userKeys/changing?keyType=PHONE_NUMBER", nil).want(t, 200)
		first := token("+14155552671")
		u.call("POST", "/api/v1/token/userKeys/changing/newKey", map[string]any{"oneTimeToken": first, "newUserKey": "+14155552672"}).want(t, 200)
		u.call("POST", "/api/v1/userKeys/changing", map[string]any{"newUserKey": "+14155552672", "oneTimeToken": token("+14155552672")}).want(t, 200)
		e.deliver() // the notice of the change
		u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
		u.call("POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": token(u.email), "antiPhishingCode": "blue-otter-42"}).want(t, 200)
		s.add("blue-otter-42")
		u.call("POST", "/api/v1/token/userKeys/removing?keyType=PHONE_NUMBER", nil).want(t, 200)
		u.call("POST", "/api/v1/userKeys/removing", map[string]any{"keyType": "PHONE_NUMBER", "oneTimeToken": token("+14155552672")}).want(t, 200)
		e.deliver()

		// The email changed: the event carries the address it had then.
		e.clock.Advance(time.Minute)
		u.call("POST", "/api/v1/token/userKeys/changing?keyType=EMAIL", nil).want(t, 200)
		first = token(u.email)
		u.call("POST", "/api/v1/token/userKeys/changing/newKey", map[string]any{"oneTimeToken": first, "newUserKey": "kit.new@example.com"}).want(t, 200)
		u.call("POST", "/api/v1/userKeys/changing", map[string]any{"newUserKey": "kit.new@example.com", "oneTimeToken": token("kit.new@example.com")}).want(t, 200)
		e.deliver()

		// A password reset, by the new address.
		flow := e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": "kit.new@example.com", "destination": "EMAIL"}, nil).want(t, 200).str("processingId")
		e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": flow,
			"oneTimeToken": token("kit.new@example.com"), "newPassword": "a reset password"}, map[string]string{"User-Agent": testUA}).want(t, 200)
		s.add("a reset password")

		es := wantKinds(t, e, id,
			tessera.AuditRegister, tessera.AuditRegisterConfirmed,
			tessera.AuditKeyAdded, tessera.AuditKeyChanged, tessera.AuditAntiPhishingSet, tessera.AuditKeyRemoved,
			tessera.AuditKeyChanged, tessera.AuditPasswordReset,
		)
		wantEvent(t, es[2], tessera.AuditKeyAdded, goUA, "kit@example.com", "PHONE_NUMBER +14*******71")
		wantEvent(t, es[3], tessera.AuditKeyChanged, goUA, "kit@example.com", "PHONE_NUMBER changed to +14*******72")
		wantEvent(t, es[4], tessera.AuditAntiPhishingSet, goUA, "kit@example.com", "added")
		wantEvent(t, es[5], tessera.AuditKeyRemoved, goUA, "kit@example.com", "PHONE_NUMBER +14*******72")
		wantEvent(t, es[6], tessera.AuditKeyChanged, goUA, "kit@example.com", "EMAIL changed to k***w@example.com")
		wantEvent(t, es[7], tessera.AuditPasswordReset, testUA, "kit.new@example.com", "EMAIL")
		// Full phone numbers and the new address stay out of the details.
		s.add("+14155552671", "+14155552672")
		noSecretsIn(t, e, s)
		if es := auditOf(t, e, tessera.AuditFilter{Email: "KIT.NEW@example.com"}); len(es) != 1 || es[0].Kind != tessera.AuditPasswordReset {
			t.Fatalf("events recorded with the new address: %v", kindsOf(es))
		}
	})
}

// failingAudit is a store whose audit log is down.
type failingAudit struct{ app.Storage }

func (failingAudit) AppendAudit(context.Context, *tessera.AuditEvent) error {
	return errors.New("audit table unavailable")
}

// TestAuditFailureDoesNotFailTheAction: a user's action whose event is
// recorded after it (a registration, a failed login, a logout) succeeds
// when the event cannot be recorded; the failure is logged. (The
// confirmation and the login record theirs in their own transaction.)
func TestAuditFailureDoesNotFailTheAction(t *testing.T) {
	logs := &lockedBuffer{}
	e := newEnvWith(t, failingAudit{storetest.OpenSQLite(t)}, func(o *app.Options) {
		o.Log = slog.New(slog.NewTextHandler(logs, nil))
	})
	u := register(t, e, "resilient@example.com")
	u.login(t).want(t, 200)
	e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": "wrong password"}, nil).want(t, 401)
	u.call("POST", "/auth/logout", nil).want(t, 200)
	if got := strings.Count(logs.String(), "audit: event not recorded"); got < 3 {
		t.Fatalf("%d audit failures logged, want one per event recorded after its action (3):\n%s", got, logs.String())
	}
	if strings.Contains(logs.String(), u.password) {
		t.Fatal("the log holds the password")
	}
}
