package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/account"
	"github.com/tessera-id/tessera/internal/i18n"
)

// Routes registers the pages with handle, which takes a "METHOD /path"
// pattern as http.ServeMux.HandleFunc does.
func (p *Pages) Routes(handle func(pattern string, h http.HandlerFunc)) {
	get := func(path string, h http.HandlerFunc) { handle("GET "+Prefix+path, p.wrap(h)) }
	// Posts are limited per IP before anything else runs, like the JSON
	// API's public endpoints.
	post := func(path string, h http.HandlerFunc) { handle("POST "+Prefix+path, p.limit(p.wrap(h))) }

	handle("GET "+Prefix+"/static/account.js", serveFile("text/javascript; charset=utf-8", pageScript))
	handle("GET "+Prefix+"/static/account.css", serveFile("text/css; charset=utf-8", pageStyle))

	get("/{$}", p.handleHome)
	get("/login", p.handleLoginPage)
	post("/login", p.handleLogin)
	post("/login/mfa", p.handleLoginMFA)
	post("/login/sms", p.handleLoginSMS)
	post("/login/continue", p.handleContinue)
	get("/signup", p.handleSignupPage)
	post("/signup", p.handleSignup)
	post("/signup/confirm", p.handleSignupConfirm)
	get("/recovery", p.handleRecoveryPage)
	post("/recovery", p.handleRecovery)
	post("/recovery/reset", p.handleRecoveryReset)
	post("/key-recovery", p.handleKeyRecovery)
	post("/key-recovery/new-key", p.handleKeyRecoveryNewKey)
	post("/key-recovery/finish", p.handleKeyRecoveryFinish)
	post("/logout", p.handleLogout)
	get("/reauth", p.handleReauthPage)
	post("/reauth", p.handleReauth)
	post("/passkeys/login/begin", p.handlePasskeyLoginBegin)
	post("/passkeys/login/finish", p.handlePasskeyLoginFinish)
	post("/passkeys/factor/begin", p.handlePasskeyFactorBegin)
	post("/passkeys/factor/finish", p.handlePasskeyFactorFinish)
	p.settingsRoutes(get, post)
}

var started = time.Now()

// limit refuses a post over the per-IP limit with a page in the
// browser's language (the page script gets JSON), 429 with Retry-After.
func (p *Pages) limit(h http.HandlerFunc) http.HandlerFunc {
	if p.Allow == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		err := p.Allow(r)
		if err == nil {
			h(w, r)
			return
		}
		status := http.StatusServiceUnavailable
		var te *tessera.Error
		if errors.As(err, &te) && te.Code == tessera.ETOOMANY {
			status = http.StatusTooManyRequests
			if te.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(te.RetryAfter))
			}
		} else {
			p.logError(r, "rate limit", err)
		}
		// No state (CSRF cookie, session) is looked at: the refusal
		// comes before anything else runs.
		v := &view{Lang: i18n.Negotiate("", r.Header.Get("Accept-Language")), Brand: p.Brand, Title: "page.error.title"}
		v.Error = v.T(map[int]string{http.StatusTooManyRequests: "page.error.too_many", http.StatusServiceUnavailable: "page.error.internal"}[status])
		if isJSON(r) {
			writeJSON(w, status, map[string]string{"error": v.Error, "code": tessera.ErrorCode(err)})
			return
		}
		p.render(w, r, status, "message", v)
	}
}

func serveFile(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, "", started, bytes.NewReader(body))
	}
}

// ---- pieces of pages ----

// field is one input of a form.
type field struct {
	Name, Type, Label, Auto, Mode, Value, Err, Hint string
	Optional                                        bool
}

// Field returns the input name of the page's language, with what the
// user typed and its error.
func (v *view) Field(name, typ, label, auto, mode string) field {
	return field{Name: name, Type: typ, Label: v.T(label), Auto: auto, Mode: mode, Value: v.Values[name], Err: v.Errors[name]}
}

type hidden struct{ Name, Value string }

type link struct{ Href, Text string }

// stepData is the page of one form: most steps of the flows are one.
type stepData struct {
	Intro   []string
	Action  string
	Hidden  []hidden
	Fields  []field
	Submit  string // a catalogue key
	Passkey string // login or factor: a passkey button too
	Links   []link
}

