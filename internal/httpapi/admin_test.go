package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
)

// admin is an API client with the admin scope calling the admin API.
type admin struct {
	e     *env
	token string
}

func newAdmin(t *testing.T, e *env) *admin {
	t.Helper()
	_, token, err := e.app.Clients.CreateAdmin(context.Background(), "ops")
	if err != nil {
		t.Fatal(err)
	}
	return &admin{e: e, token: token}
}

func (a *admin) call(method, path string, body any) *response {
	a.e.t.Helper()
	return a.e.doWith(method, path, body, map[string]string{"Authorization": "Bearer " + a.token})
}

func userOf(t *testing.T, r *response) map[string]any {
	t.Helper()
	u, ok := r.body["user"].(map[string]any)
	if !ok {
		t.Fatalf("no user in %s", r.raw)
	}
	return u
}

// TestAdminAPIIsForAdminClientsOnly: the attack is a verification-API
// token or an end user's ID token reaching every account.
func TestAdminAPIIsForAdminClientsOnly(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "ivy@example.com")
		a := newAdmin(t, e)
		for _, path := range []string{"/admin/users", "/admin/users/" + url.PathEscape(u.email)} {
			if r := e.do("GET", path, nil).want(t, 403); r.str("code") != "forbidden" {
				t.Fatalf("a normal client token: %s", r.raw)
			}
			u.call("GET", path, nil).want(t, 401) // an ID token is no API-client token
			e.doWith("GET", path, nil, nil).want(t, 401)
		}
		e.do("POST", "/admin/users/"+url.PathEscape(u.email)+"/disable", nil).want(t, 403)
		e.do("DELETE", "/admin/users/"+url.PathEscape(u.email), nil).want(t, 403)
		e.do("POST", "/admin/imports", map[string]any{"users": []any{map[string]any{"email": "mallory@example.com"}}}).want(t, 403)
		u.call("GET", "/auth/me", nil).want(t, 200) // nothing happened to the account

		r := a.call("GET", "/admin/users/"+url.PathEscape(u.email), nil).want(t, 200)
		if got := userOf(t, r); got["email"] != "ivy@example.com" || got["status"] != "active" {
			t.Fatalf("admin read %s", r.raw)
		}
		creds, _ := r.body["credentials"].([]any)
		sessions, _ := r.body["sessions"].([]any)
		if len(creds) != 2 || len(sessions) != 1 || strings.Contains(r.raw, "argon2") {
			t.Fatalf("credentials and sessions: %s", r.raw)
		}
		ev := auditOf(t, e, tessera.AuditFilter{Kind: tessera.AuditAdminUserViewed})
		if len(ev) != 1 || !strings.Contains(ev[0].Detail, "client ops") {
			t.Fatalf("audit of the read: %+v", ev)
		}
		a.call("GET", "/admin/users/nobody@example.com", nil).want(t, 404)
	})
}

// TestAdminDisableEndsEverySessionAtOnce: a disabled account's ID token,
// refresh token and password stop working in the same instant.
func TestAdminDisableEndsEverySessionAtOnce(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "jo@example.com")
		a := newAdmin(t, e)
		id := userOf(t, a.call("GET", "/admin/users/jo@example.com", nil).want(t, 200))["id"].(string)

		if got := userOf(t, a.call("POST", "/admin/users/"+id+"/disable", nil).want(t, 200)); got["status"] != "disabled" {
			t.Fatalf("after disable: %v", got)
		}
		u.call("GET", "/auth/me", nil).want(t, 401)
		e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 401)
		u.login(t).want(t, 403)
		if r := a.call("GET", "/admin/users?status=disabled", nil).want(t, 200); len(r.body["users"].([]any)) != 1 {
			t.Fatalf("disabled users: %s", r.raw)
		}

		a.call("POST", "/admin/users/"+id+"/enable", nil).want(t, 200)
		// The ended sessions stay ended; the password works again.
		e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 401)
		u.take(u.login(t).want(t, 200))
		u.call("GET", "/auth/me", nil).want(t, 200)
		if r := a.call("DELETE", "/admin/users/"+id+"/sessions", nil).want(t, 200); r.body["revoked"] != float64(1) {
			t.Fatalf("revoke sessions: %s", r.raw)
		}
		u.call("GET", "/auth/me", nil).want(t, 401)

		got := kindsOf(auditOf(t, e, tessera.AuditFilter{UserID: id}))
		for _, k := range []string{tessera.AuditAdminUserDisabled, tessera.AuditAdminUserEnabled, tessera.AuditAdminSessionsRevoked} {
			if !strings.Contains(strings.Join(got, " "), k) {
				t.Fatalf("audit %v lacks %s", got, k)
			}
		}
	})
}

