package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/deliver"
)

// The development inbox shows the messages the log sender delivered, with
// their codes, so a developer (or a browser test) signs up without a mail
// server. It answers only when Options.Inbox is set, which the
// configuration allows on loopback or when asked for (TESSERA_DEV_INBOX);
// otherwise it is a 404 like any unknown path.
const (
	devInboxPath     = "/dev/inbox"
	devInboxJSONPath = "/dev/inbox.json"
)

//go:embed templates/devinbox.html
var devInboxFS embed.FS

var devInboxTemplate = template.Must(template.ParseFS(devInboxFS, "templates/devinbox.html"))

// devInboxStyle is the page's only style; the CSP allows it by its hash,
// and no script at all.
const devInboxStyle = `body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#f6f6f4}` +
	`main{max-width:52rem;margin:0 auto;padding:1rem 1.5rem}` +
	`article{background:#fff;border:1px solid #d4d4d0;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}` +
	`h2{font-size:1.1rem;margin:.5rem 0}dl{display:grid;grid-template-columns:max-content 1fr;gap:0 1rem;margin:0}` +
	`dt{color:#555}dd{margin:0}.code{font-size:1.4rem;font-weight:bold;letter-spacing:.1em}` +
	`pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f0f0ec;padding:.5rem;border-radius:4px}` +
	`a{color:#0645ad}a:focus,a:hover{outline:2px solid #0645ad}`

var devInboxCSP = func() string {
	sum := sha256.Sum256([]byte(devInboxStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

func (s *Server) devInboxRoutes() {
	s.handleText("GET "+devInboxPath, s.requireInbox(s.handleDevInbox))
	s.handle("GET "+devInboxJSONPath, s.requireInbox(s.handleDevInboxJSON))
}

func (s *Server) requireInbox(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.Inbox == nil || !s.Inbox.Anywhere && !directRequest(r) {
			s.writeError(w, r, tessera.Errorf(tessera.ENOTFOUND, "Not found"))
			return
		}
		next(w, r)
	}
}

// directRequest reports whether r reached the inbox the way a developer
// reaches it, not the two ways a stranger reaches a loopback address:
// through a reverse proxy on this machine (it names the client in a
// forwarding header) or by DNS rebinding (a browser on this machine sends
// the attacker's host name). A request from this machine must name this
// machine; one from elsewhere arrives only where the operator opened the
// inbox to every interface. An inbox the operator asked for
// (TESSERA_DEV_INBOX=1, Inbox.Anywhere) answers every request.
func directRequest(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	return !loopbackHost(r.RemoteAddr) || loopbackHost(r.Host)
}

// loopbackHost reports whether hostport (a host with or without port)
// names this machine: localhost or a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// devInboxMessages are the inbox's messages, newest first, only those to
// the ?to= address when one is given (compared case-insensitively).
func (s *Server) devInboxMessages(r *http.Request) (to string, msgs []deliver.InboxMessage) {
	to = devInboxTo(r.URL.Query().Get("to"))
	msgs = s.Inbox.Messages()
	if to == "" {
		return "", msgs
	}
	kept := msgs[:0]
	for _, m := range msgs {
		if strings.EqualFold(m.To, to) {
			kept = append(kept, m)
		}
	}
	return to, kept
}

// handleDevInbox handles GET /dev/inbox: the page, or with ?format=json
// what GET /dev/inbox.json answers.
func (s *Server) handleDevInbox(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("format") == "json" {
		s.handleDevInboxJSON(w, r)
		return
	}
	to, msgs := s.devInboxMessages(r)
	var buf bytes.Buffer
	err := devInboxTemplate.Execute(&buf, map[string]any{
		"Service": s.Accounts.ServiceName, "Style": template.CSS(devInboxStyle),
		"Size": s.Inbox.Size(), "To": to, "Path": devInboxPath, "JSONPath": devInboxJSONPath, "Messages": msgs,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", devInboxCSP)
	w.Write(buf.Bytes())
}

// handleDevInboxJSON handles GET /dev/inbox.json: the same messages for
// scripts and tests, {"status": 200, "messages": [...]} newest first.
func (s *Server) handleDevInboxJSON(w http.ResponseWriter, r *http.Request) {
	_, msgs := s.devInboxMessages(r)
	writeJSON(w, http.StatusOK, map[string]any{"status": http.StatusOK, "messages": msgs})
}

// devInboxTo is the ?to= value as typed. A number typed unescaped,
// ?to=+14155552671, arrives with its "+" decoded as a space; no address
// starts with one, so a space and digits are taken as that number.
func devInboxTo(v string) string {
	if digits := strings.TrimPrefix(v, " "); digits != v && digits != "" && strings.Trim(digits, "0123456789") == "" {
		return "+" + digits
	}
	return strings.TrimSpace(v)
}
