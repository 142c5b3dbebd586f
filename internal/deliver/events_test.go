package deliver_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/verify"
)

// eventsFixture is a fixture whose worker also sends operator events, to
// events.
func eventsFixture(t *testing.T, db *sqlstore.DB) (*fixture, *testSender) {
	f := newFixture(t, db)
	events := &testSender{}
	f.worker = f.newWorker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender, tessera.ChannelSMS: f.sender, tessera.ChannelEvents: events})
	f.worker.Events = &verify.Events{Keys: f.keys, Now: f.clock}
	f.engine.Deliver = f.worker.Enqueue
	return f, events
}

// TestGivenUpMessageIsAnEvent: a message the outbox gives up becomes a
// message.failed event, written with the failure.
func TestGivenUpMessageIsAnEvent(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f, events := eventsFixture(t, db)
		f.sender.fails, f.sender.permanent = -1, true
		vid := f.initiate(t, tessera.MethodEmail, "carol@example.com")
		deliverDue(t, f.worker)
		deliverDue(t, f.worker)
		wantStatus(t, f.message(t, vid), tessera.MessageFailed)
		sent := events.deliveredCopy()
		if len(sent) != 1 {
			t.Fatalf("%d events sent, want one message.failed", len(sent))
		}
		var ev struct {
			ID, Type string
			Data     map[string]any
		}
		if err := json.Unmarshal([]byte(sent[0].Content.Body), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID != sent[0].ID || ev.Type != "message.failed" || ev.Data["verificationId"] != vid || ev.Data["reason"] != "outbox" ||
			ev.Data["attempts"] != 1.0 || ev.Data["destination"] != "c***l@example.com" {
			t.Fatalf("event %+v", ev)
		}
	})
}

// TestEventRetriedUntilMaxAge: an endpoint down for longer than the
// attempts a message gets still receives its events; only past
// EventsMaxAge is one given up, and that reports nothing further.
func TestEventRetriedUntilMaxAge(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f, events := eventsFixture(t, db)
		f.worker.MaxAttempts = 2
		events.fails = -1
		f.sender.fails, f.sender.permanent = -1, true // one message.failed event to carry
		f.initiate(t, tessera.MethodEmail, "dan@example.com")
		deliverDue(t, f.worker)
		for i := 0; i < 6; i++ {
			f.now = f.now.Add(20 * time.Minute)
			deliverDue(t, f.worker)
		}
		if calls, _ := events.counts(); calls < 5 {
			t.Fatalf("the event was tried %d times in two hours, want it retried past MaxAttempts", calls)
		}
		events.mu.Lock()
		events.fails = 0
		events.mu.Unlock()
		f.now = f.now.Add(20 * time.Minute)
		deliverDue(t, f.worker)
		if sent := events.deliveredCopy(); len(sent) != 1 {
			t.Fatalf("%d events delivered after the outage, want 1", len(sent))
		}

		// Past EventsMaxAge an event is given up, without an event of its own.
		events.mu.Lock()
		events.fails = -1
		events.mu.Unlock()
		f.initiate(t, tessera.MethodEmail, "erin@example.com")
		deliverDue(t, f.worker)
		f.now = f.now.Add(deliver.DefaultEventsMaxAge)
		deliverDue(t, f.worker)
		calls, _ := events.counts()
		f.now = f.now.Add(time.Hour)
		deliverDue(t, f.worker)
		if after, _ := events.counts(); after != calls {
			t.Fatalf("an event past EventsMaxAge was tried again")
		}
		events.mu.Lock()
		last := events.calls[len(events.calls)-1].ID
		events.mu.Unlock()
		m, err := db.Message(context.Background(), last)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, m, tessera.MessageFailed)
	})
}
