package httpapi_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/tessera-id/tessera/internal/app"
)

// The hosted account pages through HTTP, as a browser without JavaScript
// uses them: a cookie jar, forms, redirects not followed so each answer
// is seen.

const appReturn = "https://app.example.com/auth/callback"

// browser is a cookie-keeping client of the env's server.
type browser struct {
	t    *testing.T
	e    *env
	c    *http.Client
	lang string // the Accept-Language it sends, if any
}

func newBrowser(t *testing.T, e *env) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	flowField = regexp.MustCompile(`name="processingId" value="([^"]+)"`)
)

// formOf returns the CSRF token and flow of the first form of a page.
func formOf(t *testing.T, page string) url.Values {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page has no form with a CSRF token:\n%s", page)
	}
	v := url.Values{"csrf": {m[1]}}
	if f := flowField.FindStringSubmatch(page); f != nil {
		v.Set("processingId", f[1])
	}
	return v
}

func with(v url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = vs
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

func wantStatus(t *testing.T, res *http.Response, body string, status int) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("%s %s: %d, want %d\n%s", res.Request.Method, res.Request.URL.Path, res.StatusCode, status, body)
	}
}

// signUp creates an account through the pages and returns the browser,
// signed in.
func signUp(t *testing.T, e *env, email, pw string) *browser {
	t.Helper()
	b := newBrowser(t, e)
	_, page := b.get("/account/signup")
	res, page := b.post("/account/signup", with(formOf(t, page), "email", email, "password", pw))
	wantStatus(t, res, page, http.StatusOK)
	res, page = b.post("/account/signup/confirm", with(formOf(t, page), "email", email, "code", e.codeFor(email)))
	wantStatus(t, res, page, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/account/settings" {
		t.Fatalf("after sign-up: Location %q", loc)
	}
	return b
}

func pagesEnv(t *testing.T, store app.Storage) *env {
	return newEnvWith(t, store, func(o *app.Options) { o.ReturnURLs = []string{appReturn} })
}

