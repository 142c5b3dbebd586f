package deliver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/storetest"
	"github.com/tessera-id/tessera/internal/verify"
)

const (
	owner = "client-1"
	code  = "123456"
)

// t0 is the tests' starting clock, a whole second so store timestamps
// (milliseconds) hold it exactly.
var t0 = time.Unix(1_800_000_000, 0).UTC()

// eachStore runs test on a SQLite store and, when configured, a PostgreSQL
// one.
func eachStore(t *testing.T, test func(t *testing.T, db *sqlstore.DB)) {
	t.Helper()
	for _, s := range []struct {
		name string
		open func(testing.TB) *sqlstore.DB
	}{
		{"sqlite", storetest.OpenSQLite},
		{"postgres", storetest.OpenPostgres},
	} {
		t.Run(s.name, func(t *testing.T) { test(t, s.open(t)) })
	}
}

func newKeys(t *testing.T) *secret.Keyring {
	t.Helper()
	keys, err := secret.NewKeyring(bytes.Repeat([]byte{1}, secret.KeySize), []secret.Key{{ID: "k1", Key: bytes.Repeat([]byte{2}, secret.KeySize)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testSender records what it is given. While fails is not zero it fails
// (fails < 0: always), with a permanent error when permanent is set.
type testSender struct {
	mu        sync.Mutex
	fails     int
	permanent bool
	calls     []tessera.Outgoing // every attempt
	delivered []tessera.Outgoing // the attempts that succeeded
}

func (s *testSender) Send(_ context.Context, m *tessera.Outgoing) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, *m)
	if s.fails != 0 {
		if s.fails > 0 {
			s.fails--
		}
		if s.permanent {
			return deliver.Permanent(errors.New("address rejected"))
		}
		return errors.New("provider unavailable")
	}
	s.delivered = append(s.delivered, *m)
	return nil
}

func (s *testSender) counts() (calls, delivered int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls), len(s.delivered)
}

func (s *testSender) deliveredCopy() []tessera.Outgoing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tessera.Outgoing(nil), s.delivered...)
}

// fixture is a store, an engine and a worker sharing one clock.
type fixture struct {
	db     *sqlstore.DB
	keys   *secret.Keyring
	now    time.Time
	engine *verify.Engine
	worker *deliver.Worker
	sender *testSender
}

func newFixture(t *testing.T, db *sqlstore.DB) *fixture {
	t.Helper()
	f := &fixture{db: db, keys: newKeys(t), now: t0, sender: &testSender{}}
	f.engine = &verify.Engine{Store: db, Keys: f.keys, Now: f.clock}
	f.worker = f.newWorker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender, tessera.ChannelSMS: f.sender})
	return f
}

func (f *fixture) clock() time.Time { return f.now }

// newWorker returns another worker on the fixture's clock and keys.
func (f *fixture) newWorker(store tessera.Store, senders map[tessera.Channel]tessera.Sender) *deliver.Worker {
	w := deliver.NewWorker(store, f.keys, senders, discardLog())
	w.Now = f.clock
	return w
}

// initiate creates a verification, and so an outbox message, through the
// engine, and returns the verification id.
func (f *fixture) initiate(t *testing.T, method tessera.Method, consumer string) string {
	t.Helper()
	out, err := f.engine.Initiate(context.Background(), owner, method, &verify.InitiateRequest{
		Consumer: consumer,
		Policy:   verify.Policy{ForcedCode: code},
	})
	if err != nil {
		t.Fatalf("Initiate: %v", err)
	}
	return out.Verification.ID
}

func (f *fixture) message(t *testing.T, verificationID string) *tessera.Message {
	t.Helper()
	m, err := f.db.MessageForVerification(context.Background(), owner, verificationID)
	if err != nil {
		t.Fatalf("message of %s: %v", verificationID, err)
	}
	return m
}

// deliverDue runs one DeliverDue of w and returns how many messages it
// tried.
func deliverDue(t *testing.T, w *deliver.Worker) int {
	t.Helper()
	n, err := w.DeliverDue(context.Background())
	if err != nil {
		t.Fatalf("DeliverDue: %v", err)
	}
	return n
}