func (p *Pages) step(w http.ResponseWriter, r *http.Request, status int, v *view, d *stepData) {
	for i := range d.Fields {
		f := &d.Fields[i]
		f.Err, f.Value = v.Errors[f.Name], v.Values[f.Name]
		if f.Type == "password" {
			f.Value = ""
		}
	}
	v.Data = d
	p.render(w, r, status, "step", v)
}

func statusOf(v *view) int {
	if v.Error != "" || len(v.Errors) > 0 {
		return http.StatusUnprocessableEntity
	}
	return http.StatusOK
}

// withReturn adds the page's return URL to a link within the pages.
func withReturn(path, returnTo string) string {
	if returnTo == "" {
		return path
	}
	return path + "?return_to=" + url.QueryEscape(returnTo)
}

// ---- signing in and out ----

// handleHome handles GET /account/.
func (p *Pages) handleHome(w http.ResponseWriter, r *http.Request) {
	if stateOf(r).user != nil {
		redirect(w, r, Prefix+"/settings")
		return
	}
	redirect(w, r, Prefix+"/login")
}

// badReturn answers a request whose return_to is not allowed: it is
// never followed, nor is a login started that would end there.
func (p *Pages) badReturn(w http.ResponseWriter, r *http.Request) bool {
	rt := r.FormValue("return_to")
	if rt == "" {
		return false
	}
	if _, ok := p.returnURL(rt); ok {
		return false
	}
	v := p.newView(r, "page.error.title", nil, "")
	v.Error = v.T("page.error.return_to")
	p.render(w, r, http.StatusBadRequest, "message", v)
	return true
}

func (p *Pages) loginStep(w http.ResponseWriter, r *http.Request, v *view) {
	p.step(w, r, statusOf(v), v, &stepData{
		Action: Prefix + "/login",
		Fields: []field{
			{Name: "email", Type: "email", Label: v.T("page.field.email"), Auto: "username webauthn"},
			{Name: "password", Type: "password", Label: v.T("page.field.password"), Auto: "current-password"},
		},
		Submit: "page.login.submit", Passkey: "login",
		Links: []link{
			{withReturn(Prefix+"/recovery", v.ReturnTo), v.T("page.login.forgot")},
			{withReturn(Prefix+"/signup", v.ReturnTo), v.T("page.login.signup")},
		},
	})
}

// handleLoginPage handles GET /account/login[?return_to=].
func (p *Pages) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	if p.badReturn(w, r) {
		return
	}
	v := p.newView(r, "page.login.title", nil, "")
	if st := stateOf(r); st.user != nil && v.ReturnTo != "" && p.Accounts.MayContinue(st.user, st.sess) {
		p.continueStep(w, r, v)
		return
	}
	p.loginStep(w, r, v)
}

// continueData is the single sign-on page's.
type continueData struct{ Email, App string }

// continueStep asks a signed-in browser whether to continue to the app
// as the signed-in user. It is a page with a form, not a redirect: a
// cross-site link cannot sign anyone in to an app without a click on
// Tessera's own page (which no other site may frame), and the person sees
// which account the app gets.
func (p *Pages) continueStep(w http.ResponseWriter, r *http.Request, v *view) {
	v.Title = "page.continue.title"
	v.User = stateOf(r).user
	app := v.ReturnTo
	if u, err := url.Parse(v.ReturnTo); err == nil {
		app = u.Host
	}
	v.Data = &continueData{Email: v.User.Email, App: app}
	p.render(w, r, statusOf(v), "continue", v)
}

// handleContinue handles POST /account/login/continue: single sign-on.
// The browser's session, if it still satisfies a login, gives the app a
// session of its own through a handoff code; otherwise the login page.
func (p *Pages) handleContinue(w http.ResponseWriter, r *http.Request) {
	if p.badReturn(w, r) {
		return
	}
	st := stateOf(r)
	rt, ok := p.returnURL(r.PostFormValue("return_to"))
	if !ok || st.user == nil {
		redirect(w, r, withReturn(Prefix+"/login", rt))
		return
	}
	sess, tokens, err := p.Accounts.ContinueSession(r.Context(), st.sess.ID, p.Meta(r))
	if err == nil {
		var target string
		if target, err = p.handoffTarget(r, sess, tokens, rt); err == nil {
			redirect(w, r, target)
			return
		}
	}
	v := p.newView(r, "page.login.title", nil, "")
	if code := tessera.ErrorCode(err); code != tessera.EREAUTH && code != tessera.EUNAUTHORIZED {
		p.fail(r, v, err, nil)
	}
	p.loginStep(w, r, v)
}

