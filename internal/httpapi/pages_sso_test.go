package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/pquerna/otp/totp"

	"github.com/tessera-id/tessera"
)

// continueTo opens the login page with return_to in a signed-in browser
// and returns the page.
func continueTo(t *testing.T, b *browser, returnTo string) (*http.Response, string) {
	t.Helper()
	return b.get("/account/login?return_to=" + url.QueryEscape(returnTo))
}

// wantLoginForm checks that a page asks for the password again and
// carries no handoff code.
func wantLoginForm(t *testing.T, res *http.Response, page, why string) {
	t.Helper()
	if res.StatusCode != http.StatusOK || !strings.Contains(page, `id="password"`) || strings.Contains(page, "continue-sso") || res.Header.Get("Location") != "" {
		t.Errorf("%s: %d, Location %q, want the login form:\n%s", why, res.StatusCode, res.Header.Get("Location"), page)
	}
}

// TestPagesSingleSignOn: a browser signed in to the pages continues to an
// allowed app without the password, after a click on Tessera's own
// "Continue as" page; the app gets a session of its own at the same
// assurance. The attacks first: a cross-site link with a return_to that
// is not allowed gets no code and no redirect, even from a signed-in
// victim; a cross-site form cannot click "Continue" (CSRF); a session
// short of the account's assurance, ended, or of a disabled user is asked
// to log in.
func TestPagesSingleSignOn(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	const email, pw = "sso@example.com", "correct horse battery"
	victim := signUp(t, e, email, pw)
	_, settings := victim.get("/account/settings")
	token := formOf(t, settings).Get("csrf")

	// Another origin names itself as the return URL: refused, whether by
	// the link or by a form posted with the victim's own token.
	for _, evil := range []string{"https://evil.example/cb", "https://app.example.com.evil.example/auth/callback", "//evil.example/auth/callback"} {
		res, page := continueTo(t, victim, evil)
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" || strings.Contains(page, "code=") || strings.Contains(page, "continue-sso") {
			t.Errorf("signed in, return_to %s: %d, Location %q", evil, res.StatusCode, res.Header.Get("Location"))
		}
		res, page = victim.post("/account/login/continue", url.Values{"csrf": {token}, "return_to": {evil}})
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
			t.Errorf("continue to %s: %d, Location %q\n%s", evil, res.StatusCode, res.Header.Get("Location"), page)
		}
	}
	if n := len(sessionIDs(t, victim)); n != 1 {
		t.Fatalf("the refused attempts made sessions: %d", n)
	}

	// The allowed app: a page that says who continues, no code yet.
	ret := appReturn + "?state=s2"
	res, page := continueTo(t, victim, ret)
	wantStatus(t, res, page, http.StatusOK)
	if !strings.Contains(page, "Continue as "+email) || !strings.Contains(page, "app.example.com asks to sign you in") || strings.Contains(page, "code=") || strings.Contains(page, `id="password"`) {
		t.Fatalf("the single sign-on page:\n%s", page)
	}
	// A cross-site form posting "Continue" from the victim's browser.
	res, body := victim.post("/account/login/continue", url.Values{"return_to": {ret}})
	wantStatus(t, res, body, http.StatusForbidden)

	// The click: the app gets a code for a session of its own.
	res, body = victim.post("/account/login/continue", formAt(t, page, "/account/login/continue"))
	wantStatus(t, res, body, http.StatusSeeOther)
	loc, _ := url.Parse(res.Header.Get("Location"))
	if loc == nil || !strings.HasPrefix(loc.String(), ret+"&code=") {
		t.Fatalf("continue: Location %s", res.Header.Get("Location"))
	}
	tokens := e.do("POST", "/auth/exchange", map[string]string{"code": loc.Query().Get("code"), "returnUrl": ret}).want(t, 200)
	claims := claimsOf(t, e, tokens.str("idToken"))
	if claims["acr"] != "aal1" || claims["sid"] == nil {
		t.Errorf("the app's ID token: %v", claims)
	}
	if ids := sessionIDs(t, victim); len(ids) != 2 || !containsString(ids, claims["sid"]) {
		t.Errorf("the app's session is not listed with the browser's: %v, sid %v", ids, claims["sid"])
	}
	if ev := auditOf(t, e, tessera.AuditFilter{Kind: tessera.AuditLoginSSO}); len(ev) != 1 || ev[0].Email != email {
		t.Errorf("audit of the single sign-on: %+v", ev)
	}
	// "Use another account" signs the browser out and back to the login
	// for the same app.
	res, body = victim.post("/account/logout", formAt(t, page, "/account/login/continue")) // the form of "Use another account"
	wantStatus(t, res, body, http.StatusSeeOther)
	if l := res.Header.Get("Location"); l != "/account/login?done=logged_out&return_to="+url.QueryEscape(ret) {
		t.Errorf("use another account: Location %q", l)
	}
	res, page = continueTo(t, victim, ret)
	wantLoginForm(t, res, page, "after signing out")

	// A session at AAL 1 of an account with an authenticator app is short
	// of what a login now reaches: it logs in again. Enrolling raises the
	// enrolling session and ends the others, so such a session is made
	// here in the store (as one from before MFA, carried over, would be).
	u := signUp(t, e, "weak@example.com", pw)
	_, page = u.get("/account/settings")
	res, page = u.post("/account/settings/totp", formAt(t, page, "/account/settings/totp"))
	wantStatus(t, res, page, http.StatusOK)
	secret := regexp.MustCompile(`id="totp-secret" class="secret">([A-Z2-7 ]+)<`).FindStringSubmatch(page)[1]
	code, _ := totp.GenerateCode(strings.ReplaceAll(secret, " ", ""), e.clock.Now())
	res, page = u.post("/account/settings/totp/verify", with(formAt(t, page, "/account/settings/totp/verify"), "code", code))
	wantStatus(t, res, page, http.StatusOK)
	if err := e.app.Store.SetSessionAuth(context.Background(), sessionIDs(t, u)[0], 1, []string{"pwd"}, e.clock.Now(), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	res, page = continueTo(t, u, ret)
	wantLoginForm(t, res, page, "an AAL 1 session of an account with MFA on")
	_, settings = u.get("/account/settings")
	res, page = u.post("/account/login/continue", url.Values{"csrf": {formOf(t, settings).Get("csrf")}, "return_to": {ret}})
	wantLoginForm(t, res, page, "continue, posted by an AAL 1 session of an account with MFA on")

	// A disabled user's browser is signed out.
	d := signUp(t, e, "disabled@example.com", pw)
	a := newAdmin(t, e)
	a.call("POST", "/admin/users/"+url.PathEscape("disabled@example.com")+"/disable", nil).want(t, 200)
	res, page = continueTo(t, d, ret)
	wantLoginForm(t, res, page, "a disabled user")
}

// sessionIDs lists the sessions the settings page of b shows.
func sessionIDs(t *testing.T, b *browser) []string {
	t.Helper()
	_, page := b.get("/account/settings")
	var out []string
	for _, m := range regexp.MustCompile(`data-session="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

func containsString(list []string, v any) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
