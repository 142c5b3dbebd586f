package deliver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tessera-id/tessera"
)

// smtpBackend is an in-process SMTP server's backend that records what it
// receives.
type smtpBackend struct {
	user, pass string          // when set, MAIL requires AUTH with these
	rcptErr    *smtp.SMTPError // when set, every RCPT is answered with it

	mu   sync.Mutex
	msgs []smtpReceived
}

type smtpReceived struct {
	from string
	to   []string
	tls  bool
	data []byte
}

func (b *smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{be: b, conn: c}, nil
}

func (b *smtpBackend) received() []smtpReceived {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]smtpReceived(nil), b.msgs...)
}

type smtpSession struct {
	be     *smtpBackend
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if s.be.user == "" || username != s.be.user || password != s.be.pass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.be.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.be.rcptErr != nil {
		return s.be.rcptErr
	}
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.be.mu.Lock()
	defer s.be.mu.Unlock()
	s.be.msgs = append(s.be.msgs, smtpReceived{from: s.from, to: s.to, tls: isTLS, data: data})
	return nil
}

func (s *smtpSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpSession) Logout() error { return nil }

// startSMTP serves be on a loopback port, offering STARTTLS when
// startTLS is set, or speaking TLS from the first byte when implicitTLS
// is set; it returns the port.
func startSMTP(t *testing.T, be *smtpBackend, startTLS, implicitTLS *tls.Config) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if implicitTLS != nil {
		ln = tls.NewListener(ln, implicitTLS)
	}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.TLSConfig = startTLS
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = smtpDiscardLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		ln.Close() // in case Serve had not started yet when Close ran
		<-done
	})
	return port
}

type smtpDiscardLog struct{}

func (smtpDiscardLog) Printf(string, ...any) {}
func (smtpDiscardLog) Println(...any)        {}

// testCert returns a server TLS config with a self-signed certificate for
// 127.0.0.1 and localhost, and a client config trusting it.
func testCert(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tessera test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

func newTestSMTPSender(t *testing.T, cfg SMTPConfig) *SMTPSender {
	t.Helper()
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.From == "" {
		cfg.From = "Acme <no-reply@acme.example>"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	s, err := NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func smtpSend(t *testing.T, s *SMTPSender, m *tessera.Outgoing) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.Send(ctx, m)
}

func outgoing(id, body string) *tessera.Outgoing {
	return &tessera.Outgoing{
		ID: id, Channel: tessera.ChannelEmail, To: "user@example.com",
		Content: tessera.MessageContent{Subject: "Verify your email", Body: body},
	}
}

// parsedMail is a received message, decoded.
type parsedMail struct {
	header mail.Header
	parts  map[string]string // content type -> decoded content
}

func parseMail(t *testing.T, data []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, want multipart/alternative\n%s", mt, data)
	}
	p := parsedMail{header: msg.Header, parts: map[string]string{}}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = part
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "base64") {
			r = base64.NewDecoder(base64.StdEncoding, part)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		ct, ctParams, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		if cs := ctParams["charset"]; !strings.EqualFold(cs, "utf-8") {
			t.Errorf("%s charset = %q, want UTF-8", ct, cs)
		}
		p.parts[ct] = strings.ReplaceAll(string(body), "\r\n", "\n") // CRLF on the wire
	}
	return p
}