// handleLogin handles POST /account/login: the password; then either the
// user is signed in or the second-factor step follows.
func (p *Pages) handleLogin(w http.ResponseWriter, r *http.Request) {
	if p.badReturn(w, r) {
		return
	}
	email := r.PostFormValue("email")
	res, err := p.Accounts.Login(r.Context(), email, r.PostFormValue("password"), p.Meta(r))
	if err != nil {
		v := p.newView(r, "page.login.title", nil, "")
		v.Values["email"] = email
		p.fail(r, v, err, map[string]string{"email": "email", "password": "password"})
		p.loginStep(w, r, v)
		return
	}
	if res.Challenge != nil {
		p.mfaStep(w, r, res.Challenge.ProcessingID, res.Challenge.Methods, "", nil)
		return
	}
	p.finishLogin(w, r, res.Tokens)
}

// mfaData is the second-factor page's.
type mfaData struct {
	Methods []string
	SMSSent string // where the texted code went
	Next    string // a step-up: where to go afterwards
}

func (p *Pages) mfaStep(w http.ResponseWriter, r *http.Request, flow string, methods []string, next string, prepare func(v *view, d *mfaData)) {
	title := "page.mfa.title"
	if next != "" {
		title = "page.reauth.title"
	}
	v := p.newView(r, title, stateOf(r).user, flow)
	// Presentation only: the strongest and quickest first, recovery
	// codes last. Which methods there are is the policy's answer.
	order := map[string]int{account.FactorPasskey: 1, account.FactorTOTP: 2, account.FactorSMS: 3, account.FactorRecovery: 4}
	methods = slices.Clone(methods)
	slices.SortStableFunc(methods, func(a, b string) int { return order[a] - order[b] })
	d := &mfaData{Methods: methods, Next: next}
	if prepare != nil {
		prepare(v, d)
	}
	v.Data = d
	p.render(w, r, statusOf(v), "mfa", v)
}

// methodsField maps the method a second-factor form names to its code
// field.
var methodsField = map[string]string{account.FactorTOTP: "totp-code", account.FactorSMS: "sms-code", account.FactorRecovery: "recovery-code"}

// handleLoginMFA handles POST /account/login/mfa: the second factor of a
// login, or of a step-up of the signed-in session.
func (p *Pages) handleLoginMFA(w http.ResponseWriter, r *http.Request) {
	flow, method := r.PostFormValue("processingId"), r.PostFormValue("method")
	codeField := methodsField[method]
	tokens, err := p.Accounts.CompleteLogin(r.Context(), flow, method, r.PostFormValue(codeField), p.Meta(r))
	if err != nil {
		p.mfaFailed(w, r, flow, method, err)
		return
	}
	p.afterSecondFactor(w, r, tokens, r.PostFormValue("next"))
}

// mfaFailed shows the second-factor step again with err, or the login
// page when the flow is gone.
func (p *Pages) mfaFailed(w http.ResponseWriter, r *http.Request, flow, method string, err error) {
	if tessera.ErrorCode(err) == tessera.ENOTFOUND || tessera.ErrorCode(err) == tessera.EINVALID && flow == "" {
		v := p.newView(r, "page.login.title", nil, "")
		p.fail(r, v, err, nil)
		p.loginStep(w, r, v)
		return
	}
	methods := p.methodsOf(r, flow)
	p.mfaStep(w, r, flow, methods, nextOf(r), func(v *view, d *mfaData) {
		p.fail(r, v, err, map[string]string{"code": methodsField[method], "x-otp": methodsField[method]})
		if method == account.FactorSMS {
			d.SMSSent = "…"
		}
	})
}

