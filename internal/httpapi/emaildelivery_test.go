package httpapi_test

import (
	"io"
	"mime/quotedprintable"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/deliver"
)

// mailServer is an SMTP server that accepts mail, except to the addresses
// it refuses (by local part): "bounce" for good (550), "busy" for now (451).
type mailServer struct {
	mu       sync.Mutex
	accepted []string
	messages []string // the raw messages accepted, in order
}

func (m *mailServer) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{srv: m}, nil }

type mailSession struct {
	srv *mailServer
	to  string
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "bounce@"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	case strings.HasPrefix(to, "busy@"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	}
	s.to = to
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.accepted = append(s.srv.accepted, s.to)
	s.srv.messages = append(s.srv.messages, string(raw))
	return nil
}
func (s *mailSession) Reset()        { s.to = "" }
func (s *mailSession) Logout() error { return nil }

func startMailServer(t *testing.T) (*mailServer, int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mailServer{}
	srv := smtp.NewServer(m)
	srv.Domain = "localhost"
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m, ln.Addr().(*net.TCPAddr).Port
}

// TestEmailDeliveryStates: what GET shows of an email code sent through a
// real SMTP server: sent once the server accepted it; pending with the
// server's answer while it is refused for now (451), retried later; failed
// at once when refused for good (550). Email has no later delivery report:
// an accepted message stays sent.
func TestEmailDeliveryStates(t *testing.T) {
	onEachStoreWith(t, func(t *testing.T, s app.Storage) (*env, *mailServer) {
		mail, port := startMailServer(t)
		return newEnvWith(t, s, func(o *app.Options) {
			sender, err := deliver.NewSMTPSender(deliver.SMTPConfig{Host: "127.0.0.1", Port: port, TLS: "none", From: "no-reply@acme.example"})
			if err != nil {
				t.Fatal(err)
			}
			o.Senders[tessera.ChannelEmail] = sender
		}), mail
	}, func(t *testing.T, e *env, mail *mailServer) {
		ids := map[string]string{}
		for _, to := range []string{"ana@example.com", "busy@example.com", "bounce@example.com"} {
			ids[to] = e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": to}).want(t, 200).str("verificationId")
		}
		e.deliver()
		delivery := func(to string) map[string]any {
			return e.do("GET", "/methods/email/verifiers/"+ids[to], nil).want(t, 200).data()["delivery"].(map[string]any)
		}
		if d := delivery("ana@example.com"); d["status"] != "sent" || d["sentAt"] == nil || d["deliveryStatus"] != nil {
			t.Fatalf("accepted: %v", d)
		}
		if d := delivery("busy@example.com"); d["status"] != "pending" || d["attempts"] != 1.0 || !strings.Contains(d["lastError"].(string), "451") {
			t.Fatalf("refused for now: %v", d)
		}
		if d := delivery("bounce@example.com"); d["status"] != "failed" || d["attempts"] != 1.0 || !strings.Contains(d["lastError"].(string), "550") {
			t.Fatalf("refused for good: %v", d)
		}
		mail.mu.Lock()
		defer mail.mu.Unlock()
		if len(mail.accepted) != 1 || mail.accepted[0] != "ana@example.com" {
			t.Fatalf("the SMTP server accepted %v", mail.accepted)
		}
	})
}

// TestNoticeQuotesNeverBecomeMarkup: an attacker who knows the password
// signs in with a user agent of HTML. The genuine new-device notice, with
// the owner's anti-phishing code, must show that text, never render it as
// a link the owner would trust.
func TestNoticeQuotesNeverBecomeMarkup(t *testing.T) {
	mail, port := startMailServer(t)
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.NoNewDeviceNotices = false
		sender, err := deliver.NewSMTPSender(deliver.SMTPConfig{Host: "127.0.0.1", Port: port, TLS: "none", From: "no-reply@acme.example"})
		if err != nil {
			t.Fatal(err)
		}
		o.Senders[tessera.ChannelEmail] = sender
	})
	u := &user{e: e, email: "quoted@example.com", password: "correct horse battery"}
	e.doWith("POST", "/auth/register", map[string]any{"email": u.email, "password": u.password}, nil).want(t, 202)
	e.deliver()
	mail.mu.Lock()
	code := sixDigits.FindString(strings.Join(mail.messages, "\n"))
	mail.mu.Unlock()
	e.doWith("POST", "/auth/register/confirm", map[string]any{"email": u.email, "code": code}, nil).want(t, 200)

	const evil = `<a href="https://evil.example/secure">Secure your account</a>`
	e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": u.password}, map[string]string{"User-Agent": evil}).want(t, 200)
	e.deliver()
	mail.mu.Lock()
	defer mail.mu.Unlock()
	last := mail.messages[len(mail.messages)-1]
	_, htmlPart, ok := strings.Cut(decodeQuotedPrintable(last), "Content-Type: text/html")
	if !ok || !strings.Contains(htmlPart, "&lt;a href=") {
		t.Fatalf("the notice's HTML part does not show the user agent as text:\n%s", last)
	}
	if strings.Contains(htmlPart, `<a href="https://evil.example`) {
		t.Fatalf("the attacker's user agent became a link in the genuine notice:\n%s", htmlPart)
	}
}

// decodeQuotedPrintable undoes the quoted-printable soft line breaks and
// escapes of a raw message, enough to search its text.
func decodeQuotedPrintable(raw string) string {
	b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(raw)))
	if err != nil {
		return raw
	}
	return string(b)
}
