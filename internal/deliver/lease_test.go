package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/storetest"
	"github.com/tessera-id/tessera/internal/verify"
)

// leaseStores runs test on SQLite and PostgreSQL (when configured).
func leaseStores(t *testing.T, test func(t *testing.T, db *sqlstore.DB)) {
	for _, s := range []struct {
		name string
		open func(testing.TB) *sqlstore.DB
	}{{"sqlite", storetest.OpenSQLite}, {"postgres", storetest.OpenPostgres}} {
		t.Run(s.name, func(t *testing.T) { test(t, s.open(t)) })
	}
}

// leaseKit is a real engine and real workers on one store, on the real
// clock: leases are measured on the database's clock, so these tests wait.
type leaseKit struct {
	store  tessera.Store
	keys   *secret.Keyring
	engine *verify.Engine
	n      int
}

func newLeaseKit(t *testing.T, store tessera.Store) *leaseKit {
	keys, err := secret.NewKeyring(bytes.Repeat([]byte{7}, secret.KeySize), []secret.Key{{ID: "k1", Key: bytes.Repeat([]byte{8}, secret.KeySize)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &leaseKit{store: store, keys: keys, engine: &verify.Engine{Store: store, Keys: keys, Now: time.Now}}
}

func (k *leaseKit) worker(store tessera.Store, senders map[tessera.Channel]tessera.Sender) *Worker {
	w := NewWorker(store, k.keys, senders, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Poll, w.SendTimeout = 50*time.Millisecond, 10*time.Second
	return w
}

// initiate creates a verification (and its message) through the engine
// and returns the message's recipient and verification id.
func (k *leaseKit) initiate(t *testing.T, method tessera.Method) (to, vid string) {
	t.Helper()
	k.n++
	to = fmt.Sprintf("+1415555%04d", 100+k.n)
	if method == tessera.MethodEmail {
		to = fmt.Sprintf("user%d@example.com", k.n)
	}
	out, err := k.engine.Initiate(context.Background(), "client-1", method, &verify.InitiateRequest{Consumer: to, Issuer: "Acme"})
	if err != nil {
		t.Fatalf("initiate %s: %v", to, err)
	}
	return to, out.Verification.ID
}

// waitSent waits until the messages of vids are all sent.
func (k *leaseKit) waitSent(t *testing.T, vids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		pending := 0
		for _, vid := range vids {
			m, err := k.store.MessageForVerification(context.Background(), "client-1", vid)
			if err != nil {
				t.Fatal(err)
			}
			if m.Status != tessera.MessageSent {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages not sent within %v", pending, len(vids), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run starts w until the test ends.
func run(t *testing.T, w *Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestSlowProviderTwoWorkersNeverSendTwice: Twilio takes longer than the
// lease to answer each message; two workers (two instances) deliver the
// same outbox. The heartbeat keeps each message with the worker sending
// it, so Twilio accepts each exactly once.
func TestSlowProviderTwoWorkersNeverSendTwice(t *testing.T) {
	leaseStores(t, func(t *testing.T, db *sqlstore.DB) {
		const count, lease, slow = 6, 300 * time.Millisecond, 700 * time.Millisecond
		tw := newFakeTwilio(t)
		tw.respond = func(int, twilioRequest) (int, string) { time.Sleep(slow); return 0, "" }
		k := newLeaseKit(t, db)
		var workers []*Worker
		for range 2 {
			w := k.worker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelSMS: tw.sender(t, nil)})
			w.Lease = lease
			workers = append(workers, w)
		}
		// Half the messages are handed over in memory to the first
		// worker, written leased to it (as served): they wait in its
		// queue past their lease while it sends the others slowly.
		var vids []string
		for i := range count {
			if i == count/2 {
				w := workers[0]
				k.engine.Deliver, k.engine.DeliveryLease, k.engine.Reserve, k.engine.Unreserve = w.Enqueue, w.Lease, w.Reserve, w.Unreserve
			}
			_, vid := k.initiate(t, tessera.MethodPhone)
			vids = append(vids, vid)
		}
		for _, w := range workers {
			run(t, w)
		}
		k.waitSent(t, vids, 15*time.Second)
		time.Sleep(2 * lease) // a second send would start now if any worker still thought it owned one
		tw.check()
		seen := map[string]int{}
		for _, r := range tw.acceptedRequests() {
			seen[r.To]++
		}
		if len(seen) != count {
			t.Errorf("Twilio accepted messages for %d numbers, want %d", len(seen), count)
		}
		for to, n := range seen {
			if n != 1 {
				t.Errorf("%s got %d messages, want 1", to, n)
			}
		}
	})
}

// recordingSender records when each message arrived.
type recordingSender struct {
	mu  sync.Mutex
	got map[string]int
}

func (r *recordingSender) Send(_ context.Context, m *tessera.Outgoing) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string]int{}
	}
	r.got[m.To]++
	return nil
}

// TestSlowSMSNeverDelaysEmail: while Twilio holds an SMS request without
// answering, email codes queued after it go out at once through the SMTP
// server.
func TestSlowSMSNeverDelaysEmail(t *testing.T) {
	leaseStores(t, func(t *testing.T, db *sqlstore.DB) {
		k := newLeaseKit(t, db)
		release, started := make(chan struct{}), make(chan struct{}, 10)
		tw := newFakeTwilio(t)
		tw.respond = func(int, twilioRequest) (int, string) {
			started <- struct{}{}
			<-release
			return 0, ""
		}
		var released sync.Once
		letGo := func() { released.Do(func() { close(release) }) }
		t.Cleanup(letGo) // before the fake Twilio closes, which waits for its requests
		be := &smtpBackend{}
		email := newTestSMTPSender(t, SMTPConfig{Port: startSMTP(t, be, nil, nil), TLS: "none"})
		w := k.worker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelSMS: tw.sender(t, nil), tessera.ChannelEmail: email})
		k.engine.Deliver, k.engine.DeliveryLease = w.Enqueue, w.Lease
		run(t, w)

		_, smsVID := k.initiate(t, tessera.MethodPhone)
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the SMS request did not reach Twilio")
		}
		var vids []string
		for range 3 {
			_, vid := k.initiate(t, tessera.MethodEmail)
			vids = append(vids, vid)
		}
		k.waitSent(t, vids, 5*time.Second)
		if n := len(be.received()); n != 3 {
			t.Fatalf("the SMTP server got %d emails, want 3", n)
		}
		if m, _ := db.MessageForVerification(context.Background(), "client-1", smsVID); m.Status != tessera.MessagePending {
			t.Fatalf("the SMS is %s while Twilio holds it", m.Status)
		}
		letGo()
		k.waitSent(t, []string{smsVID}, 5*time.Second)
		tw.check()
	})
}

