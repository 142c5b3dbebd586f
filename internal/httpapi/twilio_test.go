package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/deliver"
)

const (
	cbAccountSID = "AC0123456789abcdef0123456789abcdef"
	cbAuthToken  = "twilio-auth-token-for-callbacks"
	cbPublicURL  = "https://tessera.example.com"
)

// twilioSMS is one message the fake Twilio accepted.
type twilioSMS struct{ To, Body, StatusCallback, SID string }

// fakeTwilioAPI is a minimal Twilio Messages API: it keeps what it accepts
// and answers with a message SID, as Twilio does.
type fakeTwilioAPI struct {
	srv  *httptest.Server
	mu   sync.Mutex
	sent []twilioSMS
}

func newFakeTwilioAPI(t *testing.T) *fakeTwilioAPI {
	f := &fakeTwilioAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, _ := r.BasicAuth(); user != cbAccountSID || pass != cbAuthToken || r.ParseForm() != nil {
			http.Error(w, `{"code":20003,"message":"Authenticate","status":401}`, http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		sid := fmt.Sprintf("SM%032x", len(f.sent)+1)
		f.sent = append(f.sent, twilioSMS{To: r.PostForm.Get("To"), Body: r.PostForm.Get("Body"), StatusCallback: r.PostForm.Get("StatusCallback"), SID: sid})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sid":%q,"status":"queued"}`, sid)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTwilioAPI) last(t *testing.T) twilioSMS {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sent) == 0 {
		t.Fatal("Twilio got no message")
	}
	return f.sent[len(f.sent)-1]
}

// newTwilioEnv is an env whose SMS go through the real Twilio sender to a
// fake Twilio, asking for status callbacks at cbPublicURL.
func newTwilioEnv(t *testing.T, store app.Storage) (*env, *fakeTwilioAPI) {
	return newTwilioEnvWith(t, store)
}

// newTwilioEnvWith is newTwilioEnv with more adjustments of the options.
func newTwilioEnvWith(t *testing.T, store app.Storage, more ...func(*app.Options)) (*env, *fakeTwilioAPI) {
	f := newFakeTwilioAPI(t)
	e := newEnvWith(t, store, func(o *app.Options) {
		sms, err := deliver.NewTwilioSender(deliver.TwilioConfig{
			AccountSID: cbAccountSID, AuthToken: cbAuthToken, From: "+14155550100",
			BaseURL: f.srv.URL, HTTPClient: f.srv.Client(),
			StatusCallback: cbPublicURL + deliver.TwilioStatusPath, Deliveries: o.Store.(tessera.DeliveryStore),
		})
		if err != nil {
			t.Fatal(err)
		}
		o.Senders[tessera.ChannelSMS] = sms
		o.PublicURL, o.TwilioAuthToken = cbPublicURL, cbAuthToken
		for _, adjust := range more {
			adjust(o)
		}
	})
	return e, f
}

// postForm posts a form to the server at the path and query of target (a
// URL under cbPublicURL), with the headers; the exchange is checked
// against the OpenAPI document like any other.
func (e *env) postForm(target string, form url.Values, headers map[string]string) (int, string) {
	e.t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		e.t.Fatal(err)
	}
	req, err := http.NewRequest("POST", e.srv.URL+u.RequestURI(), strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if msg, found := e.violations.LoadAndDelete(res.Header.Get("X-Request-Id")); found {
		e.t.Fatalf("%s", msg)
	}
	return res.StatusCode, string(raw)
}

// statusCallback is the form Twilio posts for a message.
func statusCallback(sid, status, errorCode string) url.Values {
	f := url.Values{
		"AccountSid": {cbAccountSID}, "MessageSid": {sid}, "SmsSid": {sid}, "SmsStatus": {status},
		"MessageStatus": {status}, "To": {"+14155552671"}, "From": {"+14155550100"}, "ApiVersion": {"2010-04-01"},
	}
	if errorCode != "" {
		f.Set("ErrorCode", errorCode)
	}
	return f
}

func (e *env) deliveryOf(id string) map[string]any {
	e.t.Helper()
	d, _ := e.do("GET", "/methods/phone/verifiers/"+id, nil).want(e.t, 200).data()["delivery"].(map[string]any)
	if d == nil {
		e.t.Fatal("GET shows no delivery")
	}
	return d
}

func (e *env) clientID(name string) string {
	e.t.Helper()
	cs, err := e.store.Clients(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == name {
			return c.ID
		}
	}
	e.t.Fatalf("no client %s", name)
	return ""
}

func TestTwilioStatusCallbackDelivered(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			e, tw := newTwilioEnv(t, s.open(t))
			id := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200).str("verificationId")
			e.deliver()
			sms := tw.last(t)
			if !strings.HasPrefix(sms.StatusCallback, cbPublicURL+"/webhooks/twilio/status?message=") {
				t.Fatalf("StatusCallback %q", sms.StatusCallback)
			}
			if d := e.deliveryOf(id); d["status"] != "sent" || d["deliveryStatus"] != nil {
				t.Fatalf("before any callback: %v", d)
			}

			// Intermediate states are acknowledged and change nothing.
			form := statusCallback(sms.SID, "sent", "")
			if st, body := e.postForm(sms.StatusCallback, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature(cbAuthToken, sms.StatusCallback, form)}); st != 204 {
				t.Fatalf("sent callback: %d %s", st, body)
			}
			if d := e.deliveryOf(id); d["deliveryStatus"] != nil {
				t.Fatalf("after sent: %v", d)
			}

			form = statusCallback(sms.SID, "delivered", "")
			if st, body := e.postForm(sms.StatusCallback, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature(cbAuthToken, sms.StatusCallback, form)}); st != 204 {
				t.Fatalf("delivered callback: %d %s", st, body)
			}
			d := e.deliveryOf(id)
			if d["deliveryStatus"] != "delivered" || d["deliveredAt"] == nil || d["providerError"] != nil {
				t.Fatalf("after delivered: %v", d)
			}
			// A later failure report does not undo a delivery.
			form = statusCallback(sms.SID, "failed", "30008")
			if st, _ := e.postForm(sms.StatusCallback, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature(cbAuthToken, sms.StatusCallback, form)}); st != 204 {
				t.Fatalf("late failed callback: %d", st)
			}
			if d := e.deliveryOf(id); d["deliveryStatus"] != "delivered" {
				t.Fatalf("after a late failure: %v", d)
			}

			// Validated after delivery: a conversion, recorded once.
			code := sixDigits.FindString(sms.Body)
			e.do("POST", "/methods/phone/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
			msg, err := e.store.MessageForVerification(context.Background(), e.clientID("test-client"), id)
			if err != nil {
				t.Fatal(err)
			}
			if msg.ProviderID != sms.SID || msg.DeliveryStatus != tessera.DeliveryDelivered || msg.ConvertedAt.IsZero() {
				t.Fatalf("stored message %+v", msg)
			}
			res, err := http.Get(e.srv.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(res.Body)
			res.Body.Close()
			for _, want := range []string{`tessera_verification_conversions_total{channel="sms"} 1`, `tessera_delivery_reports_total{channel="sms",status="delivered"} 1`} {
				if !strings.Contains(string(metrics), want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
		})
	}
}