// TestPagesHeaders: every page has a CSP with a fresh nonce that its own
// script and style carry, frames nothing, and sets its cookies HttpOnly
// and SameSite=Lax; __Host- and Secure everywhere but a plain-HTTP
// loopback host, where browsers refuse both.
func TestPagesHeaders(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	b := newBrowser(t, e)
	nonce := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]{20,})'`)
	var seen []string
	for range 2 {
		res, page := b.get("/account/login")
		wantStatus(t, res, page, http.StatusOK)
		csp := res.Header.Get("Content-Security-Policy")
		m := nonce.FindStringSubmatch(csp)
		if m == nil {
			t.Fatalf("CSP without a script nonce: %s", csp)
		}
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self' https://app.example.com", "style-src 'self' 'nonce-" + m[1] + "'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP lacks %s: %s", want, csp)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("CSP allows something unsafe: %s", csp)
		}
		if !strings.Contains(page, `<script src="/account/static/account.js" nonce="`+m[1]+`"`) || !strings.Contains(page, `<style nonce="`+m[1]+`">`) {
			t.Errorf("the page's script and style do not carry the nonce %s", m[1])
		}
		if regexp.MustCompile(`<script\b[^>]*>[^<]`).MatchString(page) || regexp.MustCompile(`\son[a-z]+=`).MatchString(page) {
			t.Error("the page has an inline script or handler")
		}
		seen = append(seen, m[1])
		if res.Header.Get("X-Frame-Options") != "DENY" {
			t.Error("no X-Frame-Options: DENY")
		}
	}
	if seen[0] == seen[1] {
		t.Error("two answers share a nonce")
	}

	// Cookies: on http://127.0.0.1 without the prefix and Secure; on a
	// real host name (behind a TLS proxy) with both.
	for _, tc := range []struct {
		host   string
		name   string
		secure bool
	}{{"", "tessera-csrf", false}, {"login.example.com", "__Host-tessera-csrf", true}} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/account/login", nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		res, _ := newBrowser(t, e).do(req)
		var c *http.Cookie
		for _, k := range res.Cookies() {
			if strings.HasSuffix(k.Name, "tessera-csrf") {
				c = k
			}
		}
		if c == nil || c.Name != tc.name || c.Secure != tc.secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("host %q: CSRF cookie %+v, want %s, Secure %v, HttpOnly, SameSite=Lax, Path=/", tc.host, c, tc.name, tc.secure)
		}
	}

	// The session cookie after a sign-up: the same flags, and it names
	// the session with a MAC, not an ID token.
	s := signUp(t, e, "hed@example.com", "correct horse battery")
	u, _ := url.Parse(e.srv.URL)
	var sess *http.Cookie
	for _, c := range s.c.Jar.Cookies(u) {
		if c.Name == "tessera-session" {
			sess = c
		}
	}
	if sess == nil || strings.Count(sess.Value, ".") != 1 || strings.HasPrefix(sess.Value, "ey") {
		t.Fatalf("session cookie %+v", sess)
	}
	// A forged MAC signs nothing in.
	id, _, _ := strings.Cut(sess.Value, ".")
	forged := newBrowser(t, e)
	forged.c.Jar.SetCookies(u, []*http.Cookie{{Name: "tessera-session", Value: id + ".AAAAAAAAAAAAAAAAAAAAAAAA"}})
	if res, _ := forged.get("/account/settings"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account/login" {
		t.Errorf("a forged session cookie: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestPagesCSRF: a form posted without its token, with another browser's
// token, or with a token of another flow is refused, before any account
// operation runs.
func TestPagesCSRF(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	victim := signUp(t, e, "victim@example.com", "correct horse battery")
	attacker := newBrowser(t, e)
	_, page := attacker.get("/account/login")
	attackerToken := formOf(t, page).Get("csrf")

	// A cross-site form: the victim's cookies, no token or the attacker's.
	for _, form := range []url.Values{
		{"old-password": {"correct horse battery"}, "new-password": {"attacker's password"}},
		{"csrf": {attackerToken}, "old-password": {"correct horse battery"}, "new-password": {"attacker's password"}},
	} {
		res, body := victim.post("/account/settings/password", form)
		wantStatus(t, res, body, http.StatusForbidden)
		if !strings.Contains(body, "This form has expired") {
			t.Errorf("the refusal does not say what to do:\n%s", body)
		}
	}
	// Login CSRF: the attacker's own form, posted from the victim's browser.
	res, body := newBrowser(t, e).post("/account/login", url.Values{"csrf": {attackerToken}, "email": {"victim@example.com"}, "password": {"x"}})
	wantStatus(t, res, body, http.StatusForbidden)

	// A token is bound to its flow: the settings' token does not confirm
	// a sign-up flow.
	_, settings := victim.get("/account/settings")
	res, body = victim.post("/account/signup/confirm", url.Values{"csrf": {formOf(t, settings).Get("csrf")}, "processingId": {"5028c0cd-07a9-4fa7-8d88-49edd2a44b72"}, "email": {"x@example.com"}, "code": {"123456"}})
	wantStatus(t, res, body, http.StatusForbidden)

	// The victim's own form goes through (the step-up is fresh).
	res, body = victim.post("/account/settings/password", with(formOf(t, settings), "old-password", "correct horse battery", "new-password", "a new password here"))
	wantStatus(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/account/settings?done=password_changed" {
		t.Errorf("password change: Location %q", loc)
	}
}

// TestPagesOpenRedirect: a return_to that is not under an allowed return
// URL is refused with a page, never followed; one under it is.
func TestPagesOpenRedirect(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	for _, bad := range []string{
		"https://evil.example/auth/callback",
		"https://app.example.com.evil.example/auth/callback",
		"https://app.example.com/auth/callbackx",
		"https://app.example.com/auth/callback/../../admin",
		"https://app.example.com/auth//callback",
		"http://app.example.com/auth/callback",
		"https://user@app.example.com/auth/callback",
		"//evil.example/auth/callback",
		"/auth/callback",
		"https://app.example.com:8443/auth/callback",
		"javascript:alert(1)",
		"https://app.example.com/auth/callback#frag",
	} {
		res, body := newBrowser(t, e).get("/account/login?return_to=" + url.QueryEscape(bad))
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" || strings.Contains(body, bad) && strings.Contains(body, `value="`+bad) {
			t.Errorf("return_to %s: %d, Location %q", bad, res.StatusCode, res.Header.Get("Location"))
		}
	}
	for _, good := range []string{appReturn, appReturn + "?state=xyz", appReturn + "/next"} {
		res, body := newBrowser(t, e).get("/account/login?return_to=" + url.QueryEscape(good))
		wantStatus(t, res, body, http.StatusOK)
		if !strings.Contains(body, `name="return_to" value="`+strings.ReplaceAll(good, "&", "&amp;")+`"`) {
			t.Errorf("return_to %s is not carried by the form", good)
		}
	}
}

// loginReturning signs email in on the pages with return_to and returns
// the code the app gets.
func loginReturning(t *testing.T, e *env, email, pw, returnTo string) string {
	t.Helper()
	b := newBrowser(t, e)
	_, page := b.get("/account/login?return_to=" + url.QueryEscape(returnTo))
	res, body := b.post("/account/login", with(formOf(t, page), "email", email, "password", pw, "return_to", returnTo))
	wantStatus(t, res, body, http.StatusSeeOther)
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), returnTo) || loc.Query().Get("code") == "" {
		t.Fatalf("login with return_to: Location %s", res.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

// TestPagesHandoff: a login with return_to sends the browser back with a
// one-time code; the app's backend exchanges it once, within a minute,
// with the return URL it was issued for, for tokens of that login.
func TestPagesHandoff(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			e := pagesEnv(t, st.open(t))
			const email, pw = "hand@example.com", "correct horse battery"
			signUp(t, e, email, pw)
			ret := appReturn + "?state=s1"

			code := loginReturning(t, e, email, pw, ret)
			// The wrong return URL spends the code.
			e.do("POST", "/auth/exchange", map[string]string{"code": code, "returnUrl": "https://app.example.com/other"}).want(t, 422)
			e.do("POST", "/auth/exchange", map[string]string{"code": code, "returnUrl": ret}).want(t, 422)

			code = loginReturning(t, e, email, pw, ret)
			tokens := e.do("POST", "/auth/exchange", map[string]string{"code": code, "returnUrl": ret}).want(t, 200)
			if tokens.str("idToken") == "" || !strings.HasPrefix(tokens.str("refreshToken"), "rt_") {
				t.Fatalf("exchange: %v", tokens.body)
			}
			me := e.doWith("GET", "/auth/me", nil, map[string]string{"Authorization": "Bearer " + tokens.str("idToken")}).want(t, 200)
			if me.str("email") != "h***d@example.com" { // the API obfuscates it
				t.Errorf("the tokens are not the user's: %v", me.body)
			}
			// Single use, even for the right caller.
			e.do("POST", "/auth/exchange", map[string]string{"code": code, "returnUrl": ret}).want(t, 422)
			// The refresh token works (it is the session's).
			e.do("POST", "/auth/login/refresh", map[string]string{"refreshToken": tokens.str("refreshToken")}).want(t, 200)

			// Expired after a minute.
			code = loginReturning(t, e, email, pw, ret)
			e.clock.Advance(61 * time.Second)
			e.do("POST", "/auth/exchange", map[string]string{"code": code, "returnUrl": ret}).want(t, 422)
		})
	}
}

// TestPagesStepUp: a privileged change on a session whose proof is old
// sends the browser to the step-up and changes nothing; after the
// step-up it goes through.
func TestPagesStepUp(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	const email, pw = "step@example.com", "correct horse battery"
	b := signUp(t, e, email, pw)
	e.clock.Advance(11 * time.Minute)

	_, settings := b.get("/account/settings")
	res, body := b.post("/account/settings/password", with(formOf(t, settings), "old-password", pw, "new-password", "attacker's password"))
	wantStatus(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/account/reauth?next=%2Faccount%2Fsettings" {
		t.Fatalf("an old session's password change: Location %q", loc)
	}
	e.do("POST", "/auth/login", map[string]string{"email": email, "password": pw}).want(t, 200) // unchanged

	_, page := b.get("/account/reauth?next=%2Faccount%2Fsettings")
	res, body = b.post("/account/reauth", with(formOf(t, page), "password", "wrong password", "next", "/account/settings"))
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	if !strings.Contains(body, `aria-describedby="password-error"`) || !strings.Contains(body, `id="password-error"`) {
		t.Errorf("the wrong password is not tied to its field:\n%s", body)
	}
	res, body = b.post("/account/reauth", with(formOf(t, body), "password", pw, "next", "https://evil.example/"))
	wantStatus(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/account/settings" {
		t.Errorf("after the step-up: Location %q (a step-up never leaves the pages)", loc)
	}
	_, settings = b.get("/account/settings")
	res, body = b.post("/account/settings/password", with(formOf(t, settings), "old-password", pw, "new-password", "a new password here"))
	wantStatus(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/account/settings?done=password_changed" {
		t.Errorf("after the step-up, the change: Location %q", loc)
	}
}

// loginBrowser signs email in on the pages in a new browser.
func loginBrowser(t *testing.T, e *env, email, pw string) *browser {
	t.Helper()
	b := newBrowser(t, e)
	_, page := b.get("/account/login")
	res, body := b.post("/account/login", with(formOf(t, page), "email", email, "password", pw))
	wantStatus(t, res, body, http.StatusSeeOther)
	return b
}

// TestPagesSessions: the settings list the user's sessions; one can be
// ended, or every other one (RevokeOtherSessions), and the browsers of
// those are signed out.
func TestPagesSessions(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	const email, pw = "sessions@example.com", "correct horse battery"
	me := signUp(t, e, email, pw)
	e.clock.Advance(time.Second)
	phone := loginBrowser(t, e, email, pw)
	e.clock.Advance(time.Second)
	laptop := loginBrowser(t, e, email, pw)
	_, settings := me.get("/account/settings")
	ids := regexp.MustCompile(`data-session="([^"]+)"`).FindAllStringSubmatch(settings, -1)
	if len(ids) != 3 || strings.Count(settings, "(this browser)") != 1 {
		t.Fatalf("the settings list %d sessions, want 3 with this one marked", len(ids))
	}
	// End one: the newest (the laptop's) is listed first.
	res, body := me.post("/account/settings/sessions/end", with(formOf(t, settings), "id", ids[0][1]))
	wantStatus(t, res, body, http.StatusSeeOther)
	if res, _ := laptop.get("/account/settings"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the ended session's browser still sees the settings: %d", res.StatusCode)
	}
	if res, _ := phone.get("/account/settings"); res.StatusCode != http.StatusOK {
		t.Errorf("another session ended too: %d", res.StatusCode)
	}
	_, settings = me.get("/account/settings")
	res, body = me.post("/account/settings/sessions/end-others", formOf(t, settings))
	wantStatus(t, res, body, http.StatusSeeOther)
	if res, _ := phone.get("/account/settings"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after ending every other session, the phone still sees the settings: %d", res.StatusCode)
	}
	res, body = me.get("/account/settings?done=sessions_ended")
	wantStatus(t, res, body, http.StatusOK)
	if n := strings.Count(body, "data-session="); n != 1 || !strings.Contains(body, "Every other session was signed out.") {
		t.Errorf("after ending the others: %d sessions listed", n)
	}
	// Sign out ends this one too.
	res, body = me.post("/account/logout", formOf(t, body))
	wantStatus(t, res, body, http.StatusSeeOther)
	if res, _ := me.get("/account/settings"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after signing out: %d", res.StatusCode)
	}
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// formAt returns the hidden fields (CSRF token, flow, carried values) of
// the page's form that posts to action.
func formAt(t *testing.T, page, action string) url.Values {
	t.Helper()
	m := regexp.MustCompile(`(?s)<form[^>]*action="` + regexp.QuoteMeta(action) + `"[^>]*>(.*?)</form>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page has no form to %s:\n%s", action, page)
	}
	v := url.Values{}
	for _, h := range hiddenInput.FindAllStringSubmatch(m[1], -1) {
		v.Add(h[1], strings.ReplaceAll(h[2], "&#43;", "+"))
	}
	return v
}

// TestPagesSettingsFlows: the one-time-token flows and the factors of the
// settings, as a person does them: an anti-phishing code, a new email
// address (a token to the old one, then to the new), an authenticator app
// from the secret on the page with recovery codes shown once and
// downloaded, and two-step verification turned off again.
func TestPagesSettingsFlows(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	const email, newEmail, pw = "flows@example.com", "moved@example.com", "correct horse battery"
	b := signUp(t, e, email, pw)

	// Anti-phishing code.
	_, page := b.get("/account/settings")
	res, page := b.post("/account/settings/anti-phishing", formAt(t, page, "/account/settings/anti-phishing"))
	wantStatus(t, res, page, http.StatusOK)
	form := with(formAt(t, page, "/account/settings/anti-phishing/set"), "token", e.codeFor(email), "anti-phishing", "x")
	res, page = b.post("/account/settings/anti-phishing/set", form)
	wantStatus(t, res, page, http.StatusUnprocessableEntity)
	if !strings.Contains(page, `aria-describedby="anti-phishing-hint anti-phishing-error"`) {
		t.Errorf("a too short anti-phishing code is not tied to its field:\n%s", page)
	}
	res, page = b.post("/account/settings/anti-phishing/set", with(form, "anti-phishing", "purple walrus"))
	wantStatus(t, res, page, http.StatusSeeOther)

	// A new email address.
	_, page = b.get("/account/settings")
	res, page = b.post("/account/settings/email", formAt(t, page, "/account/settings/email"))
	wantStatus(t, res, page, http.StatusOK)
	var toOld string
	for _, m := range e.deliver() {
		if m.To == email {
			toOld = m.Body
		}
	}
	if !strings.Contains(toOld, "purple walrus") {
		t.Errorf("the email does not show the anti-phishing code: %q", toOld)
	}
	res, page = b.post("/account/settings/key/new", with(formAt(t, page, "/account/settings/key/new"), "token", sixDigits.FindString(toOld), "new-key", newEmail))
	wantStatus(t, res, page, http.StatusOK)
	res, page = b.post("/account/settings/key/confirm", with(formAt(t, page, "/account/settings/key/confirm"), "token", e.codeFor(newEmail)))
	wantStatus(t, res, page, http.StatusSeeOther)
	_, page = b.get("/account/settings")
	if !strings.Contains(page, `<dd id="email-value">`+newEmail+`</dd>`) {
		t.Errorf("the settings do not show the new address")
	}

	// An authenticator app, recovery codes, and MFA off.
	res, page = b.post("/account/settings/totp", formAt(t, page, "/account/settings/totp"))
	wantStatus(t, res, page, http.StatusOK)
	secret := regexp.MustCompile(`id="totp-secret" class="secret">([A-Z2-7 ]+)<`).FindStringSubmatch(page)
	if secret == nil || !strings.Contains(page, `src="data:image/png;base64,`) {
		t.Fatalf("the enrolment page lacks the QR code or the secret:\n%s", page)
	}
	code, err := totp.GenerateCode(strings.ReplaceAll(secret[1], " ", ""), e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, page = b.post("/account/settings/totp/verify", with(formAt(t, page, "/account/settings/totp/verify"), "code", code))
	wantStatus(t, res, page, http.StatusOK)
	codes := regexp.MustCompile(`<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>`).FindAllStringSubmatch(page, -1)
	if len(codes) != 10 {
		t.Fatalf("the recovery codes page shows %d codes", len(codes))
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/account/settings/recovery-codes/download", strings.NewReader(formAt(t, page, "/account/settings/recovery-codes/download").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, file := b.do(req)
	wantStatus(t, res, file, http.StatusOK)
	if res.Header.Get("Content-Disposition") != `attachment; filename="recovery-codes.txt"` || !strings.Contains(file, codes[9][1]) {
		t.Errorf("download: %s\n%s", res.Header.Get("Content-Disposition"), file)
	}

	_, page = b.get("/account/settings")
	if !strings.Contains(page, "Two-step verification is on.") {
		t.Fatal("the settings do not say MFA is on")
	}
	res, page = b.post("/account/settings/mfa-off", formAt(t, page, "/account/settings/mfa-off"))
	wantStatus(t, res, page, http.StatusOK)
	res, page = b.post("/account/settings/mfa-off/confirm", with(formAt(t, page, "/account/settings/mfa-off/confirm"), "token", e.codeFor(newEmail)))
	wantStatus(t, res, page, http.StatusSeeOther)
	if _, page = b.get("/account/settings"); !strings.Contains(page, "Two-step verification is off.") {
		t.Error("MFA is still on")
	}
}

// TestPagesKeyRecovery: a user with texted codes as their second factor
// lost the phone: from the second-factor step they recover it with a token
// to the email, one to the new phone and a recovery code; then they sign
// in with a code texted to the new phone.
func TestPagesKeyRecovery(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	u := withSMSMFA(t, e, "lost@example.com", "+14155552671")
	const newPhone = "+14155552672"
	b := newBrowser(t, e)
	_, page := b.get("/account/login")
	res, page := b.post("/account/login", with(formOf(t, page), "email", u.email, "password", u.password))
	wantStatus(t, res, page, http.StatusOK)
	if !strings.Contains(page, "Text me a code") || !strings.Contains(page, `id="recovery-code"`) || strings.Contains(page, `id="totp-code"`) {
		t.Fatalf("the second-factor step does not offer this account's methods:\n%s", page)
	}
	res, page = b.post("/account/key-recovery", formAt(t, page, "/account/key-recovery"))
	wantStatus(t, res, page, http.StatusOK)
	res, page = b.post("/account/key-recovery", with(formAt(t, page, "/account/key-recovery"), "lost", "PHONE_NUMBER"))
	wantStatus(t, res, page, http.StatusOK)
	res, page = b.post("/account/key-recovery/new-key", with(formAt(t, page, "/account/key-recovery/new-key"), "verification-token", e.codeFor(u.email), "new-key", newPhone))
	wantStatus(t, res, page, http.StatusOK)
	res, page = b.post("/account/key-recovery/finish", with(formAt(t, page, "/account/key-recovery/finish"), "new-key-token", e.codeFor(newPhone), "mfa-code", u.recoveryCodes[0]))
	wantStatus(t, res, page, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/account/login?done=key_recovered" {
		t.Fatalf("after the recovery: Location %q", loc)
	}

	// The new phone finishes the next sign-in.
	e.clock.Advance(time.Minute)
	_, page = b.get("/account/login")
	res, page = b.post("/account/login", with(formOf(t, page), "email", u.email, "password", u.password))
	wantStatus(t, res, page, http.StatusOK)
	res, page = b.post("/account/login/sms", formAt(t, page, "/account/login/sms"))
	wantStatus(t, res, page, http.StatusOK)
	if !strings.Contains(html.UnescapeString(page), "+14*******72") {
		t.Errorf("the page does not say where the code went:\n%s", page)
	}
	form := with(formAt(t, page, "/account/login/mfa"), "method", "sms", "sms-code", "000000")
	res, page = b.post("/account/login/mfa", form)
	wantStatus(t, res, page, http.StatusUnprocessableEntity)
	if !strings.Contains(page, `id="sms-code-error"`) {
		t.Errorf("a wrong texted code is not tied to its field:\n%s", page)
	}
	res, page = b.post("/account/login/mfa", with(form, "sms-code", e.codeFor(newPhone)))
	wantStatus(t, res, page, http.StatusSeeOther)
}