func (p parsedMail) decoded(t *testing.T, key string) string {
	t.Helper()
	v, err := new(mime.WordDecoder).DecodeHeader(p.header.Get(key))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSMTPSendPlain(t *testing.T) {
	be := &smtpBackend{}
	port := startSMTP(t, be, nil, nil)
	s := newTestSMTPSender(t, SMTPConfig{Port: port, TLS: "none"})

	htmlBody := `Click on the <a href="https://acme.example/verify?code=482916&amp;id=v1">Verify Link</a> to continue`
	if err := smtpSend(t, s, outgoing("msg-html-1", htmlBody)); err != nil {
		t.Fatal(err)
	}
	withFrom := outgoing("msg-text-2", "Your code is 739104.\nIt expires in 10 minutes.")
	withFrom.Content.FromEmail = "security@brand.example"
	withFrom.Content.FromName = `Brand "Security" Team`
	withFrom.Content.Subject = "Ihr Bestätigungscode"
	if err := smtpSend(t, s, withFrom); err != nil {
		t.Fatal(err)
	}

	got := be.received()
	if len(got) != 2 {
		t.Fatalf("received %d messages, want 2", len(got))
	}

	// An HTML template: the HTML part is the body, the text part derived.
	r := got[0]
	if len(r.to) != 1 || r.to[0] != "user@example.com" {
		t.Errorf("RCPT TO = %q, want user@example.com", r.to)
	}
	if r.from != "no-reply@acme.example" {
		t.Errorf("MAIL FROM = %q, want no-reply@acme.example", r.from)
	}
	m := parseMail(t, r.data)
	from, err := m.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Acme" || from[0].Address != "no-reply@acme.example" {
		t.Errorf("From = %v (%v), want Acme <no-reply@acme.example>", from, err)
	}
	to, err := m.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "user@example.com" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if subj := m.decoded(t, "Subject"); subj != "Verify your email" {
		t.Errorf("Subject = %q", subj)
	}
	if id := m.header.Get("Message-Id"); !strings.Contains(id, "msg-html-1") || !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") {
		t.Errorf("Message-ID = %q, want <...msg-html-1...>", id)
	}
	if _, err := m.header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if m.parts["text/html"] != htmlBody {
		t.Errorf("text/html part = %q, want the body as given", m.parts["text/html"])
	}
	wantText := "Click on the Verify Link (https://acme.example/verify?code=482916&id=v1) to continue"
	if got := strings.TrimSpace(m.parts["text/plain"]); got != wantText {
		t.Errorf("text/plain part = %q, want %q", got, wantText)
	}
	for ct, body := range m.parts {
		if !strings.Contains(body, "482916") {
			t.Errorf("%s part lacks the code: %q", ct, body)
		}
	}

	// A plain-text template with its own sender: the text part is the body,
	// the HTML part escaped.
	r = got[1]
	if r.from != "security@brand.example" {
		t.Errorf("MAIL FROM = %q, want security@brand.example", r.from)
	}
	m = parseMail(t, r.data)
	from, err = m.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != `Brand "Security" Team` || from[0].Address != "security@brand.example" {
		t.Errorf("From = %v (%v), want the template's name and address", from, err)
	}
	if subj := m.decoded(t, "Subject"); subj != "Ihr Bestätigungscode" {
		t.Errorf("Subject = %q", subj)
	}
	if id := m.header.Get("Message-Id"); !strings.Contains(id, "msg-text-2") {
		t.Errorf("Message-ID = %q, want it to contain the outbox id", id)
	}
	if got := strings.TrimSpace(m.parts["text/plain"]); got != withFrom.Content.Body {
		t.Errorf("text/plain part = %q, want the body", got)
	}
	if got := m.parts["text/html"]; got != "Your code is 739104.<br>\nIt expires in 10 minutes." {
		t.Errorf("text/html part = %q", got)
	}
}

func TestSMTPMessageIDIsStable(t *testing.T) {
	be := &smtpBackend{}
	port := startSMTP(t, be, nil, nil)
	s := newTestSMTPSender(t, SMTPConfig{Port: port, TLS: "none"})
	for range 2 {
		if err := smtpSend(t, s, outgoing("0192f1c4-7d1e-7c3a-9f5e-2b1d8e6a4c10", "Code: 1")); err != nil {
			t.Fatal(err)
		}
	}
	got := be.received()
	if len(got) != 2 {
		t.Fatalf("received %d messages, want 2", len(got))
	}
	id1, id2 := parseMail(t, got[0].data).header.Get("Message-Id"), parseMail(t, got[1].data).header.Get("Message-Id")
	if id1 != id2 || id1 != "<0192f1c4-7d1e-7c3a-9f5e-2b1d8e6a4c10@acme.example>" {
		t.Errorf("Message-IDs = %q, %q; want the same, from the outbox id", id1, id2)
	}
}

func TestSMTPStartTLSAuth(t *testing.T) {
	serverTLS, clientTLS := testCert(t)
	be := &smtpBackend{user: "tessera", pass: "s3cret"}
	port := startSMTP(t, be, serverTLS, nil)

	t.Run("delivers", func(t *testing.T) {
		s := newTestSMTPSender(t, SMTPConfig{Port: port, Username: "tessera", Password: "s3cret", TLSConfig: clientTLS})
		if err := smtpSend(t, s, outgoing("msg-tls", "Code 111222")); err != nil {
			t.Fatal(err)
		}
		got := be.received()
		if len(got) != 1 || !got[0].tls || got[0].to[0] != "user@example.com" {
			t.Fatalf("received %+v, want one message over TLS", got)
		}
	})
	t.Run("wrong password is permanent", func(t *testing.T) {
		s := newTestSMTPSender(t, SMTPConfig{Port: port, Username: "tessera", Password: "wrong", TLSConfig: clientTLS})
		err := smtpSend(t, s, outgoing("msg-badauth", "Code 1"))
		if err == nil || !IsPermanent(err) {
			t.Fatalf("err = %v, want a permanent error (535)", err)
		}
		if !strings.Contains(err.Error(), "535") {
			t.Errorf("err = %v, want the 535 reply in it", err)
		}
	})
	t.Run("untrusted certificate is retried", func(t *testing.T) {
		s := newTestSMTPSender(t, SMTPConfig{Port: port, Username: "tessera", Password: "s3cret",
			TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}})
		err := smtpSend(t, s, outgoing("msg-untrusted", "Code 1"))
		if err == nil || IsPermanent(err) {
			t.Fatalf("err = %v, want a temporary error", err)
		}
	})
	if n := len(be.received()); n != 1 {
		t.Errorf("server received %d messages, want only the authenticated one", n)
	}
}

