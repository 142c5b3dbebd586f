package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/tessera-id/tessera/internal/browsertest"
)

// AxeEnv names the path of axe.min.js (npm axe-core), which scripts/test
// installs; ArtifactsEnv a directory for the journey's screenshots.
const (
	AxeEnv       = "TESSERA_TEST_AXE"
	ArtifactsEnv = "TESSERA_TEST_ARTIFACTS"
)

// AppCallback is the return URL (on the test server's origin) of the app
// the journey signs in to.
const AppCallback = "/app/callback"

// inboxCode reads the code of the next message to `to` from the
// development inbox (/dev/inbox), as a person reads their mail: in a tab
// of its own, reloading until a message with a code newer than those read
// before arrives. The first visit is screenshotted and checked too.
func (j *journey) inboxCode(origin, to string) string {
	j.t.Helper()
	tab, closeTab := chromedp.NewContext(j.ctx)
	defer closeTab()
	page := origin + "/dev/inbox?to=" + url.QueryEscape(to)
	count := `[...document.querySelectorAll("article.message[data-code]")].filter(m => m.dataset.to === ` + jsString(to) + `)`
	for {
		if err := chromedp.Do(tab, chromedp.Navigate(page)); err != nil {
			j.t.Fatalf("the development inbox: %v", err)
		}
		var got struct {
			N    int
			Code string
		}
		raw, err := chromedp.Run(tab, chromedp.Evaluate[[]byte](`(() => { const m = `+count+`; return {n: m.length, code: m.length ? m[0].dataset.code : ""}; })()`))
		if err != nil || json.Unmarshal(raw, &got) != nil {
			j.t.Fatalf("reading the development inbox: %v %s", err, raw)
		}
		if got.N > j.read[to] {
			j.read[to] = got.N
			if !j.inboxSeen {
				j.inboxSeen = true
				j.check(tab, "inbox")
			}
			return got.Code
		}
		select {
		case <-j.ctx.Done():
			j.t.Fatalf("no new code for %s in the development inbox: %v", to, j.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// journey drives one tab through the pages: each step waits for the page
// it leads to, then saves a screenshot and checks it with axe-core.
type journey struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	axe       string // axe.min.js, or "" when not checked
	shots     int
	read      map[string]int // per address, how many codes were read from the inbox
	inboxSeen bool
}

func newJourney(t *testing.T, ctx context.Context) *journey {
	j := &journey{t: t, ctx: ctx, artifacts: os.Getenv(ArtifactsEnv), read: map[string]int{}}
	if j.artifacts == "" {
		j.artifacts = t.TempDir()
	}
	if err := os.MkdirAll(j.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", j.artifacts)
	j.axe = loadAxe(t)
	return j
}

// loadAxe returns the source of axe.min.js: from AxeEnv, else where
// scripts/test installs it. Without it the pages are not checked, or,
// when browsertest.RequireEnv is set (CI), the test fails.
func loadAxe(t *testing.T) string {
	t.Helper()
	path := os.Getenv(AxeEnv)
	if path == "" {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, ".cache/tessera-axe/node_modules/axe-core/axe.min.js")
		}
	}
	src, err := os.ReadFile(path)
	switch {
	case err == nil:
		return string(src)
	case os.Getenv(browsertest.RequireEnv) != "":
		t.Fatalf("%s is set, so the pages must be checked with axe-core: %v (scripts/test installs it; set %s)", browsertest.RequireEnv, err, AxeEnv)
	default:
		t.Logf("axe-core not found (%v): the pages are not checked for accessibility", err)
	}
	return ""
}

func (j *journey) run(actions ...chromedp.Action[chromedp.Void]) {
	j.t.Helper()
	if err := chromedp.Do(j.ctx, actions...); err != nil {
		j.t.Fatal(err)
	}
}

// waitFor waits until the JavaScript expression is true on the page.
func (j *journey) waitFor(what, expression string) {
	j.t.Helper()
	if _, err := browsertest.WaitFor[bool](j.ctx, expression); err != nil {
		j.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// page waits for the page at path with the element of selector (where a
// step leads), then saves a screenshot named name and runs axe-core on it.
func (j *journey) page(name, path, selector string) {
	j.t.Helper()
	j.waitFor(name, `location.pathname === `+jsString(path)+` && document.readyState === "complete" && document.querySelector(`+jsString(selector)+`) !== null`)
	j.check(j.ctx, name)
}

// check saves a screenshot of the page of tab named name and runs
// axe-core on it: no serious or critical violation may be found.
func (j *journey) check(tab context.Context, name string) {
	j.t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		j.t.Fatal(err)
	}
	j.shots++
	if err := os.WriteFile(filepath.Join(j.artifacts, fmt.Sprintf("%02d-%s.png", j.shots, name)), png, 0o644); err != nil {
		j.t.Fatal(err)
	}
	if j.axe == "" {
		return
	}
	violations, err := chromedp.Run(tab, chromedp.Evaluate[[]violation](axeCheck(j.axe), chromedp.EvalAwaitPromise))
	if err != nil {
		j.t.Fatalf("axe on %s: %v", name, err)
	}
	for _, v := range violations {
		j.t.Errorf("axe on %s: %s (%s): %s at %v", name, v.ID, v.Impact, v.Help, v.Nodes)
	}
}

// violation is a serious or critical finding of axe-core.
type violation struct {
	ID, Impact, Help string
	Nodes            []struct{ Target []string }
}

// axeCheck is the script that runs axe-core (its source, axe) on a page
// and lists its serious and critical violations. Runtime.evaluate is not
// subject to the page's CSP, so no page needs to allow it.
func axeCheck(axe string) string {
	return `(async () => {
		if (!window.axe) { ` + axe + ` }
		const r = await axe.run(document, {resultTypes: ["violations"]});
		return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => ({target: n.target.map(String)}))}));
	})()`
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

func (j *journey) fill(kv ...string) {
	j.t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		j.run(chromedp.SetValue(chromedp.CSS(kv[i]), kv[i+1]))
	}
}

func (j *journey) click(selector string) {
	j.t.Helper()
	j.run(chromedp.Click(chromedp.CSS(selector)))
}

func (j *journey) text(selector string) string {
	j.t.Helper()
	s, err := browsertest.WaitFor[string](j.ctx, `document.querySelector(`+jsString(selector)+`)?.textContent`)
	if err != nil {
		j.t.Fatal(err)
	}
	return s
}

// TestAccountPagesJourney is a newcomer in headless Chromium on the hosted
// account pages, keyboard-free but form by form: sign up, confirm with the
// emailed code, enrol an authenticator app from the secret on the page,
// sign out, sign in with the second factor, add a passkey (the virtual
// authenticator), sign in with the passkey alone, reset the password,
// sign in with a recovery code, and end a session of another device.
// Every page is screenshotted and checked with axe-core.
func TestAccountPagesJourney(t *testing.T) {
	browser := browsertest.Start(t)
	s := startServer(t)
	ctx, closeTab := chromedp.NewContext(browser)
	defer closeTab()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	j := newJourney(t, ctx)
	const email, pw, newPW = "newcomer@example.com", "correct horse battery", "a brand new passphrase"

	j.run(chromedp.EmulateViewport(900, 900), chromedp.Navigate(s.origin+"/account/signup"))
	j.page("signup", "/account/signup", "#email")
	if _, err := browsertest.AddVirtualAuthenticator(ctx); err != nil {
		t.Fatal(err)
	}
	j.fill("#email", email, "#password", pw)
	j.click("#submit")
	j.page("confirm", "/account/signup", "input#code")
	j.fill("#code", j.inboxCode(s.origin, email))
	j.click("#submit")
	j.page("settings", "/account/settings", "#mfa-status")

	// An authenticator app, from the secret shown as text.
	j.click("#enrol-totp")
	j.page("totp", "/account/settings/totp", "#totp-secret")
	secret := strings.ReplaceAll(j.text("#totp-secret"), " ", "")
	j.waitFor("the QR code image", `document.getElementById("totp-qr").complete && document.getElementById("totp-qr").naturalWidth >= 256`)
	now := time.Now()
	code, err := totp.GenerateCode(secret, now)
	if err != nil {
		t.Fatalf("the secret on the page %q: %v", secret, err)
	}
	j.fill("#code", code)
	j.click("#submit")
	j.page("recovery-codes", "/account/settings/totp/verify", "#recovery-codes")
	codes := regexp.MustCompile(`[a-z0-9]{5}-[a-z0-9]{5}`).FindAllString(j.text("#recovery-codes"), -1)
	if len(codes) != 10 {
		t.Fatalf("recovery codes shown: %q", codes)
	}
	j.click("#continue")
	j.waitFor("settings", `location.pathname === "/account/settings" && document.querySelector("#mfa-status")?.textContent.includes("is on")`)

	// Sign out, and in again with the password and the app (the next
	// time step: the one used to enrol is spent).
	j.click("#logout")
	j.page("login", "/account/login", "#passkey-button")
	j.fill("#email", email, "#password", pw)
	j.click("#submit")
	j.page("second-factor", "/account/login", "#totp-code")
	code, _ = totp.GenerateCode(secret, now.Add(30*time.Second))
	j.fill("#totp-code", code)
	j.click("#submit-totp")
	j.waitFor("settings", `location.pathname === "/account/settings" && document.querySelector("#mfa-status") !== null`)

	// A passkey, then a sign-in with it alone.
	j.waitFor("the passkey button", `document.querySelector("[data-passkey]")?.hidden === false`)
	j.click("#passkey-button")
	j.page("passkey-added", "/account/settings", "#passkeys li")
	j.click("#logout")
	j.waitFor("the login page", `location.pathname === "/account/login" && document.querySelector("[data-passkey]")?.hidden === false`)
	j.click("#passkey-button")
	j.waitFor("settings after the passkey", `location.pathname === "/account/settings" && document.querySelector("#passkeys li") !== null`)

	// Password recovery: every session ends, then a sign-in with a
	// recovery code as the second factor.
	j.click("#logout")
	j.waitFor("the login page", `location.pathname === "/account/login" && document.querySelector("#email") !== null`)
	j.run(chromedp.Navigate(s.origin + "/account/recovery"))
	j.page("recovery", "/account/recovery", "#email")
	j.fill("#email", email)
	j.click("#submit")
	j.page("reset", "/account/recovery", "input#code")
	j.fill("#code", j.inboxCode(s.origin, email), "#password", newPW)
	j.click("#submit")
	j.waitFor("the login page after the reset", `location.search.includes("done=password_reset")`)
	j.fill("#email", email, "#password", newPW)
	j.click("#submit")
	j.waitFor("the second-factor page", `location.pathname === "/account/login" && document.querySelector("#recovery-code") !== null`)
	j.fill("#recovery-code", codes[0])
	j.click("form:has(#recovery-code) button")
	j.waitFor("settings", `location.pathname === "/account/settings" && document.querySelector("#mfa-status") !== null`)

	// Another device signs in (through the API, with a recovery code);
	// the browser ends its session.
	other := apiLogin(t, s, email, newPW, codes[1])
	j.run(chromedp.Navigate(s.origin + "/account/settings"))
	j.page("sessions", "/account/settings", `li[data-session]:not(:has(em)) button`)
	j.click(`li[data-session]:not(:has(em)) button`)
	j.waitFor("the session ended", `location.search.includes("done=session_ended")`)
	if status := apiMe(t, s, other); status != http.StatusUnauthorized {
		t.Errorf("the ended session's ID token still works: %d", status)
	}

	// An app sends the signed-in browser to the login page: one click on
	// "Continue as", no password, and the app's backend exchanges the
	// code for tokens of the user.
	returnTo := s.origin + AppCallback + "?state=journey"
	j.run(chromedp.Navigate(s.origin + "/account/login?return_to=" + url.QueryEscape(returnTo)))
	j.page("continue", "/account/login", "#continue-sso")
	j.click("#continue-sso")
	code, err = browsertest.WaitFor[string](ctx, `location.pathname === `+jsString(AppCallback)+` && new URLSearchParams(location.search).get("code")`)
	if err != nil {
		t.Fatalf("waiting for the app's callback: %v", err)
	}
	var tokens struct{ IDToken string }
	post(t, s, "/auth/exchange", map[string]string{"code": code, "returnUrl": returnTo}, &tokens)
	if status := apiMe(t, s, tokens.IDToken); status != http.StatusOK {
		t.Errorf("the app's ID token from single sign-on: %d", status)
	}
}

// TestAxeFindsViolations proves the journey's accessibility check can
// fail: on a page with an unlabelled input and no language, axe-core
// reports serious or critical violations.
func TestAxeFindsViolations(t *testing.T) {
	axe := loadAxe(t)
	if axe == "" {
		t.Skip("axe-core not found")
	}
	browser := browsertest.Start(t)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Bad</title></head><body><main><form><input type="text" name="code"><button type="submit"></button></form></main></body></html>`)
	}))
	defer bad.Close()
	ctx, closeTab := chromedp.NewContext(browser)
	defer closeTab()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(bad.URL)); err != nil {
		t.Fatal(err)
	}
	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]violation](axeCheck(axe), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, v := range violations {
		found[v.ID] = true
	}
	for _, want := range []string{"label", "button-name", "html-has-lang"} {
		if !found[want] {
			t.Errorf("axe did not report %s on the bad page: %+v", want, violations)
		}
	}
}

// apiLogin signs in through the JSON API with the password and a
// recovery code, as another device, and returns the ID token.
func apiLogin(t *testing.T, s *server, email, pw, recoveryCode string) string {
	t.Helper()
	var challenge struct{ ProcessingID string }
	post(t, s, "/auth/login", map[string]string{"email": email, "password": pw}, &challenge)
	var tokens struct{ IDToken string }
	post(t, s, "/auth/login/mfa", map[string]string{"processingId": challenge.ProcessingID, "method": "recovery_code", "code": recoveryCode}, &tokens)
	if tokens.IDToken == "" {
		t.Fatal("the API login gave no ID token")
	}
	return tokens.IDToken
}

func post(t *testing.T, s *server, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(s.origin+path, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d", path, res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

func apiMe(t *testing.T, s *server, idToken string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.origin+"/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+idToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
