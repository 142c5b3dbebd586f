package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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

// codeFor returns the newest 6-digit code sent to `to`, as a person
// reading their inbox would. It is the one place the journey reads
// messages; it reads the log sender's output until /dev/inbox exists.
func codeFor(t *testing.T, s *server, to string) string {
	t.Helper()
	code := ""
	for _, line := range strings.Split(s.delivered(t), "\n") {
		var m struct{ To, Body string }
		if json.Unmarshal([]byte(line), &m) == nil && m.To == to {
			if c := regexp.MustCompile(`\b\d{6}\b`).FindString(m.Body); c != "" {
				code = c
			}
		}
	}
	if code == "" {
		t.Fatalf("no code was sent to %s", to)
	}
	return code
}

// journey drives one tab through the pages: each step waits for the page
// it leads to, then saves a screenshot and checks it with axe-core.
type journey struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	axe       string // axe.min.js, or "" when not checked
	shots     int
}

func newJourney(t *testing.T, ctx context.Context) *journey {
	j := &journey{t: t, ctx: ctx, artifacts: os.Getenv(ArtifactsEnv)}
	if j.artifacts == "" {
		j.artifacts = t.TempDir()
	}
	if err := os.MkdirAll(j.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", j.artifacts)
	path := os.Getenv(AxeEnv)
	if path == "" {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, ".cache/tessera-axe/node_modules/axe-core/axe.min.js")
		}
	}
	src, err := os.ReadFile(path)
	switch {
	case err == nil:
		j.axe = string(src)
	case os.Getenv(browsertest.RequireEnv) != "":
		t.Fatalf("%s is set, so the pages must be checked with axe-core: %v (scripts/test installs it; set %s)", browsertest.RequireEnv, err, AxeEnv)
	default:
		t.Logf("axe-core not found (%v): the pages are not checked for accessibility", err)
	}
	return j
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
	png, err := chromedp.Run(j.ctx, chromedp.FullScreenshot(100))
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
	type violation struct {
		ID, Impact, Help string
		Nodes            []struct{ Target []string }
	}
	check := `(async () => {
		if (!window.axe) { ` + j.axe + ` }
		const r = await axe.run(document, {resultTypes: ["violations"]});
		return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => ({target: n.target.map(String)}))}));
	})()`
	violations, err := chromedp.Run(j.ctx, chromedp.Evaluate[[]violation](check, chromedp.EvalAwaitPromise))
	if err != nil {
		j.t.Fatalf("axe on %s: %v", name, err)
	}
	for _, v := range violations {
		j.t.Errorf("axe on %s: %s (%s): %s at %v", name, v.ID, v.Impact, v.Help, v.Nodes)
	}
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
	j.fill("#code", codeFor(t, s, email))
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
	j.fill("#code", codeFor(t, s, email), "#password", newPW)
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