func wantSends(t *testing.T, s *testSender, calls, delivered int) {
	t.Helper()
	if c, d := s.counts(); c != calls || d != delivered {
		t.Fatalf("sender got %d calls, %d delivered; want %d calls, %d delivered", c, d, calls, delivered)
	}
}

func wantStatus(t *testing.T, m *tessera.Message, status tessera.MessageStatus) {
	t.Helper()
	if m.Status != status {
		t.Fatalf("message status %q (last error %q), want %q", m.Status, m.LastError, status)
	}
	if status != tessera.MessagePending && m.Sealed != nil {
		t.Errorf("message %s still has its body (%d bytes), want it erased", status, len(m.Sealed))
	}
}

func TestDeliversDecryptedMessageOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		vid := f.initiate(t, tessera.MethodEmail, "alice@example.com")
		before := f.message(t, vid)
		wantStatus(t, before, tessera.MessagePending)
		if bytes.Contains(before.Sealed, []byte(code)) {
			t.Fatal("the stored body contains the code in clear text")
		}

		if n := deliverDue(t, f.worker); n != 1 {
			t.Fatalf("DeliverDue tried %d messages, want 1", n)
		}
		wantSends(t, f.sender, 1, 1)
		got := f.sender.deliveredCopy()[0]
		if got.ID != before.ID || got.Channel != tessera.ChannelEmail || got.To != "alice@example.com" || got.To != before.To {
			t.Errorf("delivered id %q channel %q to %q; want %q, email, alice@example.com (row: %q)", got.ID, got.Channel, got.To, before.ID, before.To)
		}
		if got.Content.Subject == "" {
			t.Error("delivered an email without a subject")
		}
		if !strings.Contains(got.Content.Body, code) {
			t.Errorf("body %q does not contain the code %s", got.Content.Body, code)
		}

		after := f.message(t, vid)
		wantStatus(t, after, tessera.MessageSent)
		if !after.SentAt.Equal(t0) {
			t.Errorf("SentAt %v, want %v", after.SentAt, t0)
		}

		// Much later, nothing is sent again.
		f.now = t0.Add(time.Hour)
		if n := deliverDue(t, f.worker); n != 0 {
			t.Errorf("a later DeliverDue tried %d messages, want 0", n)
		}
		wantSends(t, f.sender, 1, 1)
	})
}

func TestTransientFailureRetriesWithGrowingBackoff(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		f.sender.fails = 2
		vid := f.initiate(t, tessera.MethodEmail, "bob@example.com")

		// First attempt fails: the message waits at least Backoff.
		deliverDue(t, f.worker)
		wantSends(t, f.sender, 1, 0)
		m := f.message(t, vid)
		wantStatus(t, m, tessera.MessagePending)
		if m.Attempts != 1 || !strings.Contains(m.LastError, "provider unavailable") {
			t.Fatalf("after a failure: attempts %d, last error %q; want 1 and the provider's error", m.Attempts, m.LastError)
		}
		first := m.NextAttemptAt.Sub(f.now)
		if first < f.worker.Backoff {
			t.Fatalf("retry in %v, want at least the backoff %v", first, f.worker.Backoff)
		}

		// Not resent before it is due.
		if n := deliverDue(t, f.worker); n != 0 {
			t.Fatalf("DeliverDue at the same time tried %d messages, want 0", n)
		}
		f.now = m.NextAttemptAt.Add(-time.Millisecond)
		if n := deliverDue(t, f.worker); n != 0 {
			t.Fatalf("DeliverDue just before the retry tried %d messages, want 0", n)
		}
		wantSends(t, f.sender, 1, 0)

		// Second attempt, when due, fails again: a longer wait.
		f.now = m.NextAttemptAt
		deliverDue(t, f.worker)
		wantSends(t, f.sender, 2, 0)
		m = f.message(t, vid)
		wantStatus(t, m, tessera.MessagePending)
		if m.Attempts != 2 {
			t.Fatalf("attempts %d, want 2", m.Attempts)
		}
		second := m.NextAttemptAt.Sub(f.now)
		// Jitter only adds, so the doubled delay is at least 2×Backoff.
		if second <= first || second < 2*f.worker.Backoff {
			t.Errorf("second retry delay %v, want longer than the first %v and at least %v", second, first, 2*f.worker.Backoff)
		}
		if n := deliverDue(t, f.worker); n != 0 {
			t.Fatalf("DeliverDue right after the second failure tried %d messages, want 0", n)
		}

		// Third attempt works.
		f.now = m.NextAttemptAt.Add(time.Millisecond)
		deliverDue(t, f.worker)
		wantSends(t, f.sender, 3, 1)
		got := f.sender.deliveredCopy()[0]
		if got.ID != m.ID || got.To != "bob@example.com" || !strings.Contains(got.Content.Body, code) {
			t.Errorf("delivered %+v, want message %s to bob@example.com with the code", got, m.ID)
		}
		for i, c := range f.sender.calls {
			if c.ID != m.ID {
				t.Errorf("attempt %d had id %q, want the stable %q", i+1, c.ID, m.ID)
			}
		}
		wantStatus(t, f.message(t, vid), tessera.MessageSent)

		f.now = f.now.Add(time.Hour)
		deliverDue(t, f.worker)
		wantSends(t, f.sender, 3, 1)
	})
}

func TestPermanentFailureFailsAtOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		f.sender.fails, f.sender.permanent = -1, true
		vid := f.initiate(t, tessera.MethodEmail, "carol@example.com")

		deliverDue(t, f.worker)
		wantSends(t, f.sender, 1, 0)
		m := f.message(t, vid)
		wantStatus(t, m, tessera.MessageFailed)
		if m.Attempts != 1 || !strings.Contains(m.LastError, "address rejected") {
			t.Errorf("attempts %d, last error %q; want 1 and the provider's error", m.Attempts, m.LastError)
		}

		for _, d := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour} {
			f.now = t0.Add(d)
			if n := deliverDue(t, f.worker); n != 0 {
				t.Fatalf("DeliverDue %v later tried %d messages, want 0", d, n)
			}
		}
		wantSends(t, f.sender, 1, 0)
	})
}

func TestFailsAfterMaxAttempts(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		f.worker.MaxAttempts = 3
		f.sender.fails = -1
		vid := f.initiate(t, tessera.MethodEmail, "dave@example.com")

		for attempt := 1; attempt <= 3; attempt++ {
			if n := deliverDue(t, f.worker); n != 1 {
				t.Fatalf("attempt %d: DeliverDue tried %d messages, want 1", attempt, n)
			}
			wantSends(t, f.sender, attempt, 0)
			m := f.message(t, vid)
			if m.Attempts != attempt {
				t.Fatalf("after attempt %d the row counts %d attempts", attempt, m.Attempts)
			}
			if attempt < 3 {
				wantStatus(t, m, tessera.MessagePending)
				f.now = m.NextAttemptAt
			} else {
				wantStatus(t, m, tessera.MessageFailed)
				if !strings.Contains(m.LastError, "provider unavailable") {
					t.Errorf("last error %q, want the provider's error", m.LastError)
				}
			}
		}

		f.now = f.now.Add(24 * time.Hour)
		if n := deliverDue(t, f.worker); n != 0 {
			t.Errorf("DeliverDue after giving up tried %d messages, want 0", n)
		}
		wantSends(t, f.sender, 3, 0)
	})
}

func TestCrashedInstanceMessageSentAtOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		// Instance A commits the message for its worker, then dies before
		// the in-memory handoff is claimed: nobody holds the message, so
		// worker B's next claim takes it, without waiting for a lease.
		f.engine.Deliver = func(*tessera.Message) {}
		f.engine.DeliveryLease = time.Minute
		vid := f.initiate(t, tessera.MethodEmail, "erin@example.com")

		b := f.newWorker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender})
		if n := deliverDue(t, b); n != 1 {
			t.Fatalf("worker B tried %d messages, want 1", n)
		}
		wantSends(t, f.sender, 1, 1)
		if got := f.sender.deliveredCopy()[0]; got.To != "erin@example.com" || !strings.Contains(got.Content.Body, code) {
			t.Errorf("delivered %+v, want erin@example.com with the code", got)
		}
		wantStatus(t, f.message(t, vid), tessera.MessageSent)

		f.now = t0.Add(time.Hour)
		deliverDue(t, b)
		wantSends(t, f.sender, 1, 1)
	})
}

func TestCrashedWorkerMessageSentAfterLease(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		vid := f.initiate(t, tessera.MethodEmail, "erin@example.com")
		// Worker A claims the message and dies mid-send: its lease, on the
		// database's clock, holds the message from B until it runs out.
		const lease = 400 * time.Millisecond
		claimed, err := db.ClaimMessages(context.Background(), tessera.ChannelEmail, "dead-worker", f.now, lease, 10)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim: %v, %v", claimed, err)
		}
		start := time.Now()
		b := f.newWorker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender})
		f.now = t0.Add(24 * time.Hour) // B's own clock does not end A's lease
		if n := deliverDue(t, b); n != 0 && time.Since(start) < lease {
			t.Fatalf("worker B tried %d messages while A's lease held, want 0", n)
		}
		time.Sleep(time.Until(start.Add(lease + 100*time.Millisecond)))
		if n := deliverDue(t, b); n != 1 {
			t.Fatalf("worker B after the lease tried %d messages, want 1", n)
		}
		wantSends(t, f.sender, 1, 1)
		wantStatus(t, f.message(t, vid), tessera.MessageSent)
	})
}

// claimCounter passes claims to the store and counts what they return.
type claimCounter struct {
	tessera.Store
	claimed, claimedByID, renewed int
}

func (c *claimCounter) ClaimMessages(ctx context.Context, ch tessera.Channel, holder string, now time.Time, lease time.Duration, limit int) ([]*tessera.Message, error) {
	msgs, err := c.Store.ClaimMessages(ctx, ch, holder, now, lease, limit)
	c.claimed += len(msgs)
	return msgs, err
}

func (c *claimCounter) ClaimMessage(ctx context.Context, id, holder string, now time.Time, lease time.Duration) (*tessera.Message, error) {
	c.claimedByID++
	return c.Store.ClaimMessage(ctx, id, holder, now, lease)
}

func (c *claimCounter) RenewLease(ctx context.Context, id, holder string, lease time.Duration) error {
	c.renewed++
	return c.Store.RenewLease(ctx, id, holder, lease)
}

// TestLeasedHandoffNeedsNoClaim: a message the engine wrote leased to the
// worker (as served) is sent without a claim or any other statement
// before the send, once, and no other worker sends it.
func TestLeasedHandoffNeedsNoClaim(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		store := &claimCounter{Store: db}
		w := f.newWorker(store, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender})
		f.engine.Deliver, f.engine.DeliveryLease = w.Enqueue, w.Lease
		f.engine.Reserve, f.engine.Unreserve = w.Reserve, w.Unreserve
		vid := f.initiate(t, tessera.MethodEmail, "grace@example.com")
		// Before its worker sends it, nobody else can.
		deliverDue(t, f.newWorker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender}))
		wantSends(t, f.sender, 0, 0)

		if n := deliverDue(t, w); n != 1 {
			t.Fatalf("DeliverDue tried %d messages, want 1", n)
		}
		if store.claimed != 0 || store.claimedByID != 0 || store.renewed != 0 {
			t.Errorf("claimed %d + %d, renewed %d before the send; want none", store.claimed, store.claimedByID, store.renewed)
		}
		wantSends(t, f.sender, 1, 1)
		wantStatus(t, f.message(t, vid), tessera.MessageSent)
		f.now = t0.Add(2 * w.Lease)
		deliverDue(t, w)
		deliverDue(t, f.newWorker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender}))
		wantSends(t, f.sender, 1, 1)
	})
}