// TestAdminResetMFA: the second factors go, every session ends, the user
// is told, and the password alone logs in.
func TestAdminResetMFA(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "kit@example.com")
		secret := totpSecret(t, u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200).str("totpUri"), u.email)
		u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
		if r := u.login(t).want(t, 200); r.body["mfaRequired"] != true {
			t.Fatalf("MFA is not on: %s", r.raw)
		}
		e.deliver()

		a := newAdmin(t, e)
		if got := userOf(t, a.call("POST", "/admin/users/kit@example.com/mfa/reset", nil).want(t, 200)); got["mfaEnabled"] != false {
			t.Fatalf("after reset: %v", got)
		}
		u.call("GET", "/auth/me", nil).want(t, 401)
		var notice bool
		for _, m := range e.deliver() {
			notice = notice || m.To == u.email && strings.Contains(m.Subject, "two-step verification was reset")
		}
		if !notice {
			t.Fatal("no notice reached the user")
		}
		if r := u.login(t).want(t, 200); r.str("idToken") == "" {
			t.Fatalf("the password alone does not log in: %s", r.raw)
		}
		ev := auditOf(t, e, tessera.AuditFilter{Kind: tessera.AuditAdminMFAReset})
		if len(ev) != 1 || !strings.Contains(ev[0].Detail, "totp") || !strings.Contains(ev[0].Detail, "client ops") {
			t.Fatalf("audit: %+v", ev)
		}
	})
}

// TestAdminListSearchAndPages: filters combine, and pages neither skip
// nor repeat a user.
func TestAdminListSearchAndPages(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		a := newAdmin(t, e)
		var records []any
		for i := range 5 {
			records = append(records, map[string]any{"email": fmt.Sprintf("Team%d@Example.com", i), "phone": fmt.Sprintf("+1415555267%d", i),
				"createdAt": e.clock.Now().Add(time.Duration(i-10) * time.Hour).Format(time.RFC3339)})
		}
		records = append(records, map[string]any{"email": "outsider@example.org"})
		a.call("POST", "/admin/imports", map[string]any{"users": records}).want(t, 200)

		var seen []string
		cursor := ""
		for page := 0; ; page++ {
			r := a.call("GET", "/admin/users?email=team&limit=2&cursor="+url.QueryEscape(cursor), nil).want(t, 200)
			for _, u := range r.body["users"].([]any) {
				seen = append(seen, u.(map[string]any)["email"].(string))
			}
			if cursor = r.str("nextCursor"); cursor == "" || page > 5 {
				break
			}
		}
		if strings.Join(seen, " ") != "Team0@example.com Team1@example.com Team2@example.com Team3@example.com Team4@example.com" {
			t.Fatalf("pages: %v", seen)
		}
		from := e.clock.Now().Add(-8 * time.Hour).Format(time.RFC3339)
		r := a.call("GET", "/admin/users?phone=%2B14155552674&createdFrom="+url.QueryEscape(from), nil).want(t, 200)
		if us := r.body["users"].([]any); len(us) != 1 || us[0].(map[string]any)["email"] != "Team4@example.com" {
			t.Fatalf("phone and createdFrom: %s", r.raw)
		}
		if r := a.call("GET", "/admin/users?lastLoginFrom="+url.QueryEscape(from), nil).want(t, 200); len(r.body["users"].([]any)) != 0 {
			t.Fatalf("nobody logged in: %s", r.raw)
		}
		for _, bad := range []string{"limit=0", "status=gone", "createdFrom=yesterday", "cursor=%21"} {
			if p, _ := a.call("GET", "/admin/users?"+bad, nil).want(t, 422).detail(); p != strings.Split(bad, "=")[0] {
				t.Fatalf("%s: names %q", bad, p)
			}
		}
	})
}

// TestAdminDeleteErasesEveryRow: after the deletion no table holds the
// user's id or address; another user is untouched, and the audit log
// keeps an event that names the admin only.
func TestAdminDeleteErasesEveryRow(t *testing.T) {
	for _, s := range []struct {
		name string
		open func(t *testing.T) (app.Storage, *dumpTarget)
	}{
		{"sqlite", openSQLiteForDump},
		{"postgres", openPostgresForDump},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			store, target := s.open(t)
			e := newEnv(t, store)
			u := register(t, e, "Leo@example.com")
			other := register(t, e, "mia@example.com")
			u.take(u.login(t).want(t, 200))
			u.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "+14155552671", "country": "US"}).want(t, 200)
			u.call("POST", "/auth/otp/code", map[string]any{"channel": "sms"}, "x-otp", e.codeFor("+14155552671")).want(t, 200)
			e.doWith("POST", "/auth/login", map[string]any{"email": "leo@example.com", "password": "wrong password"}, nil).want(t, 401)
			e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": "leo@example.com", "destination": "EMAIL"}, nil)
			a := newAdmin(t, e)
			id := userOf(t, a.call("GET", "/admin/users/leo@example.com", nil).want(t, 200))["id"].(string)
			needles := [][]byte{[]byte(strings.ToLower(id)), []byte("leo@example.com"), []byte("+14155552671"), []byte("4155552671")}
			found := func() []string {
				var where []string
				for _, c := range target.dumpTables(t) {
					for _, n := range needles {
						if bytes.Contains(bytes.ToLower(c.b), n) {
							where = append(where, c.where+" has "+string(n))
						}
					}
				}
				return where
			}
			if len(found()) == 0 {
				t.Fatal("the search finds nothing even before the deletion")
			}

			a.call("DELETE", "/admin/users/"+id, nil).want(t, 200)
			if where := found(); len(where) > 0 {
				t.Fatalf("after the deletion: %s", strings.Join(where, "\n"))
			}
			a.call("GET", "/admin/users/"+id, nil).want(t, 404)
			a.call("DELETE", "/admin/users/"+id, nil).want(t, 404)
			u.login(t).want(t, 401)
			other.call("GET", "/auth/me", nil).want(t, 200)
			ev := auditOf(t, e, tessera.AuditFilter{Kind: tessera.AuditAdminUserDeleted})
			if len(ev) != 1 || ev[0].UserID != "" || ev[0].Email != "" || !strings.Contains(ev[0].Detail, "client ops") {
				t.Fatalf("the deletion's audit event: %+v", ev)
			}
		})
	}
}

