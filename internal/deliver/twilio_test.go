package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tessera-id/tessera"
)

const (
	twTestSID   = "AC0123456789abcdef0123456789abcdef"
	twTestToken = "twilio-auth-token"
	twTestFrom  = "+14155550100"
	twTestMSSID = "MG0123456789abcdef0123456789abcdef"
)

// twilioRequest is one request the fake Twilio received, already checked.
type twilioRequest struct {
	To, Body, From, MessagingServiceSid, StatusCallback string
}

// fakeTwilio behaves like Twilio's Messages API: it checks every request
// as Twilio would and answers with Twilio's JSON. respond, when set,
// picks the answer for the n-th request (from 0); nil is success.
type fakeTwilio struct {
	t       *testing.T
	srv     *httptest.Server
	respond func(n int, r twilioRequest) (status int, body string)

	mu       sync.Mutex
	requests int
	accepted []twilioRequest
	problems []string
}

func newFakeTwilio(t *testing.T) *fakeTwilio {
	f := &fakeTwilio{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// problem records a request Twilio would not have taken, and answers it
// the way Twilio does, so the test fails both here and at the sender.
func (f *fakeTwilio) problem(w http.ResponseWriter, format string, args ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	twilioAnswer(w, 400, `{"code": 21601, "message": "bad request in test", "more_info": "https://www.twilio.com/docs/errors/21601", "status": 400}`)
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	wantPath := "/2010-04-01/Accounts/" + twTestSID + "/Messages.json"
	if r.Method != http.MethodPost || r.URL.Path != wantPath {
		f.problem(w, "request %s %s, want POST %s", r.Method, r.URL.Path, wantPath)
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != twTestSID || pass != twTestToken {
		f.problem(w, "basic auth %q:%q (%v)", user, pass, ok)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		f.problem(w, "content type %q", ct)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.problem(w, "form: %v", err)
		return
	}
	for k := range r.PostForm {
		switch k {
		case "To", "Body", "From", "MessagingServiceSid", "StatusCallback":
		default:
			f.problem(w, "unexpected form field %q", k)
			return
		}
	}
	req := twilioRequest{
		To: r.PostForm.Get("To"), Body: r.PostForm.Get("Body"),
		From: r.PostForm.Get("From"), MessagingServiceSid: r.PostForm.Get("MessagingServiceSid"),
		StatusCallback: r.PostForm.Get("StatusCallback"),
	}
	if cb := req.StatusCallback; cb != "" {
		if u, err := url.Parse(cb); err != nil || u.Scheme == "" || u.Host == "" {
			f.problem(w, "StatusCallback %q is not an absolute URL", cb)
			return
		}
	}
	if req.To == "" || req.Body == "" {
		f.problem(w, "To %q and Body %q are required", req.To, req.Body)
		return
	}
	if (req.From == "") == (req.MessagingServiceSid == "") {
		f.problem(w, "want exactly one of From %q and MessagingServiceSid %q", req.From, req.MessagingServiceSid)
		return
	}

	f.mu.Lock()
	n := f.requests
	f.requests++
	f.mu.Unlock()
	if f.respond != nil {
		if status, body := f.respond(n, req); status != 0 {
			twilioAnswer(w, status, body)
			return
		}
	}
	f.mu.Lock()
	f.accepted = append(f.accepted, req)
	sid := fmt.Sprintf("SM%032x", len(f.accepted))
	f.mu.Unlock()
	from, mg := "null", "null"
	if req.From != "" {
		from = fmt.Sprintf("%q", req.From)
	}
	if req.MessagingServiceSid != "" {
		mg = fmt.Sprintf("%q", req.MessagingServiceSid)
	}
	twilioAnswer(w, http.StatusCreated, fmt.Sprintf(`{
  "account_sid": %[1]q,
  "api_version": "2010-04-01",
  "body": %[2]q,
  "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
  "date_sent": null,
  "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
  "direction": "outbound-api",
  "error_code": null,
  "error_message": null,
  "from": %[3]s,
  "messaging_service_sid": %[4]s,
  "num_media": "0",
  "num_segments": "1",
  "price": null,
  "price_unit": "USD",
  "sid": %[5]q,
  "status": "queued",
  "subresource_uris": {"media": "/2010-04-01/Accounts/%[1]s/Messages/%[5]s/Media.json"},
  "to": %[6]q,
  "uri": "/2010-04-01/Accounts/%[1]s/Messages/%[5]s.json"
}`, twTestSID, req.Body, from, mg, sid, req.To))
}

func twilioAnswer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (f *fakeTwilio) check() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		f.t.Errorf("fake twilio: %s", p)
	}
}

func (f *fakeTwilio) acceptedRequests() []twilioRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]twilioRequest(nil), f.accepted...)
}

