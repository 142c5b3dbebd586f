// Package web serves Tessera's browser pages: the hosted account pages
// (Pages, at /account/: see pages.go) and the minimal passkey page of the
// JSON API (/ui/passkeys: sign in with a password, add a passkey, sign in
// with a passkey), which shows an API developer the WebAuthn calls and
// which the passkey browser test drives.
//
// The passkey page is static: an HTML form and one script of its own (no CDN, no
// inline script), which calls the JSON API of the same origin and keeps
// the ID token in memory only.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"time"
)

//go:embed static/passkeys.html static/passkeys.js
var static embed.FS

// CSP is the Content-Security-Policy of the page and its script: only the
// script of this origin runs, only this origin is fetched, nothing frames
// the page and the form cannot post anywhere by itself.
const CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Paths of the page and of its script.
const (
	PagePath   = "/ui/passkeys"
	ScriptPath = "/ui/passkeys.js"
)

var page, script, scriptETag = render()

// render reads the script and renders the page once: the page names the
// script with its hash, so a changed script is never taken from a cache.
func render() (page, script []byte, etag string) {
	script, err := static.ReadFile("static/passkeys.js")
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(script)
	version := hex.EncodeToString(sum[:8])
	tmpl := template.Must(template.ParseFS(static, "static/passkeys.html"))
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, struct{ Script string }{ScriptPath + "?v=" + version}); err != nil {
		panic(err)
	}
	return buf.Bytes(), script, `"` + version + `"`
}

// Routes registers GET PagePath and GET ScriptPath with handle, which takes
// a "METHOD /path" pattern as http.ServeMux.HandleFunc does.
func Routes(handle func(pattern string, h http.HandlerFunc)) {
	handle("GET "+PagePath, servePage)
	handle("GET "+ScriptPath, serveScript)
}

// Handler serves the routes of Routes on their own.
func Handler() http.Handler {
	mux := http.NewServeMux()
	Routes(func(pattern string, h http.HandlerFunc) { mux.HandleFunc(pattern, h) })
	return mux
}

// headers sets what both answers carry, over what a server's middleware
// may have set (its CSP would forbid the script).
func headers(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

func servePage(w http.ResponseWriter, r *http.Request) {
	headers(w, "text/html; charset=utf-8")
	w.Write(page)
}

func serveScript(w http.ResponseWriter, r *http.Request) {
	headers(w, "text/javascript; charset=utf-8")
	w.Header().Set("ETag", scriptETag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(script))
}