// TestImportThenLogin: users imported with the hashes of other systems
// log in through HTTP with their old passwords, and their hash becomes
// Tessera's argon2id; an imported authenticator app asks for its codes.
// Vectors: see internal/password/legacy_test.go for their sources.
func TestImportThenLogin(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		a := newAdmin(t, e)
		const totp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
		users := []map[string]any{
			{"email": "bcrypt@example.com", "emailVerified": true, "passwordHash": "$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i"},
			{"email": "argon2i@example.com", "passwordHash": "$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8"},
			{"email": "django@example.com", "passwordHash": "pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY="},
			{"email": "firebase@example.com", "phone": "+14155552671", "phoneVerified": true,
				"passwordHash": "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==", "passwordSalt": "42xEC+ixf3L2lw=="},
			{"email": "totp@example.com", "passwordHash": "$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i", "totpSecret": strings.ToLower(totp)},
			{"email": "md5@example.com", "passwordHash": "5f4dcc3b5aa765d61d8327deb882cf99"},
		}
		fb := map[string]any{"signerKey": "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==",
			"saltSeparator": "Bw==", "rounds": 8, "memCost": 14}
		r := a.call("POST", "/admin/imports", map[string]any{"firebaseScrypt": fb, "users": users}).want(t, 200)
		if r.body["created"] != float64(5) || r.body["invalid"] != float64(1) {
			t.Fatalf("import: %s", r.raw)
		}
		bad := r.body["results"].([]any)[5].(map[string]any)
		if bad["field"] != "passwordHash" || bad["line"] != float64(6) || strings.Contains(r.raw, "5f4dcc3b") {
			t.Fatalf("the bad hash: %v", bad)
		}
		// Again: nothing changes, every present address is reported.
		if again := a.call("POST", "/admin/imports", map[string]any{"firebaseScrypt": fb, "users": users[:5]}).want(t, 200); again.body["exists"] != float64(5) {
			t.Fatalf("re-import: %s", again.raw)
		}
		// Firebase hashes without the project's parameters are refused.
		if r := a.call("POST", "/admin/imports", map[string]any{"users": users[3:4]}).want(t, 200); r.body["invalid"] != float64(1) {
			t.Fatalf("firebase without parameters: %s", r.raw)
		}

		for email, pw := range map[string]string{"bcrypt@example.com": "abc", "argon2i@example.com": "password", "django@example.com": "lètmein", "firebase@example.com": "user1password"} {
			login := func(pw string) *response {
				return e.doWith("POST", "/auth/login", map[string]any{"email": email, "password": pw}, nil)
			}
			login(pw+"!").want(t, 401)
			if r := login(pw).want(t, 200); r.str("idToken") == "" {
				t.Fatalf("%s: %s", email, r.raw)
			}
			u, err := e.app.Store.UserByEmail(context.Background(), email)
			if err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Fatalf("%s: stored hash not rehashed to argon2id (%.12s…, %v)", email, u.PasswordHash, err)
			}
			login(pw).want(t, 200)
		}

		r = e.doWith("POST", "/auth/login", map[string]any{"email": "totp@example.com", "password": "abc"}, nil).want(t, 200)
		if r.body["mfaRequired"] != true {
			t.Fatalf("the imported authenticator app is not a factor: %s", r.raw)
		}
		e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": r.str("processingId"), "method": "totp", "code": totpCode(totp, e.clock.Now())}, nil).want(t, 200)
		if n := len(auditOf(t, e, tessera.AuditFilter{Kind: tessera.AuditAdminUserImported})); n != 5 {
			t.Fatalf("%d import events, want 5", n)
		}
	})
}
