package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// TestRefreshReuseAfterTheRetention: a spent refresh token that comes back
// after the janitor's retention (24 h by default) is still recognised as
// reuse, for as long as its session lives (30 days). Otherwise a thief who
// rotated the owner's token keeps the session: the owner's old token only
// gets a plain 401 and revokes nothing.
func TestRefreshReuseAfterTheRetention(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "erin@example.com")
		u.take(u.login(t).want(t, 200))
		spent := u.refreshToken // A: the owner's copy

		// The thief rotates A first: A is spent, B is the session's live token.
		r := e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": spent}, nil).want(t, 200)
		live := r.str("refreshToken")
		if live == "" || live == spent {
			t.Fatalf("refresh did not rotate: %s", r.raw)
		}

		// A day and an hour later the janitor has run; the session (30
		// days) has not ended.
		e.clock.Advance(25 * time.Hour)
		if _, err := e.app.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}

		// The owner comes back with A: that is reuse, and the session ends.
		r = e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": spent}, nil).want(t, 401)
		if !strings.Contains(r.str("error"), "reused") {
			t.Fatalf("a spent token after the retention got %s, want the reuse answer", r.raw)
		}
		e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": live}, nil).want(t, 401)

		es := auditOf(t, e, tessera.AuditFilter{Kind: tessera.AuditRefreshReuse})
		if len(es) != 1 || es[0].Email != u.email || !strings.Contains(es[0].Detail, "revoked") {
			t.Fatalf("refresh.reuse events: %+v, want one for %s", es, u.email)
		}
	})
}