func TestSMTPStartTLSRequired(t *testing.T) {
	_, clientTLS := testCert(t)
	be := &smtpBackend{}
	port := startSMTP(t, be, nil, nil) // no STARTTLS offered
	s := newTestSMTPSender(t, SMTPConfig{Port: port, TLS: "starttls", TLSConfig: clientTLS})
	err := smtpSend(t, s, outgoing("msg-nostarttls", "Code 1"))
	if err == nil {
		t.Fatal("sent without STARTTLS, want an error")
	}
	if !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("err = %v, want it to mention STARTTLS", err)
	}
	if n := len(be.received()); n != 0 {
		t.Errorf("server received %d messages in plain text", n)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := testCert(t)
	be := &smtpBackend{user: "tessera", pass: "s3cret"}
	port := startSMTP(t, be, nil, serverTLS)
	s := newTestSMTPSender(t, SMTPConfig{Host: "localhost", Port: port, TLS: "tls", Username: "tessera", Password: "s3cret", TLSConfig: clientTLS})
	if err := smtpSend(t, s, outgoing("msg-smtps", "Code 333444")); err != nil {
		t.Fatal(err)
	}
	got := be.received()
	if len(got) != 1 || !got[0].tls {
		t.Fatalf("received %+v, want one message over TLS", got)
	}
}

func TestSMTPReplyClassification(t *testing.T) {
	for _, tc := range []struct {
		err       *smtp.SMTPError
		permanent bool
	}{
		{&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}, true},
		{&smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad address syntax"}, true},
		{&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}, false},
		{&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too busy"}, false},
	} {
		t.Run(strconv.Itoa(tc.err.Code), func(t *testing.T) {
			port := startSMTP(t, &smtpBackend{rcptErr: tc.err}, nil, nil)
			s := newTestSMTPSender(t, SMTPConfig{Port: port, TLS: "none"})
			err := smtpSend(t, s, outgoing("msg-"+strconv.Itoa(tc.err.Code), "Code 1"))
			if err == nil {
				t.Fatal("no error")
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, IsPermanent(err), tc.permanent)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tc.err.Code)) {
				t.Errorf("err = %v, want the reply code in it", err)
			}
		})
	}
}

func TestSMTPUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := newTestSMTPSender(t, SMTPConfig{Port: port, TLS: "none"})
	err = smtpSend(t, s, outgoing("msg-down", "Code 1"))
	if err == nil || IsPermanent(err) {
		t.Fatalf("err = %v, want a temporary error", err)
	}
}

func TestSMTPContextCancel(t *testing.T) {
	// A server that accepts the connection and never greets.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
			cancel()
		}
	}()
	s := newTestSMTPSender(t, SMTPConfig{Port: ln.Addr().(*net.TCPAddr).Port, TLS: "none", Timeout: time.Minute})
	err = s.Send(ctx, outgoing("msg-cancel", "Code 1"))
	if !errors.Is(err, context.Canceled) || IsPermanent(err) {
		t.Fatalf("err = %v, want context.Canceled, not permanent", err)
	}
	select {
	case c := <-accepted:
		c.Close()
	default:
	}
}

func TestSMTPInvalidAddressesArePermanent(t *testing.T) {
	port := startSMTP(t, &smtpBackend{}, nil, nil)
	s := newTestSMTPSender(t, SMTPConfig{Port: port, TLS: "none"})
	badTo := outgoing("msg-badto", "Code 1")
	badTo.To = "not an address"
	badFrom := outgoing("msg-badfrom", "Code 1")
	badFrom.Content.FromEmail = "nobody@"
	for _, m := range []*tessera.Outgoing{badTo, badFrom} {
		if err := smtpSend(t, s, m); err == nil || !IsPermanent(err) {
			t.Errorf("%s: err = %v, want a permanent error", m.ID, err)
		}
	}
}