// methodsOf lists the second factors the flow's user may use. The page
// keeps no state: the challenge is asked again by beginning nothing, so
// the list comes from the form (as the flow offered it first).
func (p *Pages) methodsOf(r *http.Request, flow string) []string {
	if m := r.PostForm["methods"]; len(m) > 0 {
		return m
	}
	return []string{account.FactorTOTP, account.FactorSMS, account.FactorPasskey, account.FactorRecovery}
}

// afterSecondFactor signs in (a login: tokens carry a refresh token) or
// goes on after a step-up (the same session, a fresh proof).
func (p *Pages) afterSecondFactor(w http.ResponseWriter, r *http.Request, tokens *account.Tokens, next string) {
	if tokens.RefreshToken == "" {
		redirect(w, r, localNext(next))
		return
	}
	p.finishLogin(w, r, tokens)
}

// handleLoginSMS handles POST /account/login/sms: text the code of the
// second-factor step.
func (p *Pages) handleLoginSMS(w http.ResponseWriter, r *http.Request) {
	flow := r.PostFormValue("processingId")
	sent, err := p.Accounts.SendLoginCode(r.Context(), flow, account.DestinationPhone)
	if err != nil {
		p.mfaFailed(w, r, flow, "", err)
		return
	}
	p.mfaStep(w, r, flow, p.methodsOf(r, flow), nextOf(r), func(v *view, d *mfaData) { d.SMSSent = sent.Destination })
}

// loginTarget signs the browser in to the session of tokens and returns
// where it goes next: the app (an allowed return URL, with a one-time
// code its backend exchanges for the tokens) or the settings.
func (p *Pages) loginTarget(r *http.Request, w http.ResponseWriter, tokens *account.Tokens, returnTo string) (string, error) {
	_, sess, err := p.Accounts.Authenticate(r.Context(), tokens.IDToken)
	if err != nil {
		return "", err
	}
	p.signIn(w, r, sess)
	rt, ok := p.returnURL(returnTo)
	if !ok {
		return Prefix + "/settings", nil
	}
	return p.handoffTarget(r, sess, tokens, rt)
}

// handoffTarget returns the allowed return URL rt with a one-time code
// that fetches the tokens of sess.
func (p *Pages) handoffTarget(r *http.Request, sess *tessera.Session, tokens *account.Tokens, rt string) (string, error) {
	code, err := p.Accounts.BeginHandoff(r.Context(), sess, tokens.RefreshToken, rt)
	if err != nil {
		return "", err
	}
	// Appended, the app's own query kept as it was: the app exchanges the
	// code with the return_to it sent.
	sep := "?"
	if strings.Contains(rt, "?") {
		sep = "&"
	}
	return rt + sep + "code=" + url.QueryEscape(code), nil
}

func (p *Pages) finishLogin(w http.ResponseWriter, r *http.Request, tokens *account.Tokens) {
	target, err := p.loginTarget(r, w, tokens, r.PostFormValue("return_to"))
	if err != nil {
		v := p.newView(r, "page.login.title", nil, "")
		p.fail(r, v, err, nil)
		p.loginStep(w, r, v)
		return
	}
	redirect(w, r, target)
}

// nextOf returns where a step-up's form goes on to, or "" for a login.
func nextOf(r *http.Request) string {
	if r.PostFormValue("next") == "" {
		return ""
	}
	return localNext(r.PostFormValue("next"))
}

// localNext returns next if it is a page of the account pages, else the
// settings: a step-up never leaves the pages.
func localNext(next string) string {
	if strings.HasPrefix(next, Prefix+"/") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		if u, err := url.Parse(next); err == nil && u.Host == "" && u.Scheme == "" {
			return next
		}
	}
	return Prefix + "/settings"
}

// handleLogout handles POST /account/logout.
func (p *Pages) handleLogout(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r)
	if st.user != nil {
		if err := p.Accounts.Logout(r.Context(), st.user, st.sess, p.Meta(r)); err != nil {
			p.logError(r, "logout", err)
		}
	}
	setCookie(w, r, sessionCookie, "", time.Time{})
	// "Use another account" on the single sign-on page signs out and
	// logs in again for the same app.
	target := Prefix + "/login?done=logged_out"
	if rt, ok := p.returnURL(r.PostFormValue("return_to")); ok {
		target += "&return_to=" + url.QueryEscape(rt)
	}
	redirect(w, r, target)
}