// claimOutage fails every claim while down is set: a database blip as the
// worker sees it. Everything else goes to the store.
type claimOutage struct {
	tessera.Store
	down     atomic.Bool
	refusals atomic.Int64
}

var errBlip = errors.New("connection reset by peer")

func (c *claimOutage) ClaimMessages(ctx context.Context, ch tessera.Channel, holder string, now time.Time, lease time.Duration, limit int) ([]*tessera.Message, error) {
	if c.down.Load() {
		c.refusals.Add(1)
		return nil, errBlip
	}
	return c.Store.ClaimMessages(ctx, ch, holder, now, lease, limit)
}

func (c *claimOutage) ClaimMessage(ctx context.Context, id, holder string, now time.Time, lease time.Duration) (*tessera.Message, error) {
	if c.down.Load() {
		c.refusals.Add(1)
		return nil, errBlip
	}
	return c.Store.ClaimMessage(ctx, id, holder, now, lease)
}

// TestFailedClaimKeepsTheBatch: messages acknowledged just before the
// claims fail go out as soon as the claims work again, not a lease later.
func TestFailedClaimKeepsTheBatch(t *testing.T) {
	leaseStores(t, func(t *testing.T, db *sqlstore.DB) {
		k := newLeaseKit(t, db)
		store := &claimOutage{Store: db}
		email := &recordingSender{}
		w := k.worker(store, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: email, tessera.ChannelSMS: email})
		w.Lease = time.Minute
		k.engine.Deliver, k.engine.DeliveryLease = w.Enqueue, w.Lease
		store.down.Store(true)
		run(t, w)
		var vids []string
		for i := range 6 {
			method := tessera.MethodEmail
			if i%2 == 1 {
				method = tessera.MethodPhone
			}
			_, vid := k.initiate(t, method)
			vids = append(vids, vid)
		}
		deadline := time.Now().Add(5 * time.Second)
		for store.refusals.Load() < 8 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if store.refusals.Load() == 0 {
			t.Fatal("no claim was refused: the test tests nothing")
		}
		store.down.Store(false)
		k.waitSent(t, vids, 2*time.Second) // the lease is a minute
		email.mu.Lock()
		defer email.mu.Unlock()
		if len(email.got) != 6 {
			t.Errorf("delivered to %d recipients, want 6", len(email.got))
		}
		for to, n := range email.got {
			if n != 1 {
				t.Errorf("%s got %d messages, want 1", to, n)
			}
		}
	})
}

// TestQueueBoundedUnderBurst: a burst larger than the queue never blocks
// the requests; what does not fit waits in the table and goes out at the
// next claims, each message once.
func TestQueueBoundedUnderBurst(t *testing.T) {
	leaseStores(t, func(t *testing.T, db *sqlstore.DB) {
		for _, leased := range []bool{false, true} {
			t.Run(fmt.Sprint("written leased ", leased), func(t *testing.T) { queueBoundedUnderBurst(t, db, leased) })
		}
	})
}