func TestTwilioStatusCallbackUndelivered(t *testing.T) {
	onEachStoreWith(t, newTwilioEnv, func(t *testing.T, e *env, tw *fakeTwilioAPI) {
		id := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200).str("verificationId")
		e.deliver()
		sms := tw.last(t)
		form := statusCallback(sms.SID, "undelivered", "30003")
		if st, body := e.postForm(sms.StatusCallback, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature(cbAuthToken, sms.StatusCallback, form)}); st != 204 {
			t.Fatalf("undelivered callback: %d %s", st, body)
		}
		d := e.deliveryOf(id)
		if d["deliveryStatus"] != "undelivered" || d["providerError"] != "30003" || d["deliveredAt"] != nil {
			t.Fatalf("after undelivered: %v", d)
		}
		// Validated without a delivery report: no conversion.
		e.do("POST", "/methods/phone/verifiers/"+id+"/actions/validate", map[string]any{"code": sixDigits.FindString(sms.Body)}).want(t, 200)
		msg, err := e.store.MessageForVerification(context.Background(), e.clientID("test-client"), id)
		if err != nil || !msg.ConvertedAt.IsZero() {
			t.Fatalf("stored message %+v, %v", msg, err)
		}
	})
}

// TestTwilioStatusCallbackForged: a request without Twilio's signature of
// exactly this URL and these parameters is 403 and changes nothing.
func TestTwilioStatusCallbackForged(t *testing.T) {
	onEachStoreWith(t, newTwilioEnv, func(t *testing.T, e *env, tw *fakeTwilioAPI) {
		id := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200).str("verificationId")
		e.deliver()
		sms := tw.last(t)
		before := e.deliveryOf(id)
		form := statusCallback(sms.SID, "failed", "30007")
		other := url.Values{}
		for k, v := range form {
			other[k] = v
		}
		other.Set("ErrorCode", "30008")
		for name, sig := range map[string]string{
			"missing":       "",
			"forged":        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
			"other token":   deliver.TwilioSignature("another-auth-token", sms.StatusCallback, form),
			"wrong URL":     deliver.TwilioSignature(cbAuthToken, "https://evil.example.com/webhooks/twilio/status?message="+url.QueryEscape(strings.SplitN(sms.StatusCallback, "=", 2)[1]), form),
			"other message": deliver.TwilioSignature(cbAuthToken, cbPublicURL+deliver.TwilioStatusPath+"?message=00000000-0000-0000-0000-000000000000", form),
			"other params":  deliver.TwilioSignature(cbAuthToken, sms.StatusCallback, other),
		} {
			h := map[string]string{}
			if sig != "" {
				h["X-Twilio-Signature"] = sig
			}
			if st, body := e.postForm(sms.StatusCallback, form, h); st != 403 || !strings.Contains(body, `"forbidden"`) {
				t.Errorf("%s signature: %d %s, want 403", name, st, body)
			}
		}
		after := e.deliveryOf(id)
		if b, _ := json.Marshal(before); string(b) != mustJSON(t, after) {
			t.Fatalf("delivery changed: %v → %v", before, after)
		}
		msg, err := e.store.MessageForVerification(context.Background(), e.clientID("test-client"), id)
		if err != nil || msg.DeliveryStatus != "" || msg.ProviderError != "" {
			t.Fatalf("stored message %+v, %v", msg, err)
		}
	})
}

// TestTwilioStatusCallbackNotConfigured: without an auth token and public
// URL the route is 404, signed or not.
func TestTwilioStatusCallbackNotConfigured(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	target := cbPublicURL + deliver.TwilioStatusPath + "?message=x"
	form := statusCallback("SM1", "delivered", "")
	if st, body := e.postForm(target, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature("", target, form)}); st != 404 {
		t.Fatalf("%d %s, want 404", st, body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// onEachStoreWith is onEachStore with an env built by mk.
func onEachStoreWith[X any](t *testing.T, mk func(*testing.T, app.Storage) (*env, X), fn func(t *testing.T, e *env, x X)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			e, x := mk(t, s.open(t))
			fn(t, e, x)
		})
	}
}