// ---- step-up ----

func (p *Pages) reauthStep(w http.ResponseWriter, r *http.Request, v *view, next string) {
	p.step(w, r, statusOf(v), v, &stepData{
		Intro:  []string{v.T("page.reauth.intro")},
		Action: Prefix + "/reauth", Hidden: []hidden{{"next", next}},
		Fields: []field{{Name: "password", Type: "password", Label: v.T("page.field.password"), Auto: "current-password"}},
		Submit: "page.reauth.submit",
	})
}

// handleReauthPage handles GET /account/reauth?next=: the step-up a
// privileged change asks for.
func (p *Pages) handleReauthPage(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r)
	if st.user == nil {
		redirect(w, r, Prefix+"/login")
		return
	}
	p.reauthStep(w, r, p.newView(r, "page.reauth.title", st.user, ""), localNext(r.URL.Query().Get("next")))
}

// handleReauth handles POST /account/reauth.
func (p *Pages) handleReauth(w http.ResponseWriter, r *http.Request) {
	st := stateOf(r)
	if st.user == nil {
		redirect(w, r, Prefix+"/login")
		return
	}
	next := localNext(r.PostFormValue("next"))
	res, err := p.Accounts.Reauthenticate(r.Context(), st.user, st.sess, r.PostFormValue("password"), p.Meta(r))
	if err != nil {
		v := p.newView(r, "page.reauth.title", st.user, "")
		p.fail(r, v, err, map[string]string{"password": "password"})
		p.reauthStep(w, r, v, next)
		return
	}
	if res.Challenge != nil {
		p.mfaStep(w, r, res.Challenge.ProcessingID, res.Challenge.Methods, next, nil)
		return
	}
	redirect(w, r, next)
}

// reauthURL is the step-up page that returns to next.
func reauthURL(next string) string {
	return Prefix + "/reauth?next=" + url.QueryEscape(next)
}

// ---- sign-up ----

func (p *Pages) signupStep(w http.ResponseWriter, r *http.Request, v *view) {
	p.step(w, r, statusOf(v), v, &stepData{
		Action: Prefix + "/signup",
		Fields: []field{
			{Name: "email", Type: "email", Label: v.T("page.field.email"), Auto: "email"},
			{Name: "password", Type: "password", Label: v.T("page.field.new_password"), Auto: "new-password", Hint: v.T("page.hint.password")},
		},
		Submit: "page.signup.submit",
		Links:  []link{{withReturn(Prefix+"/login", v.ReturnTo), v.T("page.signup.have_account")}},
	})
}

// handleSignupPage handles GET /account/signup.
func (p *Pages) handleSignupPage(w http.ResponseWriter, r *http.Request) {
	if p.badReturn(w, r) {
		return
	}
	p.signupStep(w, r, p.newView(r, "page.signup.title", nil, ""))
}

// handleSignup handles POST /account/signup: the address gets a code.
func (p *Pages) handleSignup(w http.ResponseWriter, r *http.Request) {
	if p.badReturn(w, r) {
		return
	}
	email := r.PostFormValue("email")
	flow, err := p.Accounts.Register(r.Context(), email, r.PostFormValue("password"), p.Meta(r))
	if err != nil {
		v := p.newView(r, "page.signup.title", nil, "")
		v.Values["email"] = email
		p.fail(r, v, err, map[string]string{"email": "email", "password": "password"})
		p.signupStep(w, r, v)
		return
	}
	p.confirmStep(w, r, p.newView(r, "page.confirm.title", nil, flow), email)
}

func (p *Pages) confirmStep(w http.ResponseWriter, r *http.Request, v *view, email string) {
	p.step(w, r, statusOf(v), v, &stepData{
		Intro:  []string{v.T("page.confirm.intro", "email", email)},
		Action: Prefix + "/signup/confirm", Hidden: []hidden{{"email", email}},
		Fields: []field{{Name: "code", Type: "text", Label: v.T("page.field.email_code"), Auto: "one-time-code", Mode: "numeric"}},
		Submit: "page.confirm.submit",
	})
}