func (f *fakeTwilio) sender(t *testing.T, mutate func(*TwilioConfig)) *TwilioSender {
	t.Helper()
	cfg := TwilioConfig{AccountSID: twTestSID, AuthToken: twTestToken, From: twTestFrom, BaseURL: f.srv.URL, HTTPClient: f.srv.Client()}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := NewTwilioSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func smsMessage(to, body string) *tessera.Outgoing {
	return &tessera.Outgoing{ID: "6f1c8a52-0d7e-4c43-9a57-3b1e2f7d9a10", Channel: tessera.ChannelSMS, To: to, Content: tessera.MessageContent{Body: body}}
}

func TestTwilioSendFrom(t *testing.T) {
	f := newFakeTwilio(t)
	s := f.sender(t, nil)
	if err := s.Send(context.Background(), smsMessage("+14155550123", "Your code is 482913")); err != nil {
		t.Fatal(err)
	}
	f.check()
	got := f.acceptedRequests()
	want := []twilioRequest{{To: "+14155550123", Body: "Your code is 482913", From: twTestFrom}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("accepted %+v, want %+v", got, want)
	}
}

func TestTwilioSendMessagingService(t *testing.T) {
	f := newFakeTwilio(t)
	s := f.sender(t, func(c *TwilioConfig) { c.From, c.MessagingServiceSID = "", twTestMSSID })
	if err := s.Send(context.Background(), smsMessage("+14155550123", "Your code is 482913")); err != nil {
		t.Fatal(err)
	}
	f.check()
	got := f.acceptedRequests()
	want := []twilioRequest{{To: "+14155550123", Body: "Your code is 482913", MessagingServiceSid: twTestMSSID}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("accepted %+v, want %+v", got, want)
	}
}

func TestTwilioBaseURLTrailingSlash(t *testing.T) {
	f := newFakeTwilio(t)
	s := f.sender(t, func(c *TwilioConfig) { c.BaseURL += "/" })
	if err := s.Send(context.Background(), smsMessage("+14155550123", "code 1")); err != nil {
		t.Fatal(err)
	}
	f.check()
}

func TestTwilioErrors(t *testing.T) {
	const body = "Your code is 739164"
	for _, tc := range []struct {
		name      string
		status    int
		answer    string
		permanent bool
		want      []string // in the error text
	}{
		{
			name: "invalid To", status: 400, permanent: true,
			answer: `{"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}`,
			want:   []string{"twilio: 21211: The 'To' number +1555 is not a valid phone number. (HTTP 400)"},
		},
		{
			name: "unverified number on a trial account", status: 400, permanent: true,
			answer: `{"code": 21608, "message": "The number +14155550123 is unverified. Trial accounts cannot send messages to unverified numbers; verify +14155550123 at twilio.com/user/account/phone-numbers/verified, or purchase a Twilio number to send messages to unverified numbers", "more_info": "https://www.twilio.com/docs/errors/21608", "status": 400}`,
			want:   []string{"twilio: 21608: The number +14155550123 is unverified.", "(HTTP 400)"},
		},
		{
			name: "bad credentials", status: 401, permanent: true,
			answer: `{"code": 20003, "detail": "Your AccountSid or AuthToken was incorrect.", "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}`,
			want:   []string{"twilio: 20003: Authenticate (HTTP 401)"},
		},
		{
			name: "rate limited", status: 429, permanent: false,
			answer: `{"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}`,
			want:   []string{"twilio: 20429: Too Many Requests (HTTP 429)"},
		},
		{
			name: "service unavailable", status: 503, permanent: false,
			answer: `{"code": 20503, "message": "Service is unavailable. Please try again", "more_info": "https://www.twilio.com/docs/errors/20503", "status": 503}`,
			want:   []string{"twilio: 20503: Service is unavailable. Please try again (HTTP 503)"},
		},
		{
			name: "gateway error page", status: 502, permanent: false,
			answer: `<html><body>502 Bad Gateway</body></html>`,
			want:   []string{"twilio: HTTP 502 Bad Gateway"},
		},
		{
			name: "request timeout", status: 408, permanent: false,
			answer: ``,
			want:   []string{"HTTP 408"},
		},
		{
			name: "error echoing the body", status: 400, permanent: true,
			answer: `{"code": 30007, "message": "Message filtered: Your code is 739164", "more_info": "https://www.twilio.com/docs/errors/30007", "status": 400}`,
			want:   []string{"twilio: 30007: Message filtered: [body] (HTTP 400)"},
		},
		{
			name: "success without a sid", status: 201, permanent: false,
			answer: `{"status": "queued"}`,
			want:   []string{"without a sid"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTwilio(t)
			f.respond = func(int, twilioRequest) (int, string) { return tc.status, tc.answer }
			err := f.sender(t, nil).Send(context.Background(), smsMessage("+14155550123", body))
			f.check()
			if err == nil {
				t.Fatal("no error")
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v (%v)", IsPermanent(err), tc.permanent, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "739164") {
				t.Errorf("error %q leaks the message body", err)
			}
		})
	}
}

func TestTwilioServerDown(t *testing.T) {
	f := newFakeTwilio(t)
	s := f.sender(t, nil)
	f.srv.Close()
	err := s.Send(context.Background(), smsMessage("+14155550123", "Your code is 739164"))
	if err == nil || IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "739164") || strings.Contains(err.Error(), twTestToken) {
		t.Errorf("error %q leaks the body or the token", err)
	}
}

