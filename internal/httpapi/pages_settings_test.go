package httpapi_test

import (
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/ratelimit"
	"github.com/tessera-id/tessera/internal/webauthntest"
)

// The settings the other page tests leave out, as a person does them:
// the phone number (added, changed, removed), passkeys (renamed, removed
// after a step-up that used a recovery code), recovery codes regenerated,
// and two-step verification turned off from a session whose proof is old.

// settingsPage returns the settings page of b.
func settingsPage(t *testing.T, b *browser) string {
	t.Helper()
	res, page := b.get("/account/settings")
	wantStatus(t, res, page, http.StatusOK)
	return page
}

// submit posts the form of page to action with the fields kv.
func submit(t *testing.T, b *browser, page, action string, kv ...string) (*http.Response, string) {
	t.Helper()
	return b.post(action, with(formAt(t, page, action), kv...))
}

// wantLocation checks a 303 to loc.
func wantLocation(t *testing.T, res *http.Response, body, loc string) {
	t.Helper()
	wantStatus(t, res, body, http.StatusSeeOther)
	if got := res.Header.Get("Location"); got != loc {
		t.Fatalf("%s: Location %q, want %q", res.Request.URL.Path, got, loc)
	}
}

func TestPagesPhone(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	const email, pw, phone, newPhone = "phone@example.com", "correct horse battery", "+14155552671", "+14155552672"
	b := signUp(t, e, email, pw)

	// Add: a number that is not one is refused at its field.
	res, page := submit(t, b, settingsPage(t, b), "/account/settings/phone", "phone", "12")
	wantStatus(t, res, page, http.StatusUnprocessableEntity)
	if !strings.Contains(page, `id="phone-error"`) || !strings.Contains(page, "country code") {
		t.Errorf("a bad phone number is not explained at its field:\n%s", page)
	}
	res, page = submit(t, b, settingsPage(t, b), "/account/settings/phone", "phone", phone)
	wantStatus(t, res, page, http.StatusOK)
	res, page = submit(t, b, page, "/account/settings/phone/confirm", "token", e.codeFor(phone))
	wantLocation(t, res, page, "/account/settings?done=phone_added")

	// Change: a token to the number in use, then one to the new number.
	res, page = submit(t, b, settingsPage(t, b), "/account/settings/phone/change")
	wantStatus(t, res, page, http.StatusOK)
	res, page = submit(t, b, page, "/account/settings/key/new", "token", e.codeFor(phone), "new-key", newPhone)
	wantStatus(t, res, page, http.StatusOK)
	res, page = submit(t, b, page, "/account/settings/key/confirm", "token", e.codeFor(newPhone))
	wantLocation(t, res, page, "/account/settings?done=key_changed")
	if page = settingsPage(t, b); !strings.Contains(html.UnescapeString(page), newPhone+" (verified)") {
		t.Fatalf("the settings do not show the new number:\n%s", page)
	}

	// Remove: only with the token texted to it; a wrong one changes
	// nothing.
	res, page = submit(t, b, page, "/account/settings/phone/remove")
	wantStatus(t, res, page, http.StatusOK)
	if !strings.Contains(html.UnescapeString(page), "+14*******72") {
		t.Errorf("the page does not say where the token went:\n%s", page)
	}
	res, page = submit(t, b, page, "/account/settings/phone/remove/confirm", "token", "000000")
	wantStatus(t, res, page, http.StatusUnprocessableEntity)
	if !strings.Contains(page, `id="token-error"`) || !strings.Contains(html.UnescapeString(settingsPage(t, b)), newPhone) {
		t.Fatalf("a wrong token: the error is not at its field, or the number went")
	}
	res, page = submit(t, b, page, "/account/settings/phone/remove/confirm", "token", e.codeFor(newPhone))
	wantLocation(t, res, page, "/account/settings?done=phone_removed")
	if page = settingsPage(t, b); strings.Contains(html.UnescapeString(page), newPhone) || strings.Contains(page, `id="remove-phone"`) {
		t.Error("the number is still shown")
	}
}

// postJSON posts body as the page script does, with the CSRF token of the
// page's passkey box.
func (b *browser) postJSON(path, csrf string, body any) (*http.Response, map[string]any) {
	b.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	res, text := b.do(req)
	var out map[string]any
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		b.t.Fatalf("POST %s: %d %s", path, res.StatusCode, text)
	}
	return res, out
}

var passkeyCSRF = regexp.MustCompile(`data-passkey="enrol" data-csrf="([^"]+)"`)

