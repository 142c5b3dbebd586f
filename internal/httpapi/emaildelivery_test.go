package httpapi_test

import (
	"io"
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
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.accepted = append(s.srv.accepted, s.to)
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
