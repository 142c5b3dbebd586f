package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/account"
	"github.com/tessera-id/tessera/internal/i18n"
	"github.com/tessera-id/tessera/internal/secret"
)

// The hosted account pages: sign-up, login (password and second factor,
// or a passkey alone), password and key recovery, and the settings of a
// signed-in user, at /account/. They are server-rendered forms that work
// without JavaScript (only the passkey buttons need it) and call the same
// account.Service operations as the JSON API: the pages hold no rule of
// their own, they only translate forms to calls and errors to messages.
//
// Browser security:
//   - The page session is a cookie naming the Tessera session, with a MAC
//     (the session id alone, visible in ID tokens, forges nothing). It is
//     HttpOnly, SameSite=Lax, and __Host- and Secure except on a plain-HTTP
//     loopback host, where browsers refuse both.
//   - Every form carries a CSRF token: a MAC of a random per-browser
//     cookie, the page session and the flow the form continues.
//   - Every answer has a Content-Security-Policy with a fresh nonce: only
//     Tessera's own script and style run, nothing frames the pages, and
//     forms post only here or to an allowed return URL.

//go:embed templates/*.html static/account.js static/account.css
var pageFiles embed.FS

// Brand is what the pages show of the product: its name, a logo (an
// https URL or a path on this host) and a colour (#rrggbb).
type Brand struct {
	Name, LogoURL, Color string
}

// Pages serves the hosted account pages. Set its fields, then register
// Routes.
type Pages struct {
	Accounts *account.Service
	Keys     *secret.Keyring
	Brand    Brand
	// ReturnURLs are the allowed prefixes (scheme, host and port exactly,
	// then a path prefix) of the URLs a login may return to.
	ReturnURLs []string
	// Meta describes the client of a request (user agent, client IP), as
	// the JSON API does.
	Meta func(*http.Request) account.Meta
	// Allow applies the JSON API's per-IP limit to a form post (each
	// tries a password, a code or a send): nil, or the ETOOMANY to show.
	// Nil: no limit.
	Allow func(*http.Request) error
	Log   *slog.Logger
}

// Prefix is where the pages live.
const Prefix = "/account"

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"inc": func(i int) int { return i + 1 },
}).ParseFS(pageFiles, "templates/*.html"))

var (
	pageScript = mustRead("static/account.js")
	pageStyle  = mustRead("static/account.css")
)

func mustRead(name string) []byte {
	b, err := pageFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

// ---- cookies ----

const (
	sessionCookie = "tessera-session"
	csrfCookie    = "tessera-csrf"
)

// secureRequest reports whether the browser reached a host other than
// plain-HTTP loopback (directly, or through a TLS-terminating proxy, which
// says so in X-Forwarded-Proto or Forwarded): its cookies are then Secure
// and carry the __Host- prefix.
func secureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	// A proxy that says the browser used https is believed without being
	// a trusted one: a false claim only makes the cookies stricter. It
	// may have passed its upstream's loopback address as Host.
	if strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") || strings.Contains(strings.ToLower(r.Header.Get("Forwarded")), "proto=https") {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

func cookieName(r *http.Request, base string) string {
	if secureRequest(r) {
		return "__Host-" + base
	}
	return base
}

func setCookie(w http.ResponseWriter, r *http.Request, base, value string, expires time.Time) {
	c := &http.Cookie{Name: cookieName(r, base), Value: value, Path: "/", HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode}
	if value == "" {
		c.MaxAge = -1
	} else if !expires.IsZero() {
		c.Expires = expires
	}
	http.SetCookie(w, c)
}

func cookieValue(r *http.Request, base string) string {
	c, err := r.Cookie(cookieName(r, base))
	if err != nil {
		return ""
	}
	return c.Value
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b64(b)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// sessionMAC authenticates a session id in the cookie. It is cut from
// the bare MAC (Keys.MAC), never from a stored hash (Keys.Hash), which
// begins with the key's id: a cut of that could hold no secret at all.
func (p *Pages) sessionMAC(sessionID string) string {
	return b64(p.Keys.MAC("page-session", sessionID)[:18])
}

// signIn sets the page session cookie to sess.
func (p *Pages) signIn(w http.ResponseWriter, r *http.Request, sess *tessera.Session) {
	setCookie(w, r, sessionCookie, sess.ID+"."+p.sessionMAC(sess.ID), sess.ExpiresAt)
}

// current returns the signed-in user and session of r, or nil.
func (p *Pages) current(r *http.Request) (*tessera.User, *tessera.Session) {
	id, mac, ok := strings.Cut(cookieValue(r, sessionCookie), ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(p.sessionMAC(id))) {
		return nil, nil
	}
	u, sess, err := p.Accounts.SessionUser(r.Context(), id)
	if err != nil {
		return nil, nil
	}
	return u, sess
}

// ---- CSRF, and what every page request knows ----

// state is what wrap found out about a request.
type state struct {
	csrf string // the browser's CSRF cookie
	user *tessera.User
	sess *tessera.Session
}

type stateKey struct{}

func stateOf(r *http.Request) *state { return r.Context().Value(stateKey{}).(*state) }

// maxForm bounds a page's request body: forms are small.
const maxForm = 64 << 10

// wrap runs before every page handler: it gives the browser a CSRF
// cookie when it has none, finds the signed-in user, and refuses a POST
// whose CSRF token does not match the cookie, the page session and the
// flow it names (a form's processingId field, or the script's
// X-CSRF-Flow header). No handler can forget the check.
func (p *Pages) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := &state{csrf: cookieValue(r, csrfCookie)}
		if len(st.csrf) != 43 {
			st.csrf = random(32)
			setCookie(w, r, csrfCookie, st.csrf, time.Time{})
		}
		st.user, st.sess = p.current(r)
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			var token, flow string
			if isJSON(r) {
				token, flow = r.Header.Get("X-CSRF-Token"), r.Header.Get("X-CSRF-Flow")
			} else if err := r.ParseForm(); err == nil {
				token, flow = r.PostForm.Get("csrf"), r.PostForm.Get("processingId")
			}
			if !p.checkCSRF(st, token, flow) {
				if isJSON(r) {
					writeJSON(w, http.StatusForbidden, map[string]string{"error": "csrf"})
					return
				}
				v := p.newView(r, "page.error.title", nil, "")
				v.Error = v.T("page.error.csrf")
				p.render(w, r, http.StatusForbidden, "message", v)
				return
			}
		}
		h(w, r)
	}
}

func isJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
}

// csrfToken is the token of a form continuing flow for the browser's
// CSRF cookie and page session.
func (p *Pages) csrfToken(st *state, flow string) string {
	sid := ""
	if st.sess != nil {
		sid = st.sess.ID
	}
	return b64(p.Keys.MAC("page-csrf", st.csrf, sid, flow)[:24])
}

func (p *Pages) checkCSRF(st *state, token, flow string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(p.csrfToken(st, flow)))
}

// ---- return URLs ----

// returnURL returns raw if it is an allowed return URL: an absolute URL
// whose scheme and host (with port) equal those of an allowed entry and
// whose path is that entry's path or below it. Anything else is refused,
// so the pages never redirect where they were not told to.
func (p *Pages) returnURL(raw string) (string, bool) {
	if raw == "" || len(raw) > 2048 || strings.ContainsAny(raw, "\\\x00\r\n\t ") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Fragment != "" || u.Opaque != "" || u.Host == "" {
		return "", false
	}
	// No dot segments or empty segments: the prefix check must see the
	// path the app will see.
	if u.Path != "" && (path.Clean(u.Path) != strings.TrimSuffix(u.Path, "/") && path.Clean(u.Path) != u.Path || strings.Contains(u.Path, "//")) {
		return "", false
	}
	for _, allowed := range p.ReturnURLs {
		a, err := url.Parse(allowed)
		if err != nil || !strings.EqualFold(a.Scheme, u.Scheme) || !strings.EqualFold(a.Host, u.Host) {
			continue
		}
		prefix := a.Path
		if u.Path == prefix || prefix == "" || prefix == "/" ||
			(strings.HasPrefix(u.Path, prefix) && (strings.HasSuffix(prefix, "/") || u.Path[len(prefix)] == '/')) {
			return raw, true
		}
	}
	return "", false
}

// returnOrigins are the origins of the allowed return URLs, which the
// CSP's form-action must allow (a form's redirect is checked against it).
func (p *Pages) returnOrigins() []string {
	var out []string
	for _, allowed := range p.ReturnURLs {
		if a, err := url.Parse(allowed); err == nil {
			out = append(out, a.Scheme+"://"+a.Host)
		}
	}
	return out
}

// ---- answers ----

