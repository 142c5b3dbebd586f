package httpapi_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/deliver"
)

const (
	chFrom         = "+14155550100"
	chWhatsAppFrom = "+14155550111"
)

// twilioSend is one request the fake Twilio received: a message (SMS or
// WhatsApp) or a call, with the fields Tessera sets.
type twilioSend struct {
	API                                   string // "Messages" or "Calls"
	To, From, Body, Twiml, StatusCallback string
	ContentSid, ContentVariables, SID     string
}

// fakeTwilioChannels is Twilio's Messages and Calls APIs: it answers each
// request with a SID, or with the error refuse picks for it.
type fakeTwilioChannels struct {
	srv    *httptest.Server
	refuse func(s twilioSend) (status int, body string)
	mu     sync.Mutex
	got    []twilioSend
}

func newFakeTwilioChannels(t *testing.T) *fakeTwilioChannels {
	f := &fakeTwilioChannels{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, _ := r.BasicAuth(); user != cbAccountSID || pass != cbAuthToken || r.ParseForm() != nil {
			http.Error(w, `{"code":20003,"message":"Authenticate","status":401}`, http.StatusUnauthorized)
			return
		}
		api := strings.TrimSuffix(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:], ".json")
		if r.URL.Path != "/2010-04-01/Accounts/"+cbAccountSID+"/"+api+".json" || (api != "Messages" && api != "Calls") {
			http.Error(w, `{"code":20404,"message":"Not found","status":404}`, http.StatusNotFound)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		prefix := map[string]string{"Messages": "SM", "Calls": "CA"}[api]
		s := twilioSend{API: api, To: r.PostForm.Get("To"), From: r.PostForm.Get("From"), Body: r.PostForm.Get("Body"),
			Twiml: r.PostForm.Get("Twiml"), StatusCallback: r.PostForm.Get("StatusCallback"),
			ContentSid: r.PostForm.Get("ContentSid"), ContentVariables: r.PostForm.Get("ContentVariables"),
			SID: fmt.Sprintf("%s%032x", prefix, len(f.got)+1)}
		f.got = append(f.got, s)
		w.Header().Set("Content-Type", "application/json")
		if f.refuse != nil {
			if status, body := f.refuse(s); status != 0 {
				w.WriteHeader(status)
				fmt.Fprint(w, body)
				return
			}
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sid":%q,"status":"queued"}`, s.SID)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// sends returns what Twilio received so far.
func (f *fakeTwilioChannels) sends() []twilioSend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]twilioSend(nil), f.got...)
}

