package deliver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
)

var _ tessera.Sender = (*WebhookSender)(nil)

// webhookSecretPrefix starts a secret in the Standard Webhooks format.
const webhookSecretPrefix = "whsec_"

// The key sizes the Standard Webhooks specification allows.
const (
	minWebhookKey = 24
	maxWebhookKey = 64
)

// WebhookConfig configures a WebhookSender.
type WebhookConfig struct {
	URL string
	// Secret is "whsec_" followed by the base64 of a 24- to 64-byte key,
	// the Standard Webhooks format (see NewWebhookSecret).
	Secret string
	// HTTPClient defaults to a client with a 30-second timeout that does
	// not follow redirects.
	HTTPClient *http.Client
}

// WebhookSender hands messages to the operator's own endpoint, which
// delivers them by whatever means it likes. Requests are signed as
// Standard Webhooks (https://www.standardwebhooks.com), so any of that
// specification's libraries can verify them. The webhook-id header is the
// outbox id, the same on every retry: it is the receiver's key to drop the
// duplicates that at-least-once delivery produces.
type WebhookSender struct {
	url    string
	key    []byte
	client *http.Client
	now    func() time.Time
}

// NewWebhookSender checks cfg and returns a sender.
func NewWebhookSender(cfg WebhookConfig) (*WebhookSender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("webhook: the URL must be an absolute http(s) URL")
	}
	key, err := ParseWebhookSecret(cfg.Secret)
	if err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout: 30 * time.Second,
			// A redirect would resend a signed message somewhere the
			// operator did not configure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &WebhookSender{url: cfg.URL, key: key, client: client, now: time.Now}, nil
}

// ParseWebhookSecret checks a secret's form ("whsec_" and the base64 of a
// 24- to 64-byte random key) and returns the key.
func ParseWebhookSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, webhookSecretPrefix)
	if !ok {
		return nil, errors.New(`webhook: the secret must start with "whsec_" (make one with NewWebhookSecret)`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New(`webhook: the secret must be "whsec_" followed by base64`)
	}
	if len(key) < minWebhookKey || len(key) > maxWebhookKey {
		return nil, fmt.Errorf("webhook: the secret's key must be %d to %d bytes, got %d", minWebhookKey, maxWebhookKey, len(key))
	}
	if err := secret.CheckRandom(key); err != nil {
		return nil, fmt.Errorf("webhook: the secret's %w", err)
	}
	return key, nil
}

// NewWebhookSecret returns a fresh secret of 32 random bytes in the
// Standard Webhooks format, "whsec_" and base64.
func NewWebhookSecret() string {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return webhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// webhookSignature is a Standard Webhooks signature: "v1," and the base64
// of HMAC-SHA256 over "id.timestamp.body".
func webhookSignature(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// webhookEvent is the JSON body of a webhook request.
type webhookEvent struct {
	Type      string      `json:"type"`
	Timestamp string      `json:"timestamp"`
	Data      webhookData `json:"data"`
}

type webhookData struct {
	ID        string `json:"id"`
	Channel   string `json:"channel"`
	To        string `json:"to"`
	Subject   string `json:"subject,omitempty"`
	Body      string `json:"body"`
	FromEmail string `json:"fromEmail,omitempty"`
	FromName  string `json:"fromName,omitempty"`
}

// Send posts the message as a "message.send" event. A 2xx answer is
// success; a 4xx other than 408 and 429 is permanent; anything else is
// retried.
func (s *WebhookSender) Send(ctx context.Context, m *tessera.Outgoing) error {
	now := s.now()
	body, err := json.Marshal(webhookEvent{
		Type:      "message.send",
		Timestamp: now.UTC().Format(time.RFC3339),
		Data: webhookData{
			ID: m.ID, Channel: string(m.Channel), To: m.To,
			Subject: m.Content.Subject, Body: m.Content.Body,
			FromEmail: m.Content.FromEmail, FromName: m.Content.FromName,
		},
	})
	if err != nil {
		return Permanent(fmt.Errorf("webhook: encode: %w", err))
	}
	return s.post(ctx, m.ID, now, body)
}

// post sends body signed as a Standard Webhook with the given id and
// the timestamp of now.
func (s *WebhookSender) post(ctx context.Context, id string, now time.Time, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook: %w", err))
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", webhookSignature(s.key, id, ts, body))
	resp, err := s.client.Do(req)
	if err != nil {
		// The URL may carry a token in its query: name only the host.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook: post to %s: %w", req.URL.Host, err)
	}
	// Drain a little so the connection can be reused; the answer's text
	// is not kept, as a receiver might echo the message back.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	sendErr := fmt.Errorf("webhook: %s answered HTTP %d %s", req.URL.Host, resp.StatusCode, http.StatusText(resp.StatusCode))
	if httpStatusPermanent(resp.StatusCode) {
		return Permanent(sendErr)
	}
	return sendErr
}

var _ tessera.Sender = (*EventSender)(nil)

// EventSender sends the operator events of the events channel
// (TESSERA_EVENTS_URL): each event's JSON, as verify.Events wrote it, is
// posted as it is, signed like WebhookSender's requests. The webhook-id
// header is the event's id, the same on every retry and in the body.
type EventSender struct{ hook *WebhookSender }

// NewEventSender checks cfg (as NewWebhookSender does) and returns a
// sender.
func NewEventSender(cfg WebhookConfig) (*EventSender, error) {
	hook, err := NewWebhookSender(cfg)
	if err != nil {
		return nil, err
	}
	return &EventSender{hook: hook}, nil
}

// Send posts the event m carries. A 2xx answer is success; anything else
// is retried, a 4xx too: an endpoint that answers 404 or 401 during a
// deployment or a secret rotation must not lose events. The worker gives
// an event up only when it is older than its EventsMaxAge.
func (s *EventSender) Send(ctx context.Context, m *tessera.Outgoing) error {
	if m.Channel != tessera.ChannelEvents || !json.Valid([]byte(m.Content.Body)) {
		return Permanent(fmt.Errorf("events: message %s is not an event", m.ID))
	}
	err := s.hook.post(ctx, m.ID, s.hook.now(), []byte(m.Content.Body))
	var p permanentError
	if errors.As(err, &p) {
		return p.err
	}
	return err
}