func TestNewSMTPSender(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      SMTPConfig
		ok       bool
		wantPort int
	}{
		{"starttls default port", SMTPConfig{Host: "mail.example", From: "a@example.com"}, true, 587},
		{"tls default port", SMTPConfig{Host: "mail.example", TLS: "tls", From: "A <a@example.com>"}, true, 465},
		{"none default port", SMTPConfig{Host: "localhost", TLS: "none", From: "a@example.com"}, true, 25},
		{"explicit port", SMTPConfig{Host: "mail.example", Port: 2525, From: "a@example.com"}, true, 2525},
		{"credentials over plain to localhost", SMTPConfig{Host: "127.0.0.1", TLS: "none", Username: "u", Password: "p", From: "a@example.com"}, true, 25},
		{"no host", SMTPConfig{From: "a@example.com"}, false, 0},
		{"bad tls", SMTPConfig{Host: "mail.example", TLS: "ssl3", From: "a@example.com"}, false, 0},
		{"no from", SMTPConfig{Host: "mail.example"}, false, 0},
		{"bad from", SMTPConfig{Host: "mail.example", From: "Acme"}, false, 0},
		{"bad port", SMTPConfig{Host: "mail.example", Port: 70000, From: "a@example.com"}, false, 0},
		{"username only", SMTPConfig{Host: "mail.example", Username: "u", From: "a@example.com"}, false, 0},
		{"credentials over plain to a remote host", SMTPConfig{Host: "mail.example", TLS: "none", Username: "u", Password: "p", From: "a@example.com"}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSMTPSender(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && s.cfg.Port != tc.wantPort {
				t.Errorf("port = %d, want %d", s.cfg.Port, tc.wantPort)
			}
		})
	}
}

func TestSMTPHTMLToText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`Click on the <a href="https://x.example/v?code=123456">Verify Link</a> to continue`,
			"Click on the Verify Link (https://x.example/v?code=123456) to continue"},
		{`<a href="https://x.example/v?a=1&amp;b=2">https://x.example/v?a=1&amp;b=2</a>`, "https://x.example/v?a=1&b=2"},
		{`Write to <a href='mailto:help@x.example'>help@x.example</a>.`, "Write to help@x.example."},
		{`<a href=https://x.example/v target=_blank><b>Verify</b></a>`, "Verify (https://x.example/v)"},
		{`<a href="https://x.example/v"></a>`, "https://x.example/v"},
		{`<a href="#top">Top</a>`, "Top"},
		{"Line one<br>Line two<br/>Line three<BR />end", "Line one\nLine two\nLine three\nend"},
		{"<p>First   paragraph\n  wrapped.</p><p>Second.</p>", "First paragraph wrapped.\n\nSecond."},
		{"<div>a</div><div>b</div>", "a\nb"},
		{"<ul><li>one</li><li>two</li></ul>after", "- one\n- two\n\nafter"},
		{"Your code: <strong>123456</strong>", "Your code: 123456"},
		{"Tom &amp; Jerry &lt;3 &quot;x&quot; &#39;y&#39; caf&eacute;", `Tom & Jerry <3 "x" 'y' café`},
		{"<html><head><title>T</title><style>p{color:red}</style></head><body><p>Hi</p><script>alert(1)</script></body></html>", "Hi"},
		{"<!DOCTYPE html><!-- a comment --><p>Code 42</p>", "Code 42"},
		{`<span title="a > b">x</span> < y`, "x < y"},
		{"<table><tr><td>Code</td><td>42</td></tr></table>", "Code 42"},
	} {
		if got := htmlToText(tc.in); got != tc.want {
			t.Errorf("htmlToText(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestSMTPTextToHTML(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Your code is 123456", "Your code is 123456"},
		{"Line 1\nLine 2", "Line 1<br>\nLine 2"},
		{"a\r\nb", "a<br>\nb"},
		{`1 < 2 & "x" > 'y'`, "1 &lt; 2 &amp; &#34;x&#34; &gt; &#39;y&#39;"},
	} {
		if got := textToHTML(tc.in); got != tc.want {
			t.Errorf("textToHTML(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSMTPBodies(t *testing.T) {
	for _, tc := range []struct{ in, plain, html string }{
		{"Code: 123456", "Code: 123456", "Code: 123456"},
		{"a < b and c > d", "a < b and c > d", "a &lt; b and c &gt; d"},
		{"Code: <b>123456</b>", "Code: 123456", "Code: <b>123456</b>"},
		{"Hi<br>there", "Hi\nthere", "Hi<br>there"},
	} {
		plain, html := bodies(tc.in)
		if plain != tc.plain || html != tc.html {
			t.Errorf("bodies(%q) = %q, %q; want %q, %q", tc.in, plain, html, tc.plain, tc.html)
		}
	}
}

func TestSMTPMessageID(t *testing.T) {
	for _, tc := range []struct{ id, from, want string }{
		{"0192f1c4-7d1e", "no-reply@Acme.Example", "0192f1c4-7d1e@acme.example"},
		{"abc", "weird@[127.0.0.1]", "abc@tessera"},
		{"a b<c>", "x@acme.example", "6120623c633e@acme.example"},
		{"", "x@acme.example", "x@acme.example"},
	} {
		if got := messageID(tc.id, tc.from); got != tc.want {
			t.Errorf("messageID(%q, %q) = %q, want %q", tc.id, tc.from, got, tc.want)
		}
	}
}
