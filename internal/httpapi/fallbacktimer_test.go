package httpapi_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/deliver"
)

// TestFallbackAfterNoDeliveryReport: an SMS Twilio accepted but never
// reported delivered is followed, once its fallbackAfter has passed, by a
// call reading the same code, once however many instances look at the
// same moment; an SMS reported delivered, a code already used and a code
// expired call nobody.
func TestFallbackAfterNoDeliveryReport(t *testing.T) {
	onEachStoreWith(t, func(t *testing.T, s app.Storage) (*env, *fakeTwilioChannels) {
		return newChannelsEnv(t, s, func(_ *deliver.TwilioConfig, o *app.Options) {
			o.PhoneFallback = []tessera.Channel{tessera.ChannelSMS, tessera.ChannelCall}
			o.PhoneFallbackAfter = time.Minute
		})
	}, func(t *testing.T, e *env, tw *fakeTwilioChannels) {
		// The server's 60 s: nothing at 59 s, the call at 61 s.
		id := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200).str("verificationId")
		e.deliverAll()
		e.clock.Advance(59 * time.Second)
		e.deliverAll()
		if got := tw.sends(); len(got) != 1 || got[0].API != "Messages" {
			t.Fatalf("before the deadline Twilio got %+v", got)
		}
		e.clock.Advance(2 * time.Second)
		// Four instances find the timer run out at once: one call.
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.app.Engine.FallBackOverdue(context.Background()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		e.deliverAll()
		got := tw.sends()
		if len(got) != 2 || got[1].API != "Calls" || got[1].To != "+14155552671" {
			t.Fatalf("Twilio got %+v", got)
		}
		_, code, _ := heardCode(t, got[1].Twiml)
		if code != sixDigits.FindString(got[0].Body) {
			t.Fatalf("the call reads %q, the SMS said %q", code, got[0].Body)
		}
		d := e.do("GET", "/methods/phone/verifiers/"+id, nil).want(t, 200).data()["delivery"].(map[string]any)
		h, _ := d["history"].([]any)
		if d["channel"] != "call" || d["status"] != "sent" || len(h) != 2 {
			t.Fatalf("delivery %v", d)
		}
		if sms := h[0].(map[string]any); sms["channel"] != "sms" || sms["status"] != "sent" || !strings.Contains(sms["lastError"].(string), "not reported delivered within 1m0s: fell back to call") {
			t.Fatalf("the SMS's attempt: %v", sms)
		}
		// The call has nothing after it; the code still works.
		e.clock.Advance(5 * time.Minute)
		e.deliverAll()
		if n := len(tw.sends()); n != 2 {
			t.Fatalf("%d sends after the order ran out", n)
		}
		e.do("POST", "/methods/phone/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)

		// The request's own 30 s; reported delivered in time: no call.
		e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552672", "fallbackAfter": 30}).want(t, 200)
		e.deliverAll()
		sms := tw.sends()[2]
		form := statusCallback(sms.SID, "delivered", "")
		if st, body := e.postForm(sms.StatusCallback, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature(cbAuthToken, sms.StatusCallback, form)}); st != 204 {
			t.Fatalf("delivered callback: %d %s", st, body)
		}
		// Used before the deadline: no call.
		id = e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552673", "fallbackAfter": 30}).want(t, 200).str("verificationId")
		e.deliverAll()
		e.do("POST", "/methods/phone/verifiers/"+id+"/actions/validate", map[string]any{"code": sixDigits.FindString(tw.sends()[3].Body)}).want(t, 200)
		// Expired before the deadline came round: no call.
		e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552674", "fallbackAfter": 30, "policy": map[string]any{"expiredOn": "00:00:40"}}).want(t, 200)
		e.deliverAll()
		e.clock.Advance(45 * time.Second)
		e.deliverAll()
		if got := tw.sends(); len(got) != 5 {
			t.Fatalf("Twilio got %d sends, want the 5 SMS and call only: %+v", len(got), got[5:])
		}
		// fallbackAfter 0: only a refusal falls back.
		e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552675", "fallbackAfter": 0}).want(t, 200)
		e.deliverAll()
		e.clock.Advance(2 * time.Minute)
		e.deliverAll()
		if got := tw.sends(); len(got) != 6 {
			t.Fatalf("fallbackAfter 0 fell back: %+v", got[5:])
		}

		for _, bad := range []map[string]any{
			{"consumer": "+14155552676", "fallbackAfter": 5},
			{"consumer": "+14155552676", "fallbackAfter": 120, "policy": map[string]any{"expiredOn": "00:01:00"}},
		} {
			if path, _ := e.do("POST", "/methods/phone/actions/initiate", bad).want(t, 422).detail(); path != "fallbackAfter" {
				t.Fatalf("%v: 422 names %q", bad, path)
			}
		}
		if path, _ := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "fallbackAfter": 60}).want(t, 422).detail(); path != "fallbackAfter" {
			t.Fatalf("email: 422 names %q", path)
		}
	})
}
