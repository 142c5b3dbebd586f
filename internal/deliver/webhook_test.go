package deliver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// whTestSecret is the Standard Webhooks specification's example secret.
const whTestSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// whTime is the tests' clock: a whole second, as webhook timestamps are.
var whTime = time.Unix(1_800_000_000, 0).UTC()

// whVerify checks a Standard Webhooks request the way a receiver's library
// does, written here from the specification rather than shared with the
// sender: decode the whsec_ secret, recompute HMAC-SHA256 over
// "id.timestamp.body", accept if any of the space-separated v1 signatures
// matches, and refuse timestamps more than five minutes from now.
func whVerify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || tsText == "" || sigs == "" {
		return errors.New("missing webhook headers")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", tsText)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %d is %v off", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte("."))
	mac.Write([]byte(tsText))
	mac.Write([]byte("."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// whDelivery is one verified request.
type whDelivery struct {
	ID, Timestamp, Signature string
	Event                    struct {
		Type      string            `json:"type"`
		Timestamp string            `json:"timestamp"`
		Data      map[string]string `json:"data"`
	}
}

// whReceiver is an operator's endpoint: it verifies each request, records
// it, and keeps a view deduplicated by webhook-id, as the specification
// tells receivers to. answer, when set, may override the status after a
// request was verified and recorded (deliver is false for a request whose
// delivery must not count, such as one refused outright).
type whReceiver struct {
	t      *testing.T
	secret string
	now    func() time.Time
	srv    *httptest.Server
	answer func(d *whDelivery, seen int) (status int, deliver bool)

	mu       sync.Mutex
	requests []*whDelivery          // every verified request, in order
	byID     map[string]*whDelivery // deduplicated: the first delivery of each id
	problems []string
}

func newWHReceiver(t *testing.T, secret string, now func() time.Time) *whReceiver {
	r := &whReceiver{t: t, secret: secret, now: now, byID: map[string]*whDelivery{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *whReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	problem := func(format string, args ...any) {
		r.mu.Lock()
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
		r.mu.Unlock()
		http.Error(w, "bad request", http.StatusBadRequest)
	}
	if req.Method != http.MethodPost {
		problem("method %s", req.Method)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		problem("content type %q", ct)
		return
	}
	if err := whVerify(r.secret, req.Header, body, r.now()); err != nil {
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	d := &whDelivery{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"), Signature: req.Header.Get("webhook-signature")}
	if err := json.Unmarshal(body, &d.Event); err != nil {
		problem("body %s: %v", body, err)
		return
	}
	r.mu.Lock()
	seen := 0
	for _, p := range r.requests {
		if p.ID == d.ID {
			seen++
		}
	}
	status, deliver := http.StatusNoContent, true
	if r.answer != nil {
		status, deliver = r.answer(d, seen)
	}
	if deliver {
		r.requests = append(r.requests, d)
		if _, dup := r.byID[d.ID]; !dup {
			r.byID[d.ID] = d
		}
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

func (r *whReceiver) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		r.t.Errorf("webhook receiver: %s", p)
	}
}

func (r *whReceiver) all() []*whDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*whDelivery(nil), r.requests...)
}

func newTestWebhookSender(t *testing.T, url, secret string, now func() time.Time) *WebhookSender {
	t.Helper()
	s, err := NewWebhookSender(WebhookConfig{URL: url, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	s.now = now
	return s
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestWebhookSignatureTestVector(t *testing.T) {
	// The Standard Webhooks reference libraries' test vector: what a
	// receiver's library computes.
	key, err := ParseWebhookSecret(whTestSecret)
	if err != nil {
		t.Fatal(err)
	}
	got := webhookSignature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
}

func TestWebhookDelivery(t *testing.T) {
	clock := fixedClock(whTime)
	rcv := newWHReceiver(t, whTestSecret, clock)
	s := newTestWebhookSender(t, rcv.srv.URL+"/hooks/tessera?token=abc", whTestSecret, clock)
	m := &tessera.Outgoing{
		ID: "0b6f5c1e-8a43-4d2f-9e71-5c3a2b1d0e9f", Channel: tessera.ChannelEmail, To: "ada@example.com",
		Content: tessera.MessageContent{Subject: "Acme verification code", Body: "Your Acme verification code is 482913", FromEmail: "no-reply@acme.test", FromName: "Acme"},
	}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	rcv.check()
	got := rcv.all()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	d := got[0]
	if d.ID != m.ID || d.Timestamp != strconv.FormatInt(whTime.Unix(), 10) || !strings.HasPrefix(d.Signature, "v1,") {
		t.Errorf("headers id %q timestamp %q signature %q", d.ID, d.Timestamp, d.Signature)
	}
	if d.Event.Type != "message.send" || d.Event.Timestamp != whTime.Format(time.RFC3339) {
		t.Errorf("event type %q timestamp %q", d.Event.Type, d.Event.Timestamp)
	}
	want := map[string]string{
		"id": m.ID, "channel": "email", "to": "ada@example.com", "subject": "Acme verification code",
		"body": "Your Acme verification code is 482913", "fromEmail": "no-reply@acme.test", "fromName": "Acme",
	}
	if fmt.Sprint(d.Event.Data) != fmt.Sprint(want) {
		t.Errorf("data %v, want %v", d.Event.Data, want)
	}
}

func TestWebhookOmitsEmptyFields(t *testing.T) {
	clock := fixedClock(whTime)
	var raw []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	s := newTestWebhookSender(t, srv.URL, whTestSecret, clock)
	m := &tessera.Outgoing{ID: "a1", Channel: tessera.ChannelSMS, To: "+14155550123", Content: tessera.MessageContent{Body: "code 1"}}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	want := `{"type":"message.send","timestamp":"` + whTime.Format(time.RFC3339) + `","data":{"id":"a1","channel":"sms","to":"+14155550123","body":"code 1"}}`
	if string(raw) != want {
		t.Errorf("body\n%s\nwant\n%s", raw, want)
	}
}

func TestWebhookWrongSecretRejected(t *testing.T) {
	clock := fixedClock(whTime)
	rcv := newWHReceiver(t, NewWebhookSecret(), clock)
	s := newTestWebhookSender(t, rcv.srv.URL, whTestSecret, clock)
	err := s.Send(context.Background(), &tessera.Outgoing{ID: "m1", Channel: tessera.ChannelSMS, To: "+14155550123", Content: tessera.MessageContent{Body: "code 1"}})
	if err == nil || !strings.Contains(err.Error(), "401") || !IsPermanent(err) {
		t.Errorf("err = %v, want a permanent 401", err)
	}
	if n := len(rcv.all()); n != 0 {
		t.Errorf("%d deliveries accepted", n)
	}
}

// TestWebhookSignatureCoversEverything changes each signed part of a
// genuine request in turn; the receiver's check must refuse every one.
func TestWebhookSignatureCoversEverything(t *testing.T) {
	clock := fixedClock(whTime)
	var h http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	s := newTestWebhookSender(t, srv.URL, whTestSecret, clock)
	if err := s.Send(context.Background(), &tessera.Outgoing{ID: "m1", Channel: tessera.ChannelSMS, To: "+14155550123", Content: tessera.MessageContent{Body: "code 111111"}}); err != nil {
		t.Fatal(err)
	}
	if err := whVerify(whTestSecret, h, body, whTime); err != nil {
		t.Fatalf("genuine request: %v", err)
	}
	// Several signatures, as during a secret rotation: any may match.
	rotated := h.Clone()
	rotated.Set("webhook-signature", "v1,bm9wZQ== "+h.Get("webhook-signature"))
	if err := whVerify(whTestSecret, rotated, body, whTime); err != nil {
		t.Errorf("with an extra signature: %v", err)
	}
	tampered := func(name string, hh http.Header, b []byte, now time.Time) {
		if err := whVerify(whTestSecret, hh, b, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	tampered("other body", h, []byte(strings.Replace(string(body), "111111", "222222", 1)), whTime)
	other := h.Clone()
	other.Set("webhook-id", "m2")
	tampered("other id", other, body, whTime)
	other = h.Clone()
	other.Set("webhook-timestamp", strconv.FormatInt(whTime.Unix()+1, 10))
	tampered("other timestamp", other, body, whTime)
	tampered("six minutes late", h, body, whTime.Add(6*time.Minute))
	tampered("six minutes early", h, body, whTime.Add(-6*time.Minute))
}

func TestWebhookStatuses(t *testing.T) {
	for _, tc := range []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{200, true, false},
		{202, true, false},
		{204, true, false},
		{400, false, true},
		{404, false, true},
		{410, false, true},
		{408, false, false},
		{429, false, false},
		{500, false, false},
		{502, false, false},
		{503, false, false},
		{302, false, false},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			clock := fixedClock(whTime)
			rcv := newWHReceiver(t, whTestSecret, clock)
			rcv.answer = func(*whDelivery, int) (int, bool) { return tc.status, tc.ok }
			s := newTestWebhookSender(t, rcv.srv.URL, whTestSecret, clock)
			err := s.Send(context.Background(), &tessera.Outgoing{ID: "m1", Channel: tessera.ChannelSMS, To: "+14155550123", Content: tessera.MessageContent{Body: "code 987654"}})
			rcv.check()
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v (%v)", IsPermanent(err), tc.permanent, err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tc.status)) || strings.Contains(err.Error(), "987654") {
				t.Errorf("error %q: want the status, not the body", err)
			}
		})
	}
}

func TestWebhookReceiverDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hook?token=s3cr3t"
	srv.Close()
	s := newTestWebhookSender(t, url, whTestSecret, fixedClock(whTime))
	err := s.Send(context.Background(), &tessera.Outgoing{ID: "m1", Channel: tessera.ChannelSMS, To: "+14155550123", Content: tessera.MessageContent{Body: "code 987654"}})
	if err == nil || IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "987654") {
		t.Errorf("error %q leaks the URL's token or the body", err)
	}
}

func TestNewWebhookSenderValidation(t *testing.T) {
	b64 := func(n int) string {
		k := make([]byte, n)
		for i := range k {
			k[i] = byte(i)
		}
		return "whsec_" + base64.StdEncoding.EncodeToString(k)
	}
	for _, tc := range []struct {
		name, url, secret string
		want              string // "" for valid
	}{
		{"spec example", "https://hooks.example.com/tessera", whTestSecret, ""},
		{"24 bytes", "https://hooks.example.com/", b64(24), ""},
		{"64 bytes", "http://127.0.0.1:9000/hook", b64(64), ""},
		{"23 bytes", "https://hooks.example.com/", b64(23), "24 to 64 bytes"},
		{"65 bytes", "https://hooks.example.com/", b64(65), "24 to 64 bytes"},
		{"no prefix", "https://hooks.example.com/", strings.TrimPrefix(whTestSecret, "whsec_"), "whsec_"},
		{"not base64", "https://hooks.example.com/", "whsec_not*base64!", "base64"},
		{"empty secret", "https://hooks.example.com/", "", "whsec_"},
		{"relative URL", "/hook", whTestSecret, "URL"},
		{"other scheme", "ftp://hooks.example.com/", whTestSecret, "URL"},
		{"empty URL", "", whTestSecret, "URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewWebhookSender(WebhookConfig{URL: tc.url, Secret: tc.secret})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.client.Timeout == 0 {
					t.Error("the default client has no timeout")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNewWebhookSecret(t *testing.T) {
	a, b := NewWebhookSecret(), NewWebhookSecret()
	if a == b {
		t.Error("two secrets are equal")
	}
	for _, s := range []string{a, b} {
		key, err := ParseWebhookSecret(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if len(key) != 32 || webhookSecretPrefix+base64.StdEncoding.EncodeToString(key) != s {
			t.Errorf("%q does not round-trip", s)
		}
		// And a receiver holding it verifies what a sender holding it signs.
		clock := fixedClock(whTime)
		rcv := newWHReceiver(t, s, clock)
		if err := newTestWebhookSender(t, rcv.srv.URL, s, clock).Send(context.Background(), &tessera.Outgoing{ID: "m1", Channel: tessera.ChannelSMS, To: "+14155550123", Content: tessera.MessageContent{Body: "x"}}); err != nil {
			t.Error(err)
		}
	}
}
