package deliver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/storetest"
	"github.com/tessera-id/tessera/internal/verify"
)

// outageClock is the one clock of an outage test: the engine, the worker,
// the webhook sender and its receiver all read it; the test moves it.
type outageClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *outageClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *outageClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// outageMessage is one verification created for an outage test and what
// its message must look like on arrival.
type outageMessage struct {
	verificationID string
	to, body       string
}

// outageSetup creates count verifications through the real engine on a
// real SQLite store (each writing its outbox message in the same
// transaction) and returns a worker over that outbox. method picks the
// method of the i-th verification.
func outageSetup(t *testing.T, clock *outageClock, count int, method func(i int) tessera.Method, senders map[tessera.Channel]tessera.Sender) (*Worker, tessera.Store, []outageMessage) {
	t.Helper()
	ctx := context.Background()
	keys, err := secret.NewKeyring(bytes.Repeat([]byte{7}, secret.KeySize), []secret.Key{{ID: "k1", Key: bytes.Repeat([]byte{8}, secret.KeySize)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := storetest.OpenSQLite(t)
	engine := &verify.Engine{Store: store, Keys: keys, Now: clock.Now}
	var msgs []outageMessage
	for i := range count {
		m := method(i)
		code := fmt.Sprintf("%06d", 100000+i)
		consumer := fmt.Sprintf("+1415555%04d", 100+i) // +14155550100 …: valid US numbers
		if m == tessera.MethodEmail {
			consumer = fmt.Sprintf("user%d@example.com", i)
		}
		out, err := engine.Initiate(ctx, "client-1", m, &verify.InitiateRequest{
			Consumer: consumer,
			Issuer:   "Acme",
			Policy:   verify.Policy{ForcedCode: code},
		})
		if err != nil {
			t.Fatalf("initiate %s: %v", consumer, err)
		}
		msgs = append(msgs, outageMessage{verificationID: out.Verification.ID, to: consumer, body: "Your Acme verification code is " + code})
	}
	w := NewWorker(store, keys, senders, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Now = clock.Now
	w.Backoff, w.MaxBackoff = time.Second, 30*time.Second
	return w, store, msgs
}

// outageDrain runs the worker round after round, moving the clock past
// every retry's backoff in between, until nothing is due. It returns how
// many rounds had work.
func outageDrain(t *testing.T, w *Worker, clock *outageClock) int {
	t.Helper()
	for round := range 20 {
		n, err := w.DeliverDue(context.Background())
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if n == 0 {
			return round
		}
		clock.Advance(time.Minute) // past MaxBackoff and its jitter
	}
	t.Fatal("the outbox did not drain in 20 rounds")
	return 0
}

// outageAllSent checks that every message's outbox row ended sent.
func outageAllSent(t *testing.T, store tessera.Store, msgs []outageMessage) {
	t.Helper()
	for _, m := range msgs {
		row, err := store.MessageForVerification(context.Background(), "client-1", m.verificationID)
		if err != nil {
			t.Fatalf("message of %s: %v", m.to, err)
		}
		if row.Status != tessera.MessageSent || row.SentAt.IsZero() || row.Sealed != nil {
			t.Errorf("message to %s: status %s, sent at %v, %d sealed bytes, last error %q; want sent and erased",
				m.to, row.Status, row.SentAt, len(row.Sealed), row.LastError)
		}
	}
}

// TestOutageTwilio: Twilio answers 503 to its first 50 requests, then
// recovers. All 20 messages, each tried up to three times meanwhile, must
// reach it exactly once, and their rows end sent.
func TestOutageTwilio(t *testing.T) {
	const count, failures = 20, 50
	clock := &outageClock{now: time.Unix(1_800_000_000, 0).UTC()}
	tw := newFakeTwilio(t)
	tw.respond = func(n int, _ twilioRequest) (int, string) {
		if n < failures {
			return http.StatusServiceUnavailable, `{"code": 20503, "message": "Service is unavailable. Please try again", "more_info": "https://www.twilio.com/docs/errors/20503", "status": 503}`
		}
		return 0, ""
	}
	sms := tw.sender(t, nil)
	w, store, msgs := outageSetup(t, clock, count, func(int) tessera.Method { return tessera.MethodPhone },
		map[tessera.Channel]tessera.Sender{tessera.ChannelSMS: sms})

	rounds := outageDrain(t, w, clock)
	tw.check()
	if rounds < 2 {
		t.Errorf("drained in %d rounds: the outage was not felt", rounds)
	}

	accepted := map[string]int{}
	for _, r := range tw.acceptedRequests() {
		if r.From != twTestFrom {
			t.Errorf("sent from %q", r.From)
		}
		accepted[r.To+"\x00"+r.Body]++
	}
	for _, m := range msgs {
		if n := accepted[m.to+"\x00"+m.body]; n != 1 {
			t.Errorf("%s %q accepted %d times, want 1", m.to, m.body, n)
		}
		delete(accepted, m.to+"\x00"+m.body)
	}
	for k, n := range accepted {
		t.Errorf("unexpected message accepted %d times: %q", n, k)
	}
	tw.mu.Lock()
	requests := tw.requests
	tw.mu.Unlock()
	if requests != failures+count {
		t.Errorf("%d requests, want %d failed + %d accepted", requests, failures, count)
	}
	outageAllSent(t, store, msgs)
}

// TestOutageWebhook: the receiver is down (503) for its first 15
// requests; after that it takes every third new message but its answer
// is lost (500), so the worker sends it again. The receiver, keeping
// one delivery per webhook-id, must end with each message exactly once,
// having seen the same webhook-id again on the retries.
func TestOutageWebhook(t *testing.T) {
	const count, down = 20, 15
	clock := &outageClock{now: time.Unix(1_800_000_000, 0).UTC()}
	rcv := newWHReceiver(t, whTestSecret, clock.Now)
	requests, firsts := 0, 0
	lost := map[string]bool{}
	rcv.answer = func(d *whDelivery, seen int) (int, bool) { // called under rcv.mu
		requests++
		if requests <= down {
			return http.StatusServiceUnavailable, false
		}
		if seen == 0 {
			firsts++
			if firsts%3 == 1 {
				lost[d.ID] = true
				return http.StatusInternalServerError, true // taken, but the answer does not arrive
			}
		}
		return http.StatusNoContent, true
	}
	hook := newTestWebhookSender(t, rcv.srv.URL, whTestSecret, clock.Now)
	w, store, msgs := outageSetup(t, clock, count,
		func(i int) tessera.Method {
			if i%2 == 0 {
				return tessera.MethodEmail
			}
			return tessera.MethodPhone
		},
		map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: hook, tessera.ChannelSMS: hook})

	outageDrain(t, w, clock)
	rcv.check()

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(lost) == 0 {
		t.Fatal("no answer was lost: the test tests nothing")
	}
	if len(rcv.byID) != count {
		t.Errorf("receiver holds %d messages, want %d", len(rcv.byID), count)
	}
	byTo := map[string]*whDelivery{}
	for _, d := range rcv.byID {
		byTo[d.Event.Data["to"]] = d
	}
	for _, m := range msgs {
		d := byTo[m.to]
		if d == nil {
			t.Errorf("no message for %s", m.to)
			continue
		}
		if d.Event.Data["body"] != m.body || d.Event.Data["id"] != d.ID {
			t.Errorf("message for %s: body %q id %q (webhook-id %q), want body %q", m.to, d.Event.Data["body"], d.Event.Data["id"], d.ID, m.body)
		}
	}
	// Every delivery of an id carries the same message; lost answers
	// brought exactly one retry, under the same webhook-id but with a
	// fresh timestamp.
	deliveries := map[string][]*whDelivery{}
	for _, d := range rcv.requests {
		deliveries[d.ID] = append(deliveries[d.ID], d)
	}
	for id, ds := range deliveries {
		want := 1
		if lost[id] {
			want = 2
		}
		if len(ds) != want {
			t.Errorf("webhook-id %s delivered %d times, want %d", id, len(ds), want)
			continue
		}
		if want == 2 {
			if fmt.Sprint(ds[0].Event.Data) != fmt.Sprint(ds[1].Event.Data) {
				t.Errorf("webhook-id %s: retry carries %v, first %v", id, ds[1].Event.Data, ds[0].Event.Data)
			}
			if ds[0].Timestamp == ds[1].Timestamp {
				t.Errorf("webhook-id %s: retry kept the timestamp %s", id, ds[0].Timestamp)
			}
		}
	}
	outageAllSent(t, store, msgs)
}
