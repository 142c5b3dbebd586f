package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/deliver"
)

// event is one operator event as a receiver saw it.
type event struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      map[string]any `json:"data"`
	header    string         // the webhook-id header
}

// receiver is an operator's endpoint. It checks every request's
// signature by the Standard Webhooks algorithm, with its own code rather
// than Tessera's: HMAC-SHA256 under the secret's key over
// "id.timestamp.body", base64, as one of the "v1,…" entries of
// webhook-signature.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	key    []byte

	mu       sync.Mutex
	events   []event // accepted, in order
	refused  []event // answered 500
	refuseN  int     // answer 500 to this many requests first
	problems []string
}

func newReceiver(t *testing.T) *receiver {
	key := make([]byte, 32)
	rand.Read(key)
	r := &receiver{t: t, key: key, secret: "whsec_" + base64.StdEncoding.EncodeToString(key)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id, ts, sigs := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	valid := false
	for _, s := range strings.Fields(sigs) {
		if v, sig, _ := strings.Cut(s, ","); v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			valid = true
		}
	}
	var ev event
	err := json.Unmarshal(body, &ev)
	ev.header = id
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !valid:
		r.problems = append(r.problems, "bad signature on "+id)
	case err != nil || ev.ID != id || ev.Type == "" || ev.Timestamp == "" || req.Header.Get("Content-Type") != "application/json":
		r.problems = append(r.problems, "malformed event: "+string(body))
	case r.refuseN > 0:
		r.refuseN--
		r.refused = append(r.refused, ev)
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	default:
		r.events = append(r.events, ev)
	}
	w.WriteHeader(http.StatusNoContent)
}

// take returns the events received since the last take, failing the test
// on any request that was not properly signed and shaped.
func (r *receiver) take() []event {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) > 0 {
		r.t.Fatalf("the receiver refused: %q", r.problems)
	}
	out := r.events
	r.events = nil
	return out
}

// ofType returns the events of typ among evs.
func ofType(evs []event, typ string) []event {
	var out []event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// newEventsEnv is an env sending operator events (of types; none: all) to
// a receiver.
func newEventsEnv(t *testing.T, store app.Storage, types ...string) (*env, *receiver) {
	rcv := newReceiver(t)
	return newEnvWith(t, store, rcv.configure(types...)), rcv
}

// configure sets an app's options to send operator events of types
// (none: all) to r.
func (r *receiver) configure(types ...string) func(o *app.Options) {
	return func(o *app.Options) {
		sender, err := deliver.NewEventSender(deliver.WebhookConfig{URL: r.srv.URL + "/hooks/tessera", Secret: r.secret})
		if err != nil {
			r.t.Fatal(err)
		}
		o.Senders[tessera.ChannelEvents] = sender
		if len(types) > 0 {
			o.EventTypes = map[string]bool{}
			for _, typ := range types {
				o.EventTypes[typ] = true
			}
		}
	}
}

// onEachStoreWithEvents is onEachStore with operator events of types
// (none: all) sent to a receiver.
func onEachStoreWithEvents(t *testing.T, types []string, fn func(t *testing.T, e *env, rcv *receiver)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			e, rcv := newEventsEnv(t, s.open(t), types...)
			fn(t, e, rcv)
		})
	}
}

func TestVerificationEvents(t *testing.T) {
	onEachStoreWithEvents(t, nil, func(t *testing.T, e *env, rcv *receiver) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "alice@example.com"}).want(t, 200).str("verificationId")
		code := e.codeFor("alice@example.com")
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": wrong(code)}).want(t, 422)
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
		e.deliver()
		evs := rcv.take()
		if len(evs) != 2 || evs[0].Type != "verification.failed" || evs[1].Type != "verification.approved" {
			t.Fatalf("events %+v, want verification.failed then verification.approved", evs)
		}
		approved := evs[1].Data
		if approved["verificationId"] != id || approved["method"] != "email" || approved["owner"] != e.clientID("test-client") ||
			approved["destination"] != "a***e@example.com" || approved["attempts"] != 1.0 {
			t.Fatalf("verification.approved data %v", approved)
		}
		for _, ev := range evs {
			raw, _ := json.Marshal(ev.Data)
			if strings.Contains(string(raw), code) || strings.Contains(string(raw), "alice@") {
				t.Fatalf("an event shows the code or the address: %s", raw)
			}
		}
		if evs[0].ID == evs[1].ID || !strings.HasPrefix(evs[0].ID, "evt_") {
			t.Fatalf("event ids %q, %q: want distinct evt_ ids", evs[0].ID, evs[1].ID)
		}

		// Attempts used up: each wrong code is verification.failed, and
		// the last one verification.locked too.
		id = e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "bob@example.com", "policy": map[string]any{"maxAttempts": 2}}).want(t, 200).str("verificationId")
		code = e.codeFor("bob@example.com")
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": wrong(code)}).want(t, 422)
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": wrong(code)}).want(t, 422)
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 422)
		e.deliver()
		evs = rcv.take()
		if len(evs) != 3 || len(ofType(evs, "verification.failed")) != 2 || len(ofType(evs, "verification.locked")) != 1 {
			t.Fatalf("events %+v, want two verification.failed and one verification.locked", evs)
		}
		if d := ofType(evs, "verification.locked")[0].Data; d["verificationId"] != id || d["attempts"] != 2.0 || d["maxAttempts"] != 2.0 {
			t.Fatalf("verification.locked data %v", d)
		}
	})
}