// handleSignupConfirm handles POST /account/signup/confirm: the emailed
// code creates the account and signs in.
func (p *Pages) handleSignupConfirm(w http.ResponseWriter, r *http.Request) {
	email, flow := r.PostFormValue("email"), r.PostFormValue("processingId")
	tokens, _, err := p.Accounts.ConfirmRegistration(r.Context(), email, r.PostFormValue("code"), flow, p.Meta(r))
	if err != nil {
		v := p.newView(r, "page.confirm.title", nil, flow)
		p.fail(r, v, err, map[string]string{"code": "code"})
		p.confirmStep(w, r, v, email)
		return
	}
	p.finishLogin(w, r, tokens)
}

// ---- password recovery ----

func (p *Pages) recoveryStep(w http.ResponseWriter, r *http.Request, v *view) {
	p.step(w, r, statusOf(v), v, &stepData{
		Intro:  []string{v.T("page.recovery.intro")},
		Action: Prefix + "/recovery",
		Fields: []field{{Name: "email", Type: "email", Label: v.T("page.field.email"), Auto: "email"}},
		Submit: "page.recovery.submit",
		Links:  []link{{withReturn(Prefix+"/login", v.ReturnTo), v.T("page.login.title")}},
	})
}

// handleRecoveryPage handles GET /account/recovery.
func (p *Pages) handleRecoveryPage(w http.ResponseWriter, r *http.Request) {
	p.recoveryStep(w, r, p.newView(r, "page.recovery.title", nil, ""))
}

// handleRecovery handles POST /account/recovery: a reset code goes to the
// account's email (the answer is the same for an unknown address).
func (p *Pages) handleRecovery(w http.ResponseWriter, r *http.Request) {
	email := r.PostFormValue("email")
	sent, err := p.Accounts.SendPasswordRecovery(r.Context(), email, account.DestinationEmail, "", p.Meta(r))
	if err != nil {
		v := p.newView(r, "page.recovery.title", nil, "")
		v.Values["email"] = email
		p.fail(r, v, err, map[string]string{"email": "email"})
		p.recoveryStep(w, r, v)
		return
	}
	p.resetStep(w, r, p.newView(r, "page.reset.title", nil, sent.ProcessingID), sent.Destination)
}

func (p *Pages) resetStep(w http.ResponseWriter, r *http.Request, v *view, shown string) {
	p.step(w, r, statusOf(v), v, &stepData{
		Intro:  []string{v.T("page.reset.intro", "to", shown)},
		Action: Prefix + "/recovery/reset", Hidden: []hidden{{"shown", shown}},
		Fields: []field{
			{Name: "code", Type: "text", Label: v.T("page.field.email_code"), Auto: "one-time-code", Mode: "numeric"},
			{Name: "password", Type: "password", Label: v.T("page.field.new_password"), Auto: "new-password", Hint: v.T("page.hint.password")},
		},
		Submit: "page.reset.submit",
	})
}

// handleRecoveryReset handles POST /account/recovery/reset: the code and
// a new password. Every session ends; the user signs in again, second
// factor included (a recovery grants no session).
func (p *Pages) handleRecoveryReset(w http.ResponseWriter, r *http.Request) {
	flow := r.PostFormValue("processingId")
	err := p.Accounts.ResetPassword(r.Context(), flow, r.PostFormValue("code"), r.PostFormValue("password"), p.Meta(r))
	if err != nil {
		v := p.newView(r, "page.reset.title", nil, flow)
		p.fail(r, v, err, map[string]string{"oneTimeToken": "code", "code": "code", "newPassword": "password"})
		p.resetStep(w, r, v, r.PostFormValue("shown"))
		return
	}
	setCookie(w, r, sessionCookie, "", time.Time{})
	redirect(w, r, Prefix+"/login?done=password_reset")
}

// ---- passkey ceremonies (the script's JSON) ----

