package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestPage(t *testing.T) {
	w := get(t, Handler(), PagePath, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: %d", PagePath, w.Code)
	}
	h := w.Header()
	if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := h.Get("Content-Security-Policy"); csp != CSP {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(CSP, d+";") && !strings.HasSuffix(CSP, d) {
			t.Errorf("CSP lacks %s", d)
		}
	}
	if strings.Contains(CSP, "unsafe") {
		t.Errorf("CSP allows something unsafe: %s", CSP)
	}
	if v := h.Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", v)
	}

	body := w.Body.String()
	// One script, ours, from this origin; none inline, no other origin.
	scripts := regexp.MustCompile(`<script\b[^>]*>`).FindAllString(body, -1)
	if len(scripts) != 1 || !regexp.MustCompile(`src="/ui/passkeys\.js\?v=[0-9a-f]{16}"`).MatchString(scripts[0]) {
		t.Errorf("scripts %q, want one of %s", scripts, ScriptPath)
	}
	if regexp.MustCompile(`<script\b[^>]*>[^<]`).MatchString(body) {
		t.Error("the page has an inline script")
	}
	if regexp.MustCompile(`(src|href)="(https?:)?//`).MatchString(body) {
		t.Error("the page loads something from another origin")
	}
	if regexp.MustCompile(`\son[a-z]+=`).MatchString(body) || strings.Contains(body, "style=") {
		t.Error("the page has an inline handler or style, which its CSP blocks")
	}
	// What the script and the tests rely on, and what a screen reader needs.
	for _, want := range []string{
		`<html lang="en">`,
		`<label for="email">`, `id="email"`,
		`<label for="password">`, `id="password"`, `type="password"`,
		`<form id="login-form" method="post">`,
		`<button id="login" type="submit">`,
		`<button id="add-passkey" type="button">Add a passkey</button>`,
		`<button id="passkey-login" type="button">Sign in with a passkey</button>`,
		`id="status" role="status" aria-live="polite"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

func TestScript(t *testing.T) {
	w := get(t, Handler(), ScriptPath+"?v=whatever", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: %d", ScriptPath, w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if v := w.Header().Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", v)
	}
	if w.Header().Get("Content-Security-Policy") == "" {
		t.Error("no Content-Security-Policy")
	}
	body := w.Body.String()
	for _, want := range []string{
		"/auth/login",
		"/auth/passkeys/registration/begin", "/auth/passkeys/registration/finish",
		"/auth/passkeys/login/begin", "/auth/passkeys/login/finish",
		"navigator.credentials.create", "navigator.credentials.get",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the script lacks %s", want)
		}
	}
	for _, never := range []string{"localStorage", "sessionStorage", "document.cookie", "eval(", "innerHTML"} {
		if strings.Contains(body, never) {
			t.Errorf("the script uses %s", never)
		}
	}

	// The page names the script's version, and a revalidation with it is
	// answered 304.
	etag := w.Header().Get("ETag")
	if etag == "" || !strings.Contains(get(t, Handler(), PagePath, nil).Body.String(), "?v="+strings.Trim(etag, `"`)) {
		t.Errorf("ETag %s is not the version the page names", etag)
	}
	if w := get(t, Handler(), ScriptPath, http.Header{"If-None-Match": {etag}}); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", w.Code)
	}
}

func TestOtherPaths(t *testing.T) {
	if w := get(t, Handler(), "/ui/passkeys/", nil); w.Code != http.StatusNotFound {
		t.Errorf("GET /ui/passkeys/: %d, want 404", w.Code)
	}
	r := httptest.NewRequest(http.MethodPost, PagePath, strings.NewReader("email=a&password=b"))
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", PagePath, w.Code)
	}
}

func TestRoutes(t *testing.T) {
	var got []string
	Routes(func(pattern string, h http.HandlerFunc) { got = append(got, pattern) })
	if strings.Join(got, ",") != "GET /ui/passkeys,GET /ui/passkeys.js" {
		t.Errorf("Routes registers %q", got)
	}
}
