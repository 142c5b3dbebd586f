package httpapi_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/storetest"
)

// Hostile User-Agent headers, driven through HTTP on each store: a value
// that is not valid UTF-8, and values over 512 bytes whose 512th byte falls
// inside a multi-byte character. Whatever the header, logins answer as
// they would without it (never a 5xx), the lockout counts only wrong
// passwords, and every event is recorded with a user agent that is valid
// UTF-8, at most 512 bytes, clipped at a character boundary.

// hostileUAs are the headers sent and the user agent each must be stored as.
var hostileUAs = []struct{ name, sent, stored string }{
	{"invalid UTF-8", "\xff\xfe bad", "\uFFFD\uFFFD bad"},
	{"511 bytes then a 2-byte rune across the limit", "x" + strings.Repeat("é", 400), "x" + strings.Repeat("é", 255)},
	{"3-byte runes across the limit", strings.Repeat("€", 200), strings.Repeat("€", 170)},
	{"invalid bytes within a long value", strings.Repeat("\xc3", 600), strings.Repeat("\uFFFD", 170)},
}

// wantStoredUA checks a stored user agent.
func wantStoredUA(t *testing.T, what, got, want string) {
	t.Helper()
	if !utf8.ValidString(got) || len(got) > 512 || got != want {
		t.Fatalf("%s: user agent %q (%d bytes, valid UTF-8 %v), want %q", what, got, len(got), utf8.ValidString(got), want)
	}
}

// lastEvent returns the newest event of the filter, which must be of kind.
func lastEvent(t *testing.T, e *env, f tessera.AuditFilter, kind, what string) *tessera.AuditEvent {
	t.Helper()
	es := auditOf(t, e, f)
	if len(es) == 0 || es[len(es)-1].Kind != kind {
		t.Fatalf("%s: audit events %v, want the last to be %s", what, kindsOf(es), kind)
	}
	return es[len(es)-1]
}

func TestHeaderUserAgentOnLogin(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "agent@example.com")
		id := u.call("GET", "/auth/me", nil).want(t, 200).str("id")
		mine := tessera.AuditFilter{UserID: id}
		for _, c := range hostileUAs {
			as := map[string]string{"User-Agent": c.sent}

			// A wrong password: the usual 401, counted once, recorded.
			e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": "wrong password"}, as).want(t, 401)
			ev := lastEvent(t, e, mine, tessera.AuditLoginFailed, c.name+": wrong password")
			wantStoredUA(t, c.name+": failed login event", ev.UserAgent, c.stored)
			if !strings.Contains(ev.Detail, "(1 in a row)") {
				t.Fatalf("%s: failed login %q: earlier logins with this header still count toward the lockout", c.name, ev.Detail)
			}

			// An unknown account: the same answer, recorded by address.
			e.doWith("POST", "/auth/login", map[string]any{"email": "nobody@example.com", "password": "wrong password"}, as).want(t, 401)
			ev = lastEvent(t, e, tessera.AuditFilter{Email: "nobody@example.com"}, tessera.AuditLoginFailed, c.name+": unknown account")
			wantStoredUA(t, c.name+": unknown-account event", ev.UserAgent, c.stored)

			// The right password: logged in, the device as stored.
			r := e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": u.password}, as).want(t, 200)
			u.take(r)
			ev = lastEvent(t, e, mine, tessera.AuditLoginSuccess, c.name+": right password")
			wantStoredUA(t, c.name+": login event", ev.UserAgent, c.stored)
			wantStoredUA(t, c.name+": lastLoggedDevice", u.call("GET", "/auth/me", nil).want(t, 200).str("lastLoggedDevice"), c.stored)
			sessions := u.call("GET", "/auth/sessions", nil).want(t, 200)
			found := false
			for _, s := range sessions.body["sessions"].([]any) {
				if s := s.(map[string]any); s["current"] == true {
					wantStoredUA(t, c.name+": the session", s["userAgent"].(string), c.stored)
					found = true
				}
			}
			if !found {
				t.Fatalf("%s: no current session in %s", c.name, sessions.raw)
			}

			// Logout with the header is recorded too.
			u.call("POST", "/auth/logout", nil, "User-Agent", c.sent).want(t, 200)
			ev = lastEvent(t, e, mine, tessera.AuditLogout, c.name+": logout")
			wantStoredUA(t, c.name+": logout event", ev.UserAgent, c.stored)
		}
	})
}

func TestHeaderUserAgentOnMFALogin(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "agent.mfa@example.com")
		id := u.call("GET", "/auth/me", nil).want(t, 200).str("id")
		mine := tessera.AuditFilter{UserID: id}
		secret := totpSecret(t, u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200).str("totpUri"), u.email)
		u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
		for _, c := range hostileUAs {
			as := map[string]string{"User-Agent": c.sent}
			e.clock.Advance(30 * time.Second) // a fresh TOTP step for each login
			pid := e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": u.password}, as).want(t, 200).str("processingId")
			if pid == "" {
				t.Fatalf("%s: no MFA challenge", c.name)
			}
			ev := lastEvent(t, e, mine, tessera.AuditLoginMFARequired, c.name+": password step")
			wantStoredUA(t, c.name+": MFA required event", ev.UserAgent, c.stored)

			e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": "000000"}, as).want(t, 422)
			ev = lastEvent(t, e, mine, tessera.AuditLoginMFAFailed, c.name+": wrong code")
			wantStoredUA(t, c.name+": MFA failed event", ev.UserAgent, c.stored)

			r := e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "totp", "code": totpCode(secret, e.clock.Now())}, as).want(t, 200)
			u.take(r)
			ev = lastEvent(t, e, mine, tessera.AuditLoginMFASuccess, c.name+": right code")
			wantStoredUA(t, c.name+": MFA success event", ev.UserAgent, c.stored)
		}
	})
}

// An X-Request-Id is echoed and logged: a client's id comes back as sent
// when it is short, valid UTF-8; any other is replaced by a fresh one.
func TestHeaderRequestID(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	for _, c := range []struct {
		sent string
		kept bool
	}{
		{"req-42", true},
		{strings.Repeat("é", 32), true}, // 64 bytes
		{"x" + strings.Repeat("é", 32), false},
		{"\xff\xfe bad", false},
	} {
		got := e.doWith("GET", "/healthz", nil, map[string]string{"X-Request-Id": c.sent}).header.Get("X-Request-Id")
		if !utf8.ValidString(got) || got == "" || len(got) > 64 || (got == c.sent) != c.kept {
			t.Fatalf("X-Request-Id %q answered %q, want it kept: %v", c.sent, got, c.kept)
		}
	}
}