// replyJSON answers the page script: the error's message and code, or
// body.
func (p *Pages) replyJSON(w http.ResponseWriter, r *http.Request, body any, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, body)
		return
	}
	code := tessera.ErrorCode(err)
	if code == tessera.EREAUTH {
		writeJSON(w, http.StatusOK, map[string]string{"redirect": reauthURL(Prefix + "/settings")})
		return
	}
	v := p.newView(r, "page.error.title", nil, "")
	p.fail(r, v, err, map[string]string{})
	status := http.StatusBadRequest
	if code == tessera.EINTERNAL || code == tessera.EUNAVAILABLE {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]string{"error": v.Error, "code": code})
}

type passkeyRequest struct {
	ProcessingID string          `json:"processingId"`
	Credential   json.RawMessage `json:"credential"`
	Name         string          `json:"name"`
	ReturnTo     string          `json:"returnTo"`
	Next         string          `json:"next"`
}

func decodePasskey(r *http.Request) (*passkeyRequest, error) {
	var req passkeyRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, tessera.Invalid(tessera.FieldError{Path: "body", Error: "must be a JSON object"})
	}
	return &req, nil
}

// handlePasskeyLoginBegin handles POST /account/passkeys/login/begin.
func (p *Pages) handlePasskeyLoginBegin(w http.ResponseWriter, r *http.Request) {
	opts, err := p.Accounts.BeginPasskeyLogin(r.Context(), p.Meta(r))
	p.replyJSON(w, r, opts, err)
}

// handlePasskeyLoginFinish handles POST /account/passkeys/login/finish:
// the passkey alone signs in.
func (p *Pages) handlePasskeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	req, err := decodePasskey(r)
	if err != nil {
		p.replyJSON(w, r, nil, err)
		return
	}
	tokens, err := p.Accounts.FinishPasskeyLogin(r.Context(), req.ProcessingID, req.Credential, p.Meta(r))
	if err != nil {
		p.replyJSON(w, r, nil, err)
		return
	}
	target, err := p.loginTarget(r, w, tokens, req.ReturnTo)
	p.replyJSON(w, r, map[string]string{"redirect": target}, err)
}

// handlePasskeyFactorBegin handles POST /account/passkeys/factor/begin:
// a passkey as the second factor of a login or step-up.
func (p *Pages) handlePasskeyFactorBegin(w http.ResponseWriter, r *http.Request) {
	req, err := decodePasskey(r)
	if err != nil {
		p.replyJSON(w, r, nil, err)
		return
	}
	opts, err := p.Accounts.BeginPasskeyFactor(r.Context(), req.ProcessingID)
	p.replyJSON(w, r, opts, err)
}

// handlePasskeyFactorFinish handles POST /account/passkeys/factor/finish.
func (p *Pages) handlePasskeyFactorFinish(w http.ResponseWriter, r *http.Request) {
	req, err := decodePasskey(r)
	if err != nil {
		p.replyJSON(w, r, nil, err)
		return
	}
	tokens, err := p.Accounts.CompleteLogin(r.Context(), req.ProcessingID, account.FactorPasskey, string(req.Credential), p.Meta(r))
	if err != nil {
		p.replyJSON(w, r, nil, err)
		return
	}
	if tokens.RefreshToken == "" {
		p.replyJSON(w, r, map[string]string{"redirect": localNext(req.Next)}, nil)
		return
	}
	target, err := p.loginTarget(r, w, tokens, req.ReturnTo)
	p.replyJSON(w, r, map[string]string{"redirect": target}, err)
}

// ---- user key recovery ----

// A user with MFA on who lost their mailbox or phone recovers it from the
// second-factor step of a login: a token to the key they still have, a
// token to the new key, and their second factor, as the account model's
// key recovery asks.

func otherKey(lost string) string {
	if lost == account.DestinationEmail {
		return account.DestinationPhone
	}
	return account.DestinationEmail
}

// handleKeyRecovery handles POST /account/key-recovery: which key was
// lost (the two submit buttons), then a token to the other.
func (p *Pages) handleKeyRecovery(w http.ResponseWriter, r *http.Request) {
	flow, lost := r.PostFormValue("processingId"), r.PostFormValue("lost")
	v := p.newView(r, "page.keyrecovery.title", nil, flow)
	if lost == "" {
		v.Data = &stepData{Intro: []string{v.T("page.keyrecovery.intro")}}
		p.render(w, r, http.StatusOK, "keyrecovery", v)
		return
	}
	sent, err := p.Accounts.SendKeyRecoveryVerification(r.Context(), flow, lost, otherKey(lost))
	if err != nil {
		p.fail(r, v, err, nil)
		v.Data = &stepData{Intro: []string{v.T("page.keyrecovery.intro")}}
		p.render(w, r, statusOf(v), "keyrecovery", v)
		return
	}
	p.keyRecoveryNewStep(w, r, v, sentTo(v, sent), lost)
}