// newChannelsEnv is an env whose SMS, WhatsApp messages and calls go
// through the real Twilio sender to a fake Twilio.
func newChannelsEnv(t *testing.T, store app.Storage, adjust func(*deliver.TwilioConfig, *app.Options)) (*env, *fakeTwilioChannels) {
	f := newFakeTwilioChannels(t)
	e := newEnvWith(t, store, func(o *app.Options) {
		cfg := deliver.TwilioConfig{
			AccountSID: cbAccountSID, AuthToken: cbAuthToken, From: chFrom, WhatsAppFrom: chWhatsAppFrom,
			BaseURL: f.srv.URL, HTTPClient: f.srv.Client(),
			StatusCallback: cbPublicURL + deliver.TwilioStatusPath, Deliveries: o.Store.(tessera.DeliveryStore),
		}
		if adjust != nil {
			adjust(&cfg, o)
		}
		tw, err := deliver.NewTwilioSender(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range tessera.PhoneChannels {
			o.Senders[ch] = tw
		}
		o.PublicURL, o.TwilioAuthToken = cbPublicURL, cbAuthToken
	})
	return e, f
}

// deliverAll runs the outbox until nothing is due, so that fallbacks
// (queued on another channel's lane) go out too.
func (e *env) deliverAll() {
	e.t.Helper()
	for i := 0; i < 5; i++ {
		n, err := e.app.Worker.DeliverDue(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// twiml is the part of a call's TwiML a person hears.
type twiml struct {
	Says []struct {
		Language string `xml:"language,attr"`
		Text     string `xml:",chardata"`
	} `xml:"Say"`
}

// heardCode reads a call's TwiML as Twilio would and returns the language
// and what the voice says, once per <Say>; the code is the digits said
// one by one.
func heardCode(t *testing.T, doc string) (language, code string, says []string) {
	t.Helper()
	var r twiml
	if err := xml.Unmarshal([]byte(doc), &r); err != nil {
		t.Fatalf("TwiML %q: %v", doc, err)
	}
	for _, s := range r.Says {
		says = append(says, s.Text)
		language = s.Language
	}
	if len(says) == 0 {
		t.Fatalf("TwiML %q says nothing", doc)
	}
	spoken := spokenDigits.FindString(says[0])
	return language, strings.ReplaceAll(spoken, ", ", ""), says
}

var spokenDigits = regexp.MustCompile(`\d(, \d){5}`)

func TestWhatsAppAndCallThroughTwilio(t *testing.T) {
	onEachStoreWith(t, func(t *testing.T, s app.Storage) (*env, *fakeTwilioChannels) {
		return newChannelsEnv(t, s, func(c *deliver.TwilioConfig, _ *app.Options) { c.VoiceLanguage = "de-DE" })
	}, func(t *testing.T, e *env, tw *fakeTwilioChannels) {
		const phone = "+14155552671"
		// WhatsApp: the Messages API with whatsapp: addresses.
		id := e.do("POST", "/methods/whatsapp/actions/initiate", map[string]any{"consumer": phone, "issuer": "Acme"}).want(t, 200).str("verificationId")
		e.deliverAll()
		got := tw.sends()
		if len(got) != 1 || got[0].API != "Messages" || got[0].To != "whatsapp:"+phone || got[0].From != "whatsapp:"+chWhatsAppFrom {
			t.Fatalf("Twilio got %+v", got)
		}
		code := sixDigits.FindString(got[0].Body)
		if !strings.HasPrefix(got[0].Body, "Your Acme verification code is ") || code == "" {
			t.Fatalf("WhatsApp body %q", got[0].Body)
		}
		// A code sent by WhatsApp is no phone code.
		e.do("POST", "/methods/phone/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 404)
		e.do("POST", "/methods/whatsapp/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)

		// A call: the Calls API with TwiML that reads the code digit by
		// digit, twice, in the configured language, the template's text
		// XML-escaped.
		id = e.do("POST", "/methods/call/actions/initiate", map[string]any{"consumer": phone,
			"template": map[string]any{"body": `Ihr Code für <Acme> & Co: {{{CODE}}}.`}}).want(t, 200).str("verificationId")
		e.deliverAll()
		got = tw.sends()
		call := got[len(got)-1]
		if call.API != "Calls" || call.To != phone || call.From != chFrom || call.Body != "" {
			t.Fatalf("Twilio got %+v", call)
		}
		if !strings.Contains(call.Twiml, "&lt;Acme&gt; &amp; Co") {
			t.Fatalf("TwiML not escaped: %s", call.Twiml)
		}
		lang, code, says := heardCode(t, call.Twiml)
		if lang != "de-DE" || len(says) != 2 || says[0] != says[1] || !strings.HasPrefix(says[0], "Ihr Code für <Acme> & Co: ") || len(code) != 6 {
			t.Fatalf("the call says %q in %s", says, lang)
		}
		d := e.do("GET", "/methods/call/verifiers/"+id, nil).want(t, 200).data()["delivery"].(map[string]any)
		if d["channel"] != "call" || d["status"] != "sent" {
			t.Fatalf("delivery %v", d)
		}
		// Twilio reports the call answered.
		form := statusCallback("", "", "")
		form.Del("MessageSid")
		form.Del("SmsSid")
		form.Del("MessageStatus")
		form.Del("SmsStatus")
		form.Set("CallSid", call.SID)
		form.Set("CallStatus", "completed")
		if st, body := e.postForm(call.StatusCallback, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature(cbAuthToken, call.StatusCallback, form)}); st != 204 {
			t.Fatalf("call callback: %d %s", st, body)
		}
		d = e.do("GET", "/methods/call/verifiers/"+id, nil).want(t, 200).data()["delivery"].(map[string]any)
		if d["deliveryStatus"] != "delivered" {
			t.Fatalf("after the call completed: %v", d)
		}
		e.do("POST", "/methods/call/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)

		// The phone rules hold for both: no premium-rate numbers.
		premium, _ := example(t, "GB", phonenumbers.PREMIUM_RATE)
		for _, m := range []string{"whatsapp", "call"} {
			r := e.do("POST", "/methods/"+m+"/actions/initiate", map[string]any{"consumer": premium}).want(t, 422)
			if p, _ := r.detail(); p != "consumer" {
				t.Fatalf("%s to a premium-rate number: %s", m, r.raw)
			}
		}
	})
}

// TestWhatsAppNotConfigured: without a WhatsApp sender the method does
// not exist on the server, and a fallback cannot name it.
func TestWhatsAppNotConfigured(t *testing.T) {
	e := newEnv(t, stores[0].open(t)) // email and SMS only
	e.do("POST", "/methods/whatsapp/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 404)
	r := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671", "fallback": []string{"whatsapp"}}).want(t, 422)
	if p, _ := r.detail(); p != "fallback" {
		t.Fatalf("a fallback to WhatsApp: %s", r.raw)
	}
	r = e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "fallback": []string{"sms"}}).want(t, 422)
	if p, _ := r.detail(); p != "fallback" {
		t.Fatalf("an email with a fallback: %s", r.raw)
	}
}

// TestFallbackOnPermanentTwilioErrors: WhatsApp and SMS refuse for good,
// the call goes through; each attempt keeps its own state.
func TestFallbackOnPermanentTwilioErrors(t *testing.T) {
	onEachStoreWith(t, func(t *testing.T, s app.Storage) (*env, *fakeTwilioChannels) {
		e, tw := newChannelsEnv(t, s, func(_ *deliver.TwilioConfig, o *app.Options) {
			o.PhoneFallback = []tessera.Channel{tessera.ChannelWhatsApp, tessera.ChannelSMS}
		})
		tw.refuse = func(s twilioSend) (int, string) {
			switch {
			case strings.HasPrefix(s.To, "whatsapp:"):
				return 400, `{"code":63007,"message":"Twilio could not find a Channel with the specified From address","more_info":"https://www.twilio.com/docs/errors/63007","status":400}`
			case s.API == "Messages" && s.To == "+14155552671":
				return 400, `{"code":21610,"message":"Attempt to send to unsubscribed recipient","more_info":"https://www.twilio.com/docs/errors/21610","status":400}`
			}
			return 0, ""
		}
		return e, tw
	}, func(t *testing.T, e *env, tw *fakeTwilioChannels) {
		id := e.do("POST", "/methods/whatsapp/actions/initiate", map[string]any{"consumer": "+14155552671", "fallback": []string{"sms", "call"}}).want(t, 200).str("verificationId")
		e.deliverAll()
		got := tw.sends()
		if len(got) != 3 || got[0].To != "whatsapp:+14155552671" || got[1].API != "Messages" || got[2].API != "Calls" {
			t.Fatalf("Twilio got %+v", got)
		}
		_, code, _ := heardCode(t, got[2].Twiml)
		if code != sixDigits.FindString(got[1].Body) {
			t.Fatalf("the call reads %q, the SMS said %q", code, got[1].Body)
		}
		d := e.do("GET", "/methods/whatsapp/verifiers/"+id, nil).want(t, 200).data()["delivery"].(map[string]any)
		h, _ := d["history"].([]any)
		if d["channel"] != "call" || d["status"] != "sent" || len(h) != 3 {
			t.Fatalf("delivery %v", d)
		}
		for i, want := range []struct{ channel, status, err string }{{"whatsapp", "failed", "63007"}, {"sms", "failed", "21610"}, {"call", "sent", ""}} {
			a := h[i].(map[string]any)
			if a["channel"] != want.channel || a["status"] != want.status || !strings.Contains(fmt.Sprint(a["lastError"]), want.err) {
				t.Fatalf("attempt %d: %v", i, a)
			}
		}
		e.do("POST", "/methods/whatsapp/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)

		// No fallback named: the server's order after WhatsApp (SMS), and
		// no further.
		id = e.do("POST", "/methods/whatsapp/actions/initiate", map[string]any{"consumer": "+14155552672"}).want(t, 200).str("verificationId")
		e.deliverAll()
		got = tw.sends()[3:]
		if len(got) != 2 || got[1].API != "Messages" || got[1].To != "+14155552672" {
			t.Fatalf("Twilio got %+v", got)
		}
		e.do("POST", "/methods/whatsapp/verifiers/"+id+"/actions/validate", map[string]any{"code": sixDigits.FindString(got[1].Body)}).want(t, 200)
		// An empty fallback: none, the message fails.
		id = e.do("POST", "/methods/whatsapp/actions/initiate", map[string]any{"consumer": "+14155552673", "fallback": []string{}}).want(t, 200).str("verificationId")
		e.deliverAll()
		if d := e.do("GET", "/methods/whatsapp/verifiers/"+id, nil).want(t, 200).data()["delivery"].(map[string]any); d["status"] != "failed" || d["channel"] != "whatsapp" || d["history"] != nil {
			t.Fatalf("delivery %v", d)
		}
	})
}

// TestFallbackOnUndeliveredReport: Twilio accepts the WhatsApp message,
// then reports it undelivered (63016: outside the 24-hour window); the
// code goes by SMS, once however often the report comes.
func TestFallbackOnUndeliveredReport(t *testing.T) {
	onEachStoreWith(t, func(t *testing.T, s app.Storage) (*env, *fakeTwilioChannels) {
		return newChannelsEnv(t, s, nil)
	}, func(t *testing.T, e *env, tw *fakeTwilioChannels) {
		id := e.do("POST", "/methods/whatsapp/actions/initiate", map[string]any{"consumer": "+14155552671", "fallback": []string{"sms", "call"}}).want(t, 200).str("verificationId")
		e.deliverAll()
		wa := tw.sends()[0]
		form := statusCallback(wa.SID, "undelivered", "63016")
		form.Set("To", "whatsapp:+14155552671")
		form.Set("From", "whatsapp:"+chWhatsAppFrom)
		for i := 0; i < 2; i++ {
			if st, body := e.postForm(wa.StatusCallback, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature(cbAuthToken, wa.StatusCallback, form)}); st != 204 {
				t.Fatalf("undelivered callback: %d %s", st, body)
			}
			e.deliverAll()
		}
		got := tw.sends()
		if len(got) != 2 || got[1].API != "Messages" || got[1].To != "+14155552671" || got[1].From != chFrom {
			t.Fatalf("Twilio got %+v", got)
		}
		d := e.do("GET", "/methods/whatsapp/verifiers/"+id, nil).want(t, 200).data()["delivery"].(map[string]any)
		h, _ := d["history"].([]any)
		if d["channel"] != "sms" || len(h) != 2 || h[0].(map[string]any)["deliveryStatus"] != "undelivered" || h[0].(map[string]any)["providerError"] != "63016" {
			t.Fatalf("delivery %v", d)
		}
		e.do("POST", "/methods/whatsapp/verifiers/"+id+"/actions/validate", map[string]any{"code": sixDigits.FindString(got[1].Body)}).want(t, 200)
		// Used: a late failure of the SMS calls nobody.
		form = statusCallback(got[1].SID, "failed", "30008")
		if st, _ := e.postForm(got[1].StatusCallback, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature(cbAuthToken, got[1].StatusCallback, form)}); st != 204 {
			t.Fatal(st)
		}
		e.deliverAll()
		if n := len(tw.sends()); n != 2 {
			t.Fatalf("%d sends after the code was used", n)
		}
	})
}
