package deliver

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"net"
	"net/mail"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/tessera-id/tessera"
)

var _ tessera.Sender = (*SMTPSender)(nil)

// The values of SMTPConfig.TLS.
const (
	SMTPStartTLS = "starttls" // connect in plain text, then STARTTLS, which the server must offer
	SMTPTLS      = "tls"      // implicit TLS from the first byte (SMTPS, port 465)
	SMTPNoTLS    = "none"     // no encryption at all: local relays and tests only
)

// SMTPConfig configures the SMTP sender.
type SMTPConfig struct {
	Host string
	Port int    // 0 means 587 for starttls, 465 for tls, 25 for none
	TLS  string // "starttls" (default: STARTTLS required), "tls" (implicit TLS), "none" (plain; local relays and tests only)
	// Username and Password authenticate the sender; both empty: no
	// authentication.
	Username, Password string
	From               string // default From, e.g. "Acme <no-reply@acme.example>" or "no-reply@acme.example"
	// TLSConfig, when set, replaces the TLS settings (tests trust a test CA with it).
	TLSConfig *tls.Config
	// Timeout bounds connecting and each SMTP exchange (default 30s).
	Timeout time.Duration
}

// SMTPSender delivers email messages through an SMTP server (a relay or a
// provider's submission endpoint). Each Send uses its own connection, so
// it is safe for concurrent use.
type SMTPSender struct {
	cfg  SMTPConfig
	from *mail.Address
	addr string // host:port
	tls  *tls.Config
}

// NewSMTPSender checks cfg (host required, From must parse as an address,
// TLS one of the three) and returns the sender.
func NewSMTPSender(cfg SMTPConfig) (*SMTPSender, error) {
	if cfg.Host == "" {
		return nil, errors.New("smtp: host is required")
	}
	cfg.TLS = strings.ToLower(strings.TrimSpace(cfg.TLS))
	if cfg.TLS == "" {
		cfg.TLS = SMTPStartTLS
	}
	defaultPort := map[string]int{SMTPStartTLS: 587, SMTPTLS: 465, SMTPNoTLS: 25}[cfg.TLS]
	if defaultPort == 0 {
		return nil, fmt.Errorf("smtp: tls must be %q, %q or %q, not %q", SMTPStartTLS, SMTPTLS, SMTPNoTLS, cfg.TLS)
	}
	if cfg.Port == 0 {
		cfg.Port = defaultPort
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("smtp: invalid port %d", cfg.Port)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("smtp: timeout must be positive")
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("smtp: set both username and password, or neither")
	}
	if cfg.Username != "" && cfg.TLS == SMTPNoTLS && !isLoopback(cfg.Host) {
		return nil, errors.New("smtp: refusing to send credentials without TLS to a host that is not local")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp: invalid from address %q: %w", cfg.From, err)
	}
	tc := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tc = cfg.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = cfg.Host
		}
	}
	return &SMTPSender{cfg: cfg, from: from, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), tls: tc}, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send delivers m by SMTP. A 5xx reply of the server and an address that
// cannot be parsed are permanent errors; 4xx replies and connection, TLS
// and timeout failures are retried.
func (s *SMTPSender) Send(ctx context.Context, m *tessera.Outgoing) error {
	msg, err := s.message(m)
	if err != nil {
		return err
	}

	// The connection is closed when ctx ends, which aborts any SMTP
	// exchange in progress (go-mail itself only uses ctx for dialling).
	var (
		mu      sync.Mutex
		rawConn net.Conn
	)
	closeConn := func() {
		mu.Lock()
		defer mu.Unlock()
		if rawConn != nil {
			rawConn.Close()
		}
	}
	stop := context.AfterFunc(ctx, closeConn)
	defer stop()
	// go-mail leaves the connection open when the greeting, STARTTLS or
	// AUTH fails; close it in every case.
	defer closeConn()
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: s.cfg.Timeout}
		conn, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		rawConn = conn
		mu.Unlock()
		if err := ctx.Err(); err != nil {
			conn.Close()
			return nil, err
		}
		if s.cfg.TLS != SMTPTLS {
			return conn, nil
		}
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return tc, nil
	}

	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(s.tls),
		gomail.WithDialContextFunc(dial),
	}
	switch s.cfg.TLS {
	case SMTPStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case SMTPTLS:
		// Our dial function does the TLS handshake; WithSSL stops go-mail
		// from attempting STARTTLS on top of it.
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSPolicy(gomail.NoTLS))
	case SMTPNoTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		opts = append(opts,
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password),
			// PLAIN or LOGIN when offered (go-mail refuses them without TLS
			// except to localhost), else the strongest mechanism go-mail knows.
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
	}
	client, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("smtp: configure client: %w", err)
	}

	conn, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return s.classify(ctx, fmt.Errorf("smtp: connect to %s: %w", s.addr, err))
	}
	err = client.SendWithSMTPClient(conn, msg)
	// Once the server accepted the DATA the message is delivered, whatever
	// happens to RSET or QUIT afterwards: never send it again.
	_ = client.CloseWithSMTPClient(conn)
	if msg.IsDelivered() {
		return nil
	}
	if err != nil {
		return s.classify(ctx, fmt.Errorf("smtp: send to %s: %w", s.addr, err))
	}
	return nil
}