func TestTwilioCanceledContext(t *testing.T) {
	f := newFakeTwilio(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := f.sender(t, nil).Send(ctx, smsMessage("+14155550123", "code"))
	if err == nil || IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
}

func TestTwilioRejectsEmail(t *testing.T) {
	f := newFakeTwilio(t)
	m := smsMessage("someone@example.com", "code")
	m.Channel = tessera.ChannelEmail
	if err := f.sender(t, nil).Send(context.Background(), m); !IsPermanent(err) {
		t.Errorf("err = %v, want permanent", err)
	}
	if n := len(f.acceptedRequests()); n != 0 {
		t.Errorf("%d requests reached Twilio", n)
	}
}

func TestNewTwilioSenderValidation(t *testing.T) {
	good := TwilioConfig{AccountSID: twTestSID, AuthToken: twTestToken, From: twTestFrom}
	for _, tc := range []struct {
		name   string
		mutate func(*TwilioConfig)
		want   string // "" for valid
	}{
		{"from", func(*TwilioConfig) {}, ""},
		{"messaging service", func(c *TwilioConfig) { c.From, c.MessagingServiceSID = "", twTestMSSID }, ""},
		{"custom base URL", func(c *TwilioConfig) { c.BaseURL = "http://127.0.0.1:8080" }, ""},
		{"no account SID", func(c *TwilioConfig) { c.AccountSID = "" }, "account SID"},
		{"API key SID instead of account", func(c *TwilioConfig) { c.AccountSID = "SK0123456789abcdef0123456789abcdef" }, "account SID"},
		{"no token", func(c *TwilioConfig) { c.AuthToken = "" }, "auth token"},
		{"no sender", func(c *TwilioConfig) { c.From = "" }, "From"},
		{"both senders", func(c *TwilioConfig) { c.MessagingServiceSID = twTestMSSID }, "not both"},
		{"bad messaging service SID", func(c *TwilioConfig) { c.From, c.MessagingServiceSID = "", "PN123" }, "MG"},
		{"bad base URL", func(c *TwilioConfig) { c.BaseURL = "api.twilio.com" }, "base URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mutate(&cfg)
			s, err := NewTwilioSender(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.client == nil || s.client.Timeout == 0 {
					t.Error("the default client has no timeout")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), twTestToken) {
				t.Errorf("error %q leaks the token", err)
			}
		})
	}
}