func (p *Pages) keyRecoveryNewStep(w http.ResponseWriter, r *http.Request, v *view, intro, lost string) {
	label, typ := "page.field.new_email", "email"
	if lost == account.DestinationPhone {
		label, typ = "page.field.new_phone", "tel"
	}
	p.step(w, r, statusOf(v), v, &stepData{Intro: []string{intro}, Action: Prefix + "/key-recovery/new-key",
		Hidden: []hidden{{"lost", lost}, {"intro", intro}},
		Fields: []field{
			{Name: "verification-token", Type: "text", Label: v.T("page.field.token"), Auto: "one-time-code", Mode: "numeric"},
			{Name: "new-key", Type: typ, Label: v.T(label)},
		}, Submit: "page.continue"})
}

// handleKeyRecoveryNewKey handles POST /account/key-recovery/new-key: a
// token to the new key.
func (p *Pages) handleKeyRecoveryNewKey(w http.ResponseWriter, r *http.Request) {
	flow, lost, newKey := r.PostFormValue("processingId"), r.PostFormValue("lost"), strings.TrimSpace(r.PostFormValue("new-key"))
	v := p.newView(r, "page.keyrecovery.title", nil, flow)
	if _, err := p.Accounts.SendKeyRecoveryNewKey(r.Context(), flow, newKey); err != nil {
		v.Values["new-key"] = newKey
		p.fail(r, v, err, map[string]string{"destination": "new-key"})
		p.keyRecoveryNewStep(w, r, v, r.PostFormValue("intro"), lost)
		return
	}
	p.keyRecoveryFinishStep(w, r, v, lost, r.PostFormValue("verification-token"), newKey)
}

func (p *Pages) keyRecoveryFinishStep(w http.ResponseWriter, r *http.Request, v *view, lost, verification, newKey string) {
	p.step(w, r, statusOf(v), v, &stepData{Intro: []string{v.T("page.token.sent", "to", newKey), v.T("page.keyrecovery.factor")},
		Action: Prefix + "/key-recovery/finish",
		Hidden: []hidden{{"lost", lost}, {"verification-token", verification}, {"new-key", newKey}},
		Fields: []field{
			{Name: "new-key-token", Type: "text", Label: v.T("page.field.token"), Auto: "one-time-code", Mode: "numeric"},
			{Name: "mfa-code", Type: "text", Label: v.T("page.field.mfa_code"), Auto: "one-time-code", Hint: v.T("page.hint.mfa_code")},
		}, Submit: "page.keyrecovery.submit"})
}

// handleKeyRecoveryFinish handles POST /account/key-recovery/finish. The
// second factor is an authenticator code, or else a recovery code (its
// shape tells which); the account model decides whether it may.
func (p *Pages) handleKeyRecoveryFinish(w http.ResponseWriter, r *http.Request) {
	flow, lost, newKey := r.PostFormValue("processingId"), r.PostFormValue("lost"), r.PostFormValue("new-key")
	code := strings.TrimSpace(r.PostFormValue("mfa-code"))
	method := account.FactorTOTP
	if strings.Contains(code, "-") {
		method = account.FactorRecovery
	}
	_, err := p.Accounts.RecoverKey(r.Context(), flow, lost, r.PostFormValue("verification-token"), newKey, r.PostFormValue("new-key-token"), method, code, p.Meta(r))
	if err != nil {
		v := p.newView(r, "page.keyrecovery.title", nil, flow)
		p.fail(r, v, err, map[string]string{"newKeyToken": "new-key-token", "mfaCode": "mfa-code", "mfaMethod": "mfa-code"})
		p.keyRecoveryFinishStep(w, r, v, lost, r.PostFormValue("verification-token"), newKey)
		return
	}
	redirect(w, r, Prefix+"/login?done=key_recovered")
}