// message builds the MIME message of m.
func (s *SMTPSender) message(m *tessera.Outgoing) (*gomail.Msg, error) {
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, Permanent(fmt.Errorf("smtp: invalid recipient address: %w", err))
	}
	from := &mail.Address{Name: s.from.Name, Address: s.from.Address}
	if m.Content.FromEmail != "" {
		a, err := mail.ParseAddress(m.Content.FromEmail)
		if err != nil {
			return nil, Permanent(fmt.Errorf("smtp: invalid from address %q: %w", m.Content.FromEmail, err))
		}
		from = a
		if m.Content.FromName != "" {
			from.Name = m.Content.FromName
		}
	}
	from.Name = oneLine(from.Name)

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	msg.ToMailAddress(to)
	msg.Subject(oneLine(m.Content.Subject))
	msg.SetMessageIDWithValue(messageID(m.ID, from.Address))
	msg.SetDate()
	plain, htmlBody := bodies(m.Content.Body)
	if m.Content.PlainText {
		plain, htmlBody = m.Content.Body, textToHTML(m.Content.Body)
	}
	msg.SetBodyString(gomail.TypeTextPlain, plain)
	msg.AddAlternativeString(gomail.TypeTextHTML, htmlBody)
	return msg, nil
}

// classify marks err permanent when the server gave a 5xx reply.
func (s *SMTPSender) classify(ctx context.Context, err error) error {
	if code := replyCode(err); code >= 500 && code <= 599 {
		return Permanent(err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (%w)", err, ctxErr)
	}
	return err
}

// replyCode is the SMTP reply code carried by err, 0 if none.
func replyCode(err error) int {
	var se *gomail.SendError
	if errors.As(err, &se) {
		if code := se.ErrorCode(); code != 0 {
			return code
		}
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// oneLine keeps header values on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// messageID is the Message-ID (without angle brackets) of the outbox
// message id: the same for every attempt, so clients can recognise a
// message sent twice after a crash.
func messageID(id, fromAddress string) string {
	left := id
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			left = hex.EncodeToString([]byte(id))
			break
		}
	}
	if left == "" || strings.HasPrefix(left, ".") || strings.HasSuffix(left, ".") || strings.Contains(left, "..") {
		left = "x" + hex.EncodeToString([]byte(id))
	}
	domain := "tessera"
	if at := strings.LastIndexByte(fromAddress, '@'); at >= 0 && domainRE.MatchString(fromAddress[at+1:]) {
		domain = strings.ToLower(fromAddress[at+1:])
	}
	return left + "@" + domain
}

var domainRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// htmlTagRE matches something that can only be an HTML tag.
var htmlTagRE = regexp.MustCompile(`(?i)</?[a-z][a-z0-9]*(?:\s[^<>]*)?/?>`)

// bodies returns the text/plain and text/html versions of a template body,
// which is either HTML or plain text.
func bodies(body string) (plain, htmlBody string) {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	if htmlTagRE.MatchString(body) {
		return htmlToText(body), body
	}
	return body, textToHTML(body)
}

// textToHTML escapes plain text for HTML, keeping its line breaks.
func textToHTML(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(html.EscapeString(s), "\n", "<br>\n")
}

// htmlToText renders a (small, template) HTML body as plain text: tags are
// removed, line and paragraph breaks kept, links written as "text (href)",
// entities decoded and the content of script, style and head dropped.
func htmlToText(s string) string {
	var (
		out       []byte
		skipUntil string // the closing tag ending script/style/head content
		href      string // of the open <a>
		linkStart = -1   // where the open <a>'s text starts in out
	)
	trimEnd := func() {
		for len(out) > 0 && out[len(out)-1] == ' ' {
			out = out[:len(out)-1]
		}
	}
	// breaks ensures out ends with n line breaks (nothing at the start).
	breaks := func(n int) {
		trimEnd()
		if len(out) == 0 {
			return
		}
		have := 0
		for have < len(out) && out[len(out)-1-have] == '\n' {
			have++
		}
		for ; have < n; have++ {
			out = append(out, '\n')
		}
	}
	text := func(t string) {
		if skipUntil != "" || t == "" {
			return
		}
		// HTML collapses white space runs into one space.
		var b strings.Builder
		space := false
		for _, r := range t {
			if isHTMLSpace(r) {
				space = true
				continue
			}
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteRune(r)
		}
		if space {
			b.WriteByte(' ')
		}
		u := html.UnescapeString(b.String())
		if strings.HasPrefix(u, " ") && (len(out) == 0 || out[len(out)-1] == '\n' || out[len(out)-1] == ' ') {
			u = u[1:]
		}
		out = append(out, u...)
	}

	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			text(s)
			break
		}
		text(s[:i])
		s = s[i:]
		if strings.HasPrefix(s, "<!--") {
			end := strings.Index(s[4:], "-->")
			if end < 0 {
				break
			}
			s = s[4+end+3:]
			continue
		}
		if strings.HasPrefix(s, "<!") || strings.HasPrefix(s, "<?") { // doctype, processing instruction
			end := strings.IndexByte(s, '>')
			if end < 0 {
				break
			}
			s = s[end+1:]
			continue
		}
		name, closing, attrs, rest, ok := parseTag(s)
		if !ok {
			text("<")
			s = s[1:]
			continue
		}
		s = rest
		if skipUntil != "" {
			if closing && name == skipUntil {
				skipUntil = ""
			}
			continue
		}
		switch name {
		case "script", "style", "head", "title":
			if !closing {
				skipUntil = name
			}
		case "br":
			trimEnd()
			out = append(out, '\n')
		case "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol":
			breaks(2)
		case "div", "tr", "section", "article", "header", "footer":
			breaks(1)
		case "li":
			breaks(1)
			if !closing {
				out = append(out, "- "...)
			}
		case "td", "th":
			if closing {
				out = append(out, ' ')
			}
		case "a":
			if !closing {
				href, linkStart = strings.TrimSpace(html.UnescapeString(attr(attrs, "href"))), len(out)
				continue
			}
			if linkStart < 0 {
				continue
			}
			label := strings.TrimSpace(string(out[linkStart:]))
			lower := strings.ToLower(href)
			switch {
			case href == "" || strings.HasPrefix(href, "#") || strings.HasPrefix(lower, "javascript:"):
			case label == "":
				out = append(out[:linkStart], href...)
			case href != label && href != "mailto:"+label:
				trimEnd()
				out = append(out, " ("+href+")"...)
			}
			href, linkStart = "", -1
		}
	}

	// Tidy: no spaces around line ends, at most one empty line in a row.
	lines := strings.Split(string(out), "\n")
	var b strings.Builder
	blank := 0
	for _, l := range lines {
		l = strings.Trim(l, " ")
		if l == "" {
			blank++
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n")
			if blank > 0 {
				b.WriteString("\n")
			}
		}
		blank = 0
		b.WriteString(l)
	}
	return b.String()
}

func isHTMLSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f'
}

// parseTag reads the tag at the start of s ("<name attrs>" or "</name>"),
// returning its lower-case name, whether it closes, its attribute text and
// what follows it. ok is false when s does not start with a tag.
func parseTag(s string) (name string, closing bool, attrs, rest string, ok bool) {
	i := 1
	if i < len(s) && s[i] == '/' {
		closing = true
		i++
	}
	start := i
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || i > start && s[i] >= '0' && s[i] <= '9') {
		i++
	}
	if i == start {
		return "", false, "", "", false
	}
	name = strings.ToLower(s[start:i])
	if i < len(s) && !isHTMLSpace(rune(s[i])) && s[i] != '/' && s[i] != '>' {
		return "", false, "", "", false
	}
	var quote byte
	for j := i; j < len(s); j++ {
		switch c := s[j]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return name, closing, s[i:j], s[j+1:], true
		}
	}
	return "", false, "", "", false
}

// attr returns the (raw) value of attribute key in a tag's attribute text.
func attr(attrs, key string) string {
	s := attrs
	for {
		s = strings.TrimLeft(s, " \t\n\r\f/")
		if s == "" {
			return ""
		}
		i := strings.IndexFunc(s, func(r rune) bool { return isHTMLSpace(r) || r == '=' || r == '/' })
		if i < 0 {
			i = len(s)
		}
		name := s[:i]
		s = strings.TrimLeft(s[i:], " \t\n\r\f")
		var value string
		if strings.HasPrefix(s, "=") {
			s = strings.TrimLeft(s[1:], " \t\n\r\f")
			if s != "" && (s[0] == '"' || s[0] == '\'') {
				end := strings.IndexByte(s[1:], s[0])
				if end < 0 {
					value, s = s[1:], ""
				} else {
					value, s = s[1:1+end], s[2+end:]
				}
			} else {
				end := strings.IndexFunc(s, isHTMLSpace)
				if end < 0 {
					end = len(s)
				}
				value, s = s[:end], s[end:]
			}
		}
		if strings.EqualFold(name, key) {
			return value
		}
	}
}