// addPagePasskey adds a passkey of a on the settings page of b, as the
// page script does, and returns the recovery codes it brought.
func addPagePasskey(t *testing.T, b *browser, a *webauthntest.Authenticator) []string {
	t.Helper()
	csrf := passkeyCSRF.FindStringSubmatch(settingsPage(t, b))[1]
	res, begun := b.postJSON("/account/settings/passkeys/begin", csrf, map[string]any{})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("passkey begin: %d %v", res.StatusCode, begun)
	}
	cred, err := a.Create(rawJSON(t, begun["publicKey"]))
	if err != nil {
		t.Fatalf("the authenticator refused: %v (%v)", err, begun)
	}
	res, done := b.postJSON("/account/settings/passkeys/finish", csrf, map[string]any{"processingId": begun["processingId"], "name": "Laptop", "credential": json.RawMessage(cred)})
	if res.StatusCode != http.StatusOK || done["redirect"] != "/account/settings?done=passkey_added" {
		t.Fatalf("passkey finish: %d %v", res.StatusCode, done)
	}
	var codes []string
	list, _ := done["recoveryCodes"].([]any)
	for _, c := range list {
		codes = append(codes, c.(string))
	}
	return codes
}

// pageStepUp answers the step-up a change sent b to (Location next) with the
// password and then the second factor method with code.
func pageStepUp(t *testing.T, b *browser, pw, method, field, code string) {
	t.Helper()
	_, page := b.get("/account/reauth?next=%2Faccount%2Fsettings")
	res, page := submit(t, b, page, "/account/reauth", "password", pw)
	wantStatus(t, res, page, http.StatusOK)
	form := ""
	for _, f := range regexp.MustCompile(`(?s)<form[^>]*action="/account/login/mfa"[^>]*>.*?</form>`).FindAllString(page, -1) {
		if strings.Contains(f, `name="method" value="`+method+`"`) {
			form = f
		}
	}
	if form == "" {
		t.Fatalf("the step-up offers no %s:\n%s", method, page)
	}
	res, page = submit(t, b, form, "/account/login/mfa", "method", method, field, code)
	wantLocation(t, res, page, "/account/settings")
}

func TestPagesPasskeySettings(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	const email, pw = "keys@example.com", "correct horse battery"
	b := signUp(t, e, email, pw)
	codes := addPagePasskey(t, b, webauthntest.New(passkeyOrigin))
	if len(codes) != 10 {
		t.Fatalf("the first passkey brought %d recovery codes", len(codes))
	}

	page := settingsPage(t, b)
	if !strings.Contains(page, `value="Laptop"`) {
		t.Fatalf("the passkey is not listed:\n%s", page)
	}
	res, body := submit(t, b, page, "/account/settings/passkeys/rename", "name", "")
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	res, body = submit(t, b, page, "/account/settings/passkeys/rename", "name", "Work laptop")
	wantLocation(t, res, body, "/account/settings?done=passkey_renamed")
	page = settingsPage(t, b)
	if !strings.Contains(page, `value="Work laptop"`) {
		t.Fatal("the passkey was not renamed")
	}

	// Removing it needs a session that used it or a recovery code: this
	// one used a password, so the step-up comes first and nothing goes.
	res, body = submit(t, b, page, "/account/settings/passkeys/remove")
	wantLocation(t, res, body, "/account/reauth?next=%2Faccount%2Fsettings")
	if !strings.Contains(settingsPage(t, b), `value="Work laptop"`) {
		t.Fatal("the passkey went without the step-up")
	}
	pageStepUp(t, b, pw, "recovery_code", "recovery-code", codes[0])
	res, body = submit(t, b, settingsPage(t, b), "/account/settings/passkeys/remove")
	wantLocation(t, res, body, "/account/settings?done=passkey_removed")
	if page = settingsPage(t, b); strings.Contains(page, `id="passkeys"`) {
		t.Error("the passkey is still listed")
	}
}

// enrolPageTOTP turns the authenticator app on in the settings of b and
// returns its secret and the recovery codes.
func enrolPageTOTP(t *testing.T, e *env, b *browser) (string, []string) {
	t.Helper()
	res, page := submit(t, b, settingsPage(t, b), "/account/settings/totp")
	wantStatus(t, res, page, http.StatusOK)
	secret := strings.ReplaceAll(regexp.MustCompile(`id="totp-secret" class="secret">([A-Z2-7 ]+)<`).FindStringSubmatch(page)[1], " ", "")
	code, _ := totp.GenerateCode(secret, e.clock.Now())
	res, page = submit(t, b, page, "/account/settings/totp/verify", "code", code)
	wantStatus(t, res, page, http.StatusOK)
	var codes []string
	for _, m := range regexp.MustCompile(`<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>`).FindAllStringSubmatch(page, -1) {
		codes = append(codes, m[1])
	}
	return secret, codes
}

// pageMFALogin signs email in on the pages with the password and a recovery
// code and answers the status of the second step.
func pageMFALogin(t *testing.T, e *env, email, pw, recoveryCode string) int {
	t.Helper()
	b := newBrowser(t, e)
	_, page := b.get("/account/login")
	res, page := b.post("/account/login", with(formOf(t, page), "email", email, "password", pw))
	wantStatus(t, res, page, http.StatusOK)
	res, _ = b.post("/account/login/mfa", with(formAt(t, page, "/account/login/mfa"), "method", "recovery_code", "recovery-code", recoveryCode))
	return res.StatusCode
}