func TestAccountEvents(t *testing.T) {
	onEachStoreWithEvents(t, []string{"account.*"}, func(t *testing.T, e *env, rcv *receiver) {
		u := register(t, e, "gina@example.com")
		userID := u.call("GET", "/auth/me", nil).want(t, 200).str("id")
		u.call("POST", "/auth/password", map[string]any{"oldPassword": u.password, "newPassword": "a brand new secret"}).want(t, 200)
		e.deliver()
		evs := rcv.take()
		changed := ofType(evs, "account.password_changed")
		if len(changed) != 1 || changed[0].Data["userId"] != userID || changed[0].Data["auditId"] == "" {
			t.Fatalf("events %+v, want one account.password_changed for %s", evs, userID)
		}
		if len(ofType(evs, "account.register_confirmed")) != 1 {
			t.Fatalf("events %+v, want account.register_confirmed", evs)
		}
		// TESSERA_EVENTS=account.* sends no other family.
		for _, ev := range evs {
			if !strings.HasPrefix(ev.Type, "account.") {
				t.Fatalf("event %s sent, but only account.* were asked for", ev.Type)
			}
		}
		// The audit event it names holds the details.
		a := auditEventByID(t, e, changed[0].Data["auditId"].(string))
		if a.Kind != tessera.AuditPasswordChanged || a.UserID != userID {
			t.Fatalf("audit event %+v", a)
		}
	})
}

// auditEventByID returns the audit event with id.
func auditEventByID(t *testing.T, e *env, id string) *tessera.AuditEvent {
	t.Helper()
	all, err := e.store.AuditEvents(context.Background(), tessera.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("no audit event %s", id)
	return nil
}

// TestEventRetriedWithItsID: a receiver that fails gets the same event,
// with the same id, later; an outage loses nothing.
func TestEventRetriedWithItsID(t *testing.T) {
	onEachStoreWithEvents(t, nil, func(t *testing.T, e *env, rcv *receiver) {
		rcv.refuseN = 1
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "carol@example.com"}).want(t, 200).str("verificationId")
		code := e.codeFor("carol@example.com")
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
		e.deliver()
		if evs := rcv.take(); len(evs) != 0 || len(rcv.refused) != 1 {
			t.Fatalf("accepted %+v, refused %+v: want the one event refused", evs, rcv.refused)
		}
		e.deliver() // not due yet: the retry waits its backoff
		if evs := rcv.take(); len(evs) != 0 {
			t.Fatalf("retried before its backoff: %+v", evs)
		}
		e.clock.Advance(time.Minute)
		e.deliver()
		evs := rcv.take()
		first := rcv.refused[0]
		if len(evs) != 1 || evs[0].ID != first.ID || evs[0].header != first.header || evs[0].Type != "verification.approved" ||
			evs[0].Timestamp != first.Timestamp {
			t.Fatalf("retry %+v, want the refused event %+v again, same id and body", evs, first)
		}
		e.clock.Advance(time.Hour)
		e.deliver()
		if evs := rcv.take(); len(evs) != 0 {
			t.Fatalf("delivered again after it was accepted: %+v", evs)
		}
	})
}

// TestEventsOff: without an events URL nothing is written, so nothing can
// be sent (TestAccountEvents checks the type filter).
func TestEventsOff(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "dave@example.com"}).want(t, 200).str("verificationId")
		code := e.codeFor("dave@example.com")
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
		register(t, e, "erin@example.com")
		e.deliver()
		queued, err := e.store.ClaimMessages(context.Background(), tessera.ChannelEvents, "test", e.clock.Now().Add(time.Hour), time.Minute, 100)
		if err != nil || len(queued) != 0 {
			t.Fatalf("with events off the outbox holds %d events (%v)", len(queued), err)
		}
	})
}

// TestMessageEvents: Twilio's reports become message.delivered and
// message.failed, with the provider's error code.
func TestMessageEvents(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t)
			e, tw := newTwilioEnvWith(t, s.open(t), rcv.configure("message.*"))
			report := func(status, errorCode string) {
				t.Helper()
				sms := tw.last(t)
				form := statusCallback(sms.SID, status, errorCode)
				if st, body := e.postForm(sms.StatusCallback, form, map[string]string{"X-Twilio-Signature": deliver.TwilioSignature(cbAuthToken, sms.StatusCallback, form)}); st != 204 {
					t.Fatalf("%s callback: %d %s", status, st, body)
				}
			}
			id := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200).str("verificationId")
			e.deliver()
			report("sent", "") // not final: no event
			report("delivered", "")
			report("delivered", "") // repeated: recorded once, one event
			e.deliver()
			evs := rcv.take()
			if len(evs) != 1 || evs[0].Type != "message.delivered" {
				t.Fatalf("events %+v, want one message.delivered", evs)
			}
			d := evs[0].Data
			if d["verificationId"] != id || d["channel"] != "sms" || d["destination"] != "+14*******71" || d["status"] != "delivered" ||
				d["reason"] != "provider" || d["messageId"] == "" {
				t.Fatalf("message.delivered data %v", d)
			}

			e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200)
			e.deliver()
			report("undelivered", "30003")
			e.deliver()
			evs = rcv.take()
			if len(evs) != 1 || evs[0].Type != "message.failed" || evs[0].Data["status"] != "undelivered" || evs[0].Data["providerError"] != "30003" {
				t.Fatalf("events %+v, want message.failed with the provider's error", evs)
			}
		})
	}
}