// TestTwilioSuccessBodyIsJSON keeps the fake's success answer honest: it
// must be the JSON Twilio sends, with an SM sid and status queued.
func TestTwilioSuccessBodyIsJSON(t *testing.T) {
	f := newFakeTwilio(t)
	form := strings.NewReader("To=%2B14155550123&Body=hi&From=%2B14155550100")
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/2010-04-01/Accounts/"+twTestSID+"/Messages.json", form)
	req.SetBasicAuth(twTestSID, twTestToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		SID, Status, To, From string
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || !strings.HasPrefix(got.SID, "SM") || got.Status != "queued" || got.To != "+14155550123" || got.From != "+14155550100" {
		t.Errorf("answer %d %+v", resp.StatusCode, got)
	}
	f.check()
}

// sidRecorder is a tessera.DeliveryStore that keeps the SIDs it is told.
type sidRecorder struct {
	tessera.DeliveryStore
	mu   sync.Mutex
	sids map[string]string
}

func (s *sidRecorder) SetProviderID(_ context.Context, id, sid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sids[id] = sid
	return nil
}

func TestTwilioStatusCallbackAndSID(t *testing.T) {
	f := newFakeTwilio(t)
	rec := &sidRecorder{sids: map[string]string{}}
	s := f.sender(t, func(c *TwilioConfig) {
		c.StatusCallback = "https://tessera.example" + TwilioStatusPath
		c.Deliveries = rec
	})
	m := smsMessage("+14155550123", "Your code is 482913")
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	f.check()
	got := f.acceptedRequests()
	want := "https://tessera.example/webhooks/twilio/status?message=" + m.ID
	if len(got) != 1 || got[0].StatusCallback != want {
		t.Fatalf("accepted %+v, want StatusCallback %q", got, want)
	}
	if sid := rec.sids[m.ID]; sid != fmt.Sprintf("SM%032x", 1) {
		t.Errorf("recorded SID %q", sid)
	}

	// Without a public URL, no callback is asked for.
	f2 := newFakeTwilio(t)
	if err := f2.sender(t, nil).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := f2.acceptedRequests(); len(got) != 1 || got[0].StatusCallback != "" {
		t.Errorf("accepted %+v, want no StatusCallback", got)
	}

	for _, bad := range []string{"ftp://x/y", "https://x/y?a=1", "/relative"} {
		if _, err := NewTwilioSender(TwilioConfig{AccountSID: twTestSID, AuthToken: twTestToken, From: twTestFrom, StatusCallback: bad}); err == nil {
			t.Errorf("status callback %q accepted", bad)
		}
	}
}

// TestTwilioSignature checks the algorithm against the example of
// Twilio's own request validators (auth token 12345).
func TestTwilioSignature(t *testing.T) {
	u := "https://mycompany.com/myapp.php?foo=1&bar=2"
	params := url.Values{
		"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675309"}, "Digits": {"1234"},
		"From": {"+14158675309"}, "To": {"+18005551212"},
	}
	const want = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
	if got := TwilioSignature("12345", u, params); got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
	if !VerifyTwilioSignature("12345", u, params, want) {
		t.Error("the documented signature does not verify")
	}
	tampered := url.Values{}
	for k, v := range params {
		tampered[k] = v
	}
	tampered.Set("Digits", "9999")
	for name, ok := range map[string]bool{
		"other token":  VerifyTwilioSignature("54321", u, params, want),
		"other URL":    VerifyTwilioSignature("12345", u+"&x=1", params, want),
		"other params": VerifyTwilioSignature("12345", u, tampered, want),
		"no signature": VerifyTwilioSignature("12345", u, params, ""),
		"no token":     VerifyTwilioSignature("", u, params, TwilioSignature("", u, params)),
		"garbage":      VerifyTwilioSignature("12345", u, params, "not base64 at all"),
	} {
		if ok {
			t.Errorf("%s: verified", name)
		}
	}
}