func TestInMemoryHandoff(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		store := &claimCounter{Store: db}
		w := f.newWorker(store, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender})
		f.engine.Deliver, f.engine.DeliveryLease = w.Enqueue, w.Lease
		vid := f.initiate(t, tessera.MethodEmail, "frank@example.com")

		if n := deliverDue(t, w); n != 1 {
			t.Fatalf("DeliverDue tried %d messages, want 1", n)
		}
		if store.claimed != 0 {
			t.Errorf("the store claim returned %d messages, want 0: the message came in memory", store.claimed)
		}
		wantSends(t, f.sender, 1, 1)
		if got := f.sender.deliveredCopy()[0]; got.To != "frank@example.com" || !strings.Contains(got.Content.Body, code) {
			t.Errorf("delivered %+v, want frank@example.com with the code", got)
		}
		wantStatus(t, f.message(t, vid), tessera.MessageSent)

		// Once the lease is over, neither this worker nor another sends it again.
		f.now = t0.Add(2 * w.Lease)
		deliverDue(t, w)
		deliverDue(t, f.newWorker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender}))
		wantSends(t, f.sender, 1, 1)
	})
}

func TestChannelWithoutSenderFails(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		w := f.newWorker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: f.sender})
		vid := f.initiate(t, tessera.MethodPhone, "+14155550123")

		deliverDue(t, w)
		m := f.message(t, vid)
		wantStatus(t, m, tessera.MessageFailed)
		if !strings.Contains(m.LastError, string(tessera.ChannelSMS)) {
			t.Errorf("last error %q does not name the channel %q", m.LastError, tessera.ChannelSMS)
		}
		if m.Attempts != 1 {
			t.Errorf("attempts %d, want 1", m.Attempts)
		}

		f.now = t0.Add(time.Hour)
		deliverDue(t, w)
		wantSends(t, f.sender, 0, 0)
	})
}

func TestLogSenderWritesOneJSONLinePerMessage(t *testing.T) {
	eachStore(t, func(t *testing.T, db *sqlstore.DB) {
		f := newFixture(t, db)
		var buf bytes.Buffer
		logSender := deliver.NewLogSender(&buf)
		w := f.newWorker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: logSender, tessera.ChannelSMS: logSender})
		emailID := f.initiate(t, tessera.MethodEmail, "grace@example.com")
		smsID := f.initiate(t, tessera.MethodPhone, "+14155550123")

		if n := deliverDue(t, w); n != 2 {
			t.Fatalf("DeliverDue tried %d messages, want 2", n)
		}
		wantStatus(t, f.message(t, emailID), tessera.MessageSent)
		wantStatus(t, f.message(t, smsID), tessera.MessageSent)

		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("log sender wrote %d lines, want 2:\n%s", len(lines), buf.String())
		}
		byTo := map[string]map[string]any{}
		for _, line := range lines {
			var fields map[string]any
			if err := json.Unmarshal([]byte(line), &fields); err != nil {
				t.Fatalf("line %q is not JSON: %v", line, err)
			}
			to, _ := fields["to"].(string)
			byTo[to] = fields
		}
		email, sms := byTo["grace@example.com"], byTo["+14155550123"]
		if email == nil || sms == nil {
			t.Fatalf("lines are not one per recipient:\n%s", buf.String())
		}
		if email["channel"] != "email" || sms["channel"] != "sms" {
			t.Errorf("channels %v and %v, want email and sms", email["channel"], sms["channel"])
		}
		if s, _ := email["subject"].(string); s == "" {
			t.Errorf("email line has no subject: %v", email)
		}
		for _, fields := range []map[string]any{email, sms} {
			if body, _ := fields["body"].(string); !strings.Contains(body, code) {
				t.Errorf("line %v: body does not contain the code", fields)
			}
		}
		if email["messageId"] != f.message(t, emailID).ID {
			t.Errorf("email line messageId %v, want %s", email["messageId"], f.message(t, emailID).ID)
		}
	})
}