func TestPagesRecoveryCodesAndMFAOffStepUp(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	const email, pw = "codes@example.com", "correct horse battery"
	b := signUp(t, e, email, pw)
	secret, old := enrolPageTOTP(t, e, b)

	// Regenerate: the app's code is asked; a wrong one changes nothing.
	res, page := submit(t, b, settingsPage(t, b), "/account/settings/recovery-codes", "regen-code", "000000")
	wantStatus(t, res, page, http.StatusUnprocessableEntity)
	if !strings.Contains(page, `id="regen-code-error"`) {
		t.Errorf("a wrong code is not at its field:\n%s", page)
	}
	e.clock.Advance(30 * time.Second)
	code, _ := totp.GenerateCode(secret, e.clock.Now())
	res, page = submit(t, b, settingsPage(t, b), "/account/settings/recovery-codes", "regen-code", code)
	wantStatus(t, res, page, http.StatusOK)
	fresh := regexp.MustCompile(`<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>`).FindAllStringSubmatch(page, -1)
	if len(fresh) != 10 || fresh[0][1] == old[0] {
		t.Fatalf("the regenerated codes page: %d codes", len(fresh))
	}
	if status := pageMFALogin(t, e, email, pw, old[1]); status != http.StatusUnprocessableEntity {
		t.Errorf("an old recovery code after regenerating: %d", status)
	}
	if status := pageMFALogin(t, e, email, pw, fresh[1][1]); status != http.StatusSeeOther {
		t.Errorf("a new recovery code: %d", status)
	}

	// MFA off from a session whose proof is old: the step-up (password
	// and the app) first, then the emailed token.
	e.clock.Advance(11 * time.Minute)
	res, page = submit(t, b, settingsPage(t, b), "/account/settings/mfa-off")
	wantLocation(t, res, page, "/account/reauth?next=%2Faccount%2Fsettings")
	code, _ = totp.GenerateCode(secret, e.clock.Now())
	pageStepUp(t, b, pw, "totp", "totp-code", code)
	res, page = submit(t, b, settingsPage(t, b), "/account/settings/mfa-off")
	wantStatus(t, res, page, http.StatusOK)
	res, page = submit(t, b, page, "/account/settings/mfa-off/confirm", "token", e.codeFor(email))
	wantLocation(t, res, page, "/account/settings?done=mfa_off")
	if !strings.Contains(settingsPage(t, b), "Two-step verification is off.") {
		t.Error("MFA is still on")
	}
}

// TestPagesLanguageAndLimit: field errors in the page's language, and a
// post over the per-IP limit answered with a page (429, Retry-After), not
// the API's JSON.
func TestPagesLanguageAndLimit(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	b := newBrowser(t, e)
	b.lang = "de-DE,de;q=0.9"
	_, page := b.get("/account/signup")
	for _, c := range []struct{ email, pw, field, want string }{
		{"de@example.com", "kurz", "password", "Bitte mindestens 8 Zeichen eingeben."},
		{"not an address", "correct horse battery", "email", "Geben Sie eine E-Mail-Adresse ein"},
	} {
		res, body := b.post("/account/signup", with(formOf(t, page), "email", c.email, "password", c.pw))
		wantStatus(t, res, body, http.StatusUnprocessableEntity)
		if !strings.Contains(body, `id="`+c.field+`-error">`+html.EscapeString(c.want)) {
			t.Errorf("%s: the error is not in German at its field:\n%s", c.field, body)
		}
	}
	res, body := b.post("/account/signup", with(formOf(t, page), "email", "de@example.com", "password", "correct horse battery"))
	wantStatus(t, res, body, http.StatusOK)
	res, body = b.post("/account/signup/confirm", with(formOf(t, body), "email", "de@example.com", "code", "000000"))
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	if !strings.Contains(body, `id="code-error">Der Code`) {
		t.Errorf("a wrong code is not explained in German at its field:\n%s", body)
	}
}

func TestPagesRateLimitPage(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.ReturnURLs = []string{appReturn}
		o.Limits.IP = ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 3}
	})
	b := newBrowser(t, e)
	b.lang = "de"
	_, page := b.get("/account/login")
	form := with(formOf(t, page), "email", "someone@example.com", "password", "wrong password")
	for range 3 {
		res, body := b.post("/account/login", form)
		wantStatus(t, res, body, http.StatusUnprocessableEntity)
	}
	res, body := b.post("/account/login", form)
	wantStatus(t, res, body, http.StatusTooManyRequests)
	if res.Header.Get("Retry-After") == "" || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `<html lang="de">`) || !strings.Contains(body, `role="alert"`) {
		t.Fatalf("over the limit: Retry-After %q, %s\n%s", res.Header.Get("Retry-After"), res.Header.Get("Content-Type"), body)
	}
	// The page script gets JSON.
	res2, out := b.postJSON("/account/passkeys/login/begin", "x", map[string]any{})
	if res2.StatusCode != http.StatusTooManyRequests || out["code"] != "too_many" {
		t.Errorf("the script over the limit: %d %v", res2.StatusCode, out)
	}
	e.clock.Advance(time.Minute)
	res, body = b.post("/account/login", form)
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
}