// headers sets the security headers of a page answer and returns the
// CSP nonce of its script and style.
func (p *Pages) headers(w http.ResponseWriter) string {
	nonce := random(18)
	img := "'self' data:"
	if u, err := url.Parse(p.Brand.LogoURL); err == nil && u.Scheme == "https" && u.Host != "" {
		img += " https://" + u.Host
	}
	formAction := strings.Join(append([]string{"'self'"}, p.returnOrigins()...), " ")
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'self' 'nonce-"+nonce+"'; img-src "+img+
		"; connect-src 'self'; form-action "+formAction+"; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	return nonce
}

// render writes the page name with v.
func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	v.Nonce = p.headers(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := templates.ExecuteTemplate(w, name, v); err != nil {
		p.logError(r, "render "+name, err)
	}
}

// redirect answers 303 See Other: the browser GETs target after a POST.
func redirect(w http.ResponseWriter, r *http.Request, target string) {
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (p *Pages) logError(r *http.Request, msg string, err error) {
	if p.Log != nil {
		p.Log.Error("account pages: "+msg, "err", err, "path", r.URL.Path)
	}
}

// ---- the view of a page ----

// view is what a template renders.
type view struct {
	Lang     string
	Brand    Brand
	Nonce    string
	Title    string // a catalogue key
	User     *tessera.User
	ReturnTo string
	// Error is a message about the whole page; Errors, per field name.
	Error  string
	Errors map[string]string
	Notice string
	// Values holds what the user typed, to fill the form again (never a
	// password or a code).
	Values map[string]string
	// CSRF is the token of forms that continue no flow; Flow, the
	// processingId the page's forms continue (FlowCSRF is its token).
	CSRF, Flow, FlowCSRF string
	// Data is what the page shows besides its forms.
	Data any
}

// T looks a message up in the page's language.
func (v *view) T(key string, args ...string) string { return i18n.T(v.Lang, key, args...) }

// Err returns the error of field, or "".
func (v *view) Err(field string) string { return v.Errors[field] }

// Val returns what the user typed into field.
func (v *view) Val(field string) string { return v.Values[field] }

// newView starts the view of a page for r, its forms bound to flow.
func (p *Pages) newView(r *http.Request, title string, u *tessera.User, flow string) *view {
	st := stateOf(r)
	v := &view{Lang: i18n.Negotiate("", r.Header.Get("Accept-Language")), Brand: p.Brand, Title: title, User: u,
		Errors: map[string]string{}, Values: map[string]string{}, Flow: flow, CSRF: p.csrfToken(st, "")}
	if flow != "" {
		v.FlowCSRF = p.csrfToken(st, flow)
	}
	if rt, ok := p.returnURL(r.FormValue("return_to")); ok {
		v.ReturnTo = rt
	}
	if done := r.URL.Query().Get("done"); done != "" && i18n.Has("page.done."+done) {
		v.Notice = v.T("page.done." + done)
	}
	return v
}

// fail puts err on the page: a field's error next to the field (fields
// maps the account model's field names to the form's), anything else at
// the top. It reports whether err was one to show; an unexpected one is
// logged and shown as a generic failure.
func (p *Pages) fail(r *http.Request, v *view, err error, fields map[string]string) {
	var te *tessera.Error
	if !errors.As(err, &te) {
		p.logError(r, "unexpected error", err)
		v.Error = v.T("page.error.internal")
		return
	}
	switch te.Code {
	case tessera.EINVALID:
		for _, d := range te.Details {
			msg, known := v.fieldError(d.Error)
			if f, ok := fields[d.Path]; ok {
				v.Errors[f] = msg
			} else if known {
				v.Error = msg
			} else {
				v.Error = v.T("page.error.field", "detail", d.Path+" "+d.Error)
			}
		}
		if len(te.Details) == 0 {
			v.Error = te.Message
		}
	case tessera.EINVALIDCODE:
		if f, ok := fields["code"]; ok {
			v.Errors[f] = v.T("page.error.code")
		} else {
			v.Error = v.T("page.error.code")
		}
	case tessera.EUNAUTHORIZED:
		v.Error = v.T("page.error.credentials")
	case tessera.EEXPIRED:
		v.Error = v.T("page.error.expired")
	case tessera.ELOCKED:
		v.Error = v.T("page.error.locked")
	case tessera.ETOOMANY:
		v.Error = v.T("page.error.too_many")
	case tessera.ENOTFOUND:
		v.Error = v.T("page.error.gone")
	case tessera.EINTERNAL, tessera.EUNAVAILABLE:
		p.logError(r, "account operation", err)
		v.Error = v.T("page.error.internal")
	default:
		// Conflicts and refusals: the account model's own explanation.
		v.Error = te.Message
	}
}