// queueBoundedUnderBurst: with leased, the engine writes the messages
// that find room in the queue leased to the worker (as served), the others
// for anyone to claim.
func queueBoundedUnderBurst(t *testing.T, db *sqlstore.DB, leased bool) {
	{
		const burst, size = 60, 8
		k := newLeaseKit(t, db)
		email := &recordingSender{}
		w := k.worker(db, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: email})
		w.QueueSize, w.Lease = size, time.Minute
		k.engine.Deliver, k.engine.DeliveryLease = w.Enqueue, w.Lease
		if leased {
			k.engine.Reserve, k.engine.Unreserve = w.Reserve, w.Unreserve
		}
		var vids []string
		start := time.Now()
		for range burst {
			_, vid := k.initiate(t, tessera.MethodEmail)
			vids = append(vids, vid)
		}
		queued, overflow := w.Queued()
		if queued > size || queued+overflow != burst {
			t.Fatalf("queued %d, left to the table %d; want at most %d queued, %d in all", queued, overflow, size, burst)
		}
		t.Logf("burst of %d handed over in %v: %d queued, %d left to the table", burst, time.Since(start), queued, overflow)
		for round := 0; ; round++ {
			n, err := w.DeliverDue(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if round > burst {
				t.Fatal("the outbox does not drain")
			}
		}
		k.waitSent(t, vids, time.Second)
		if len(email.got) != burst {
			t.Errorf("delivered to %d recipients, want %d", len(email.got), burst)
		}
		for to, n := range email.got {
			if n != 1 {
				t.Errorf("%s got %d messages, want 1", to, n)
			}
		}
	}
}

// TestLeasedHandoffReleasedAtStop: messages written leased to a worker
// that stops before sending them are given back as it stops, so another
// worker sends them at once rather than after their lease; while the
// lease holds, another worker cannot take them.
func TestLeasedHandoffReleasedAtStop(t *testing.T) {
	leaseStores(t, func(t *testing.T, db *sqlstore.DB) {
		k := newLeaseKit(t, db)
		email := &recordingSender{}
		senders := map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: email}
		w := k.worker(db, senders)
		w.Lease = time.Hour
		k.engine.Deliver, k.engine.DeliveryLease = w.Enqueue, w.Lease
		k.engine.Reserve, k.engine.Unreserve = w.Reserve, w.Unreserve
		var vids []string
		for range 3 {
			_, vid := k.initiate(t, tessera.MethodEmail)
			vids = append(vids, vid)
		}
		other := k.worker(db, senders)
		if n, err := other.DeliverDue(context.Background()); err != nil || n != 0 {
			t.Fatalf("another worker sent %d (%v) of messages leased to the first", n, err)
		}
		w.releaseQueued(context.Background())
		if queued, _ := w.Queued(); queued != 0 {
			t.Fatalf("%d messages still queued after the release", queued)
		}
		if n, err := other.DeliverDue(context.Background()); err != nil || n != 3 {
			t.Fatalf("after the release another worker sent %d (%v), want 3", n, err)
		}
		k.waitSent(t, vids, time.Second)
		for to, n := range email.got {
			if n != 1 {
				t.Errorf("%s got %d messages, want 1", to, n)
			}
		}
	})
}

// silentClaims is a database that stops answering claims: each claim waits
// until its context ends, as a call to a silent server would.
type silentClaims struct {
	tessera.Store
	silent atomic.Bool
}

func (c *silentClaims) ClaimMessages(ctx context.Context, ch tessera.Channel, holder string, now time.Time, lease time.Duration, limit int) ([]*tessera.Message, error) {
	if c.silent.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return c.Store.ClaimMessages(ctx, ch, holder, now, lease, limit)
}

// TestSilentDatabaseHoldsNoLane: with the database silent, a lane's claim
// gives up after StoreTimeout instead of waiting out the outage, so the
// lane is free again, and messages go out as soon as it answers.
func TestSilentDatabaseHoldsNoLane(t *testing.T) {
	k := newLeaseKit(t, storetest.OpenSQLite(t))
	store := &silentClaims{Store: k.store}
	email := &recordingSender{}
	w := k.worker(store, map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: email})
	w.StoreTimeout = 200 * time.Millisecond
	store.silent.Store(true)
	done := make(chan error, 1)
	go func() { _, err := w.DeliverDue(context.Background()); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a claim on a silent database succeeded")
		}
	case <-time.After(3 * time.Second):
		store.silent.Store(false)
		t.Fatal("a claim on a silent database held the lane past 3 s (StoreTimeout 200ms)")
	}
	store.silent.Store(false)
	k.initiate(t, tessera.MethodEmail)
	if n, err := w.DeliverDue(context.Background()); err != nil || n != 1 {
		t.Fatalf("after the database came back: %d sent, %v", n, err)
	}
}
