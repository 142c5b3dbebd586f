// Package deliver sends the messages of the transactional outbox: a worker
// claims due messages, decrypts them, hands them to the sender of their
// channel and records the outcome, retrying with exponential backoff.
// Because a message is written in the same transaction as its
// verification and only marked sent after the provider accepted it, a crash
// or an outage delays a message but never loses it.
package deliver

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/verify"
)

// permanentError marks a failure that retrying cannot fix, such as an
// invalid phone number or a rejected address.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Worker delivers outbox messages. Set the fields, then call Run.
//
// Each channel has a lane of its own (a queue, a goroutine in Run), so a
// slow provider on one channel never delays another. Every message is
// claimed on its own under a lease named after this worker (Holder) and
// measured on the database's clock; while its send runs a heartbeat renews
// the lease, and a send whose lease turns out lost is abandoned and its
// outcome not recorded as a failure, so two workers never both own a
// message.
type Worker struct {
	Store   tessera.Store
	Keys    *secret.Keyring
	Senders map[tessera.Channel]tessera.Sender
	Now     func() time.Time
	Log     *slog.Logger

	// Holder names this worker in the leases it takes; unique per worker.
	Holder string
	// Lease is how long a claimed message is reserved for this worker
	// without renewal; if the process dies, another worker takes it after
	// that. A send in progress renews it every Lease/3.
	Lease time.Duration
	// Batch is how many messages of a channel one claim takes.
	Batch int
	// QueueSize bounds each channel's in-memory queue of messages handed
	// over by this instance's engine; when it is full a message is not
	// queued and waits in the table for the next claim (of any instance).
	QueueSize int
	// Poll is how often the worker looks for due messages without being
	// notified (retries, other instances' crashes).
	Poll time.Duration
	// MaxAttempts is how many tries a message gets before it fails. An
	// operator event (the events channel) is tried instead until it is
	// EventsMaxAge old, so an endpoint's outage of up to that long loses
	// none.
	MaxAttempts  int
	EventsMaxAge time.Duration
	// Backoff is the first retry delay; each retry doubles it, up to
	// MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// SendTimeout bounds one provider call; StoreTimeout one database call,
	// so a silent database holds a lane for at most that long per call.
	SendTimeout, StoreTimeout time.Duration
	// SenderNames names each channel's sender for Observe ("smtp", …).
	SenderNames map[tessera.Channel]string
	// Observe, when set, hears each attempt's result: sent, retry, failed.
	Observe func(channel tessera.Channel, sender, result string)
	// Events, when set, writes a message.failed event in the transaction
	// that gives a message up (not for the events channel's own).
	Events *verify.Events
	// FallBackOverdue, when set, is run every Poll (and by DeliverDue):
	// it moves the messages not reported delivered in time to their next
	// channel (verify.Engine.FallBackOverdue).
	FallBackOverdue func(ctx context.Context) (int, error)

	mu       sync.Mutex
	lanes    map[tessera.Channel]*lane
	overflow int // messages not queued because their lane's queue was full
}

// lane is one channel's queue and state.
type lane struct {
	channel tessera.Channel
	queue   chan *tessera.Message // handed over in memory by this instance's engine
	// slots counts the room taken in queue: messages in it, and those
	// reserved (Reserve) whose writes have not finished yet. At most
	// QueueSize, so a reserved message always finds room.
	slots     atomic.Int64
	wake      chan struct{}
	lastClaim time.Time // touched only by the lane's own loop
}

// DefaultEventsMaxAge is how long an operator event is retried: three
// days, as Standard Webhooks senders commonly do.
const DefaultEventsMaxAge = 72 * time.Hour

// NewWorker returns a worker with sensible defaults.
func NewWorker(store tessera.Store, keys *secret.Keyring, senders map[tessera.Channel]tessera.Sender, log *slog.Logger) *Worker {
	var id [12]byte
	if _, err := crand.Read(id[:]); err != nil {
		panic(err)
	}
	return &Worker{
		Store: store, Keys: keys, Senders: senders, Now: time.Now, Log: log,
		Holder: hex.EncodeToString(id[:]),
		Lease:  time.Minute, Batch: 10, QueueSize: 256, Poll: time.Second, MaxAttempts: 8, EventsMaxAge: DefaultEventsMaxAge,
		Backoff: 2 * time.Second, MaxBackoff: 10 * time.Minute, SendTimeout: 30 * time.Second, StoreTimeout: 5 * time.Second,
	}
}

// channels are the channels with a lane: every channel with a sender, and
// the built-in ones (whose messages fail at once without a sender).
func (w *Worker) channels() []tessera.Channel {
	chs := []tessera.Channel{tessera.ChannelEmail, tessera.ChannelSMS, tessera.ChannelWhatsApp, tessera.ChannelCall}
	for ch := range w.Senders {
		if !slices.Contains(chs, ch) {
			chs = append(chs, ch)
		}
	}
	slices.Sort(chs)
	return chs
}

// lane returns the lane of ch, created on first use; nil for a channel
// without one.
func (w *Worker) lane(ch tessera.Channel) *lane {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lanes == nil {
		w.lanes = map[tessera.Channel]*lane{}
		for _, c := range w.channels() {
			w.lanes[c] = &lane{channel: c, queue: make(chan *tessera.Message, max(w.QueueSize, 1)), wake: make(chan struct{}, 1)}
		}
	}
	return w.lanes[ch]
}

// Reserve takes room in the queue of ch for a message about to be
// written leased to this worker (see verify.Engine.Reserve) and returns
// the lease's holder; false when the queue is full.
func (w *Worker) Reserve(ch tessera.Channel) (holder string, ok bool) {
	l := w.lane(ch)
	if l == nil || !l.takeSlot(w.QueueSize) {
		return "", false
	}
	return w.Holder, true
}

// Unreserve gives back the room of a reserved message that was not
// written.
func (w *Worker) Unreserve(ch tessera.Channel) {
	if l := w.lane(ch); l != nil {
		l.slots.Add(-1)
	}
}

func (l *lane) takeSlot(size int) bool {
	for {
		n := l.slots.Load()
		if n >= int64(max(size, 1)) {
			return false
		}
		if l.slots.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Enqueue hands the worker a message this instance just committed, so it
// is sent without waiting for a poll. It never blocks: when the channel's
// queue is full the message stays in the table, unclaimed, and the next
// claim of any worker takes it. If the process dies first, the same. A
// message written leased to this worker has its room reserved already;
// if this process dies before sending it, another worker takes it once
// the lease has run out.
func (w *Worker) Enqueue(m *tessera.Message) {
	l := w.lane(m.Channel)
	if l == nil {
		return // no lane: it waits in the table (and fails there) like any other
	}
	if m.LeaseHolder != w.Holder && !l.takeSlot(w.QueueSize) {
		w.mu.Lock()
		w.overflow++
		w.mu.Unlock()
		notify(l)
		return
	}
	select {
	case l.queue <- m:
	default:
		// Cannot happen while slots holds (it bounds the queue's length
		// by its capacity); a leased message would wait out its lease.
		l.slots.Add(-1)
		w.mu.Lock()
		w.overflow++
		w.mu.Unlock()
	}
	notify(l)
}

// Queued returns how many messages wait in the in-memory queues and how
// many were left to the table because a queue was full.
func (w *Worker) Queued() (queued, overflow int) {
	for _, ch := range w.channels() {
		queued += len(w.lane(ch).queue)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return queued, w.overflow
}

// Notify wakes every lane. It never blocks.
func (w *Worker) Notify() {
	for _, ch := range w.channels() {
		notify(w.lane(ch))
	}
}

func notify(l *lane) {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run delivers messages until ctx ends, one goroutine per channel. A
// message in flight when ctx ends is finished, so none is left half-sent.
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if w.FallBackOverdue != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runFallbackTimers(ctx)
		}()
	}
	for _, ch := range w.channels() {
		l := w.lane(ch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.runLane(ctx, l)
		}()
	}
	wg.Wait()
	w.releaseQueued(context.WithoutCancel(ctx))
}

// releaseQueued gives back, untried, the messages still queued in memory
// that were written leased to this worker, so that the next instance (or
// this one restarted, under a new Holder) sends them at once instead of
// after their lease.
func (w *Worker) releaseQueued(ctx context.Context) {
	for _, ch := range w.channels() {
		l := w.lane(ch)
		for {
			var m *tessera.Message
			select {
			case m = <-l.queue:
			default:
			}
			if m == nil {
				break
			}
			l.slots.Add(-1)
			if m.LeaseHolder != w.Holder {
				continue // unleased: claimable by anyone already
			}
			if err := w.storeCall(ctx, func(ctx context.Context) error {
				return w.Store.RetryMessage(ctx, m.ID, w.Holder, m.Attempts, m.NextAttemptAt, m.LastError)
			}); err != nil {
				w.Log.Warn("outbox: release queued message", "message", m.ID, "err", err)
			}
		}
	}
}

func (w *Worker) runLane(ctx context.Context, l *lane) {
	ticker := time.NewTicker(w.Poll)
	defer ticker.Stop()
	for {
		for {
			n, err := w.deliverLane(context.WithoutCancel(ctx), l)
			if err != nil {
				w.Log.Error("outbox: deliver", "channel", l.channel, "err", err)
				break
			}
			if n == 0 || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		case <-ticker.C:
		}
	}
}

// runFallbackTimers looks for messages whose fallback timer ran out every
// Poll until ctx ends.
func (w *Worker) runFallbackTimers(ctx context.Context) {
	ticker := time.NewTicker(w.Poll)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if err := w.fallBackOverdue(context.WithoutCancel(ctx)); err != nil {
			w.Log.Error("outbox: fallback timers", "err", err)
		}
	}
}

func (w *Worker) fallBackOverdue(ctx context.Context) error {
	if w.FallBackOverdue == nil {
		return nil
	}
	return w.storeCall(ctx, func(ctx context.Context) error {
		_, err := w.FallBackOverdue(ctx)
		return err
	})
}

// DeliverDue runs one round of every channel's lane, one after the other:
// the messages handed over in memory (up to Batch), then due ones claimed
// from the store, each tried once. It returns how many it tried.
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	total := 0
	var errs []error
	if err := w.fallBackOverdue(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, ch := range w.channels() {
		n, err := w.deliverLane(ctx, w.lane(ch))
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// deliverLane runs one round of a lane. A failed claim loses nothing: the
// in-memory queue is untouched by it, and what it would have claimed stays
// claimable in the table.
func (w *Worker) deliverLane(ctx context.Context, l *lane) (int, error) {
	now := w.Now()
	tried := 0
	for tried < w.Batch {
		var m *tessera.Message
		select {
		case m = <-l.queue:
		default:
		}
		if m == nil {
			break
		}
		l.slots.Add(-1)
		held, err := w.take(ctx, m, now)
		if err != nil {
			if tessera.ErrorCode(err) != tessera.ENOTFOUND {
				// The table still has it: the next claim takes it (once
				// its lease, if any, has run out).
				w.Log.Warn("outbox: claim handed-over message", "message", m.ID, "err", err)
			}
			continue // another worker has it, or it is done
		}
		tried++
		w.deliver(ctx, held.m, held.since)
	}
	// Under steady load the queue is never empty; still look in the store
	// every Poll for retries, overflow and messages of instances that died.
	if tried >= w.Batch && now.Sub(l.lastClaim) < w.Poll {
		return tried, nil
	}
	l.lastClaim = now
	var claimed []*tessera.Message
	err := w.storeCall(ctx, func(ctx context.Context) (err error) {
		claimed, err = w.Store.ClaimMessages(ctx, l.channel, w.Holder, now, w.Lease, w.Batch)
		return err
	})
	if err != nil {
		return tried, fmt.Errorf("claim %s: %w", l.channel, err)
	}
	for i, m := range claimed {
		// Claimed together, sent one by one: each is claimed again (its
		// lease restarted) just before its send, and skipped if another
		// worker took it after its lease ran out meanwhile.
		since := time.Now()
		if i > 0 {
			if err := w.storeCall(ctx, func(ctx context.Context) error { return w.Store.RenewLease(ctx, m.ID, w.Holder, w.Lease) }); err != nil {
				if tessera.ErrorCode(err) != tessera.ENOTFOUND {
					w.Log.Warn("outbox: renew lease", "message", m.ID, "err", err)
				}
				continue
			}
		}
		tried++
		w.deliver(ctx, m, since)
	}
	return tried, nil
}

// heldMessage is a message this worker holds, and since when at the
// latest (this process's clock) its lease was known to be current.
type heldMessage struct {
	m     *tessera.Message
	since time.Time
}

// take makes a message handed over in memory this worker's to send. One
// written leased to this worker is so already, while well within its
// lease: sending it needs no statement (the send's heartbeat renews the
// lease in time, Lease/3 into the send). An older one is renewed, which
// holds only if nobody claimed it since its lease ran out. Any other is
// claimed as ClaimMessages would.
func (w *Worker) take(ctx context.Context, m *tessera.Message, now time.Time) (heldMessage, error) {
	if m.LeaseHolder == w.Holder {
		if time.Since(m.LeasedFrom) < w.Lease/2 {
			return heldMessage{m, m.LeasedFrom}, nil
		}
		since := time.Now()
		err := w.storeCall(ctx, func(ctx context.Context) error { return w.Store.RenewLease(ctx, m.ID, w.Holder, w.Lease) })
		return heldMessage{m, since}, err
	}
	since := time.Now()
	var claimed *tessera.Message
	err := w.storeCall(ctx, func(ctx context.Context) (err error) {
		claimed, err = w.Store.ClaimMessage(ctx, m.ID, w.Holder, now, w.Lease)
		return err
	})
	return heldMessage{claimed, since}, err
}

// storeCall runs one database call under StoreTimeout: the lanes run on a
// context that is never cancelled (a send in progress must be recorded),
// so without it a silent database would hold a lane for the whole outage.
func (w *Worker) storeCall(ctx context.Context, call func(ctx context.Context) error) error {
	if w.StoreTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.StoreTimeout)
		defer cancel()
	}
	return call(ctx)
}

// deliver sends a message this worker holds (its lease current at since)
// and records the outcome.
func (w *Worker) deliver(ctx context.Context, m *tessera.Message, since time.Time) {
	err, lost := w.sendHeld(ctx, m, since)
	if err == nil {
		w.observe(m.Channel, "sent")
		// The provider has it: recorded even if the lease was lost, so
		// nobody sends it a third time.
		if err := w.storeCall(ctx, func(ctx context.Context) error { return w.markSent(ctx, m) }); err != nil {
			// The lease will hand it out again, which is the "at least
			// once" of at-least-once delivery.
			w.Log.Error("outbox: mark sent", "message", m.ID, "err", err)
		}
		return
	}
	if lost {
		// Another worker owns the message now; its outcome is its own.
		w.Log.Warn("outbox: lease lost during send; abandoned", "message", m.ID, "channel", m.Channel, "err", err)
		return
	}
	if err := w.recordFailure(ctx, m, err); err != nil {
		w.Log.Error("outbox: record failure", "message", m.ID, "err", err)
	}
}

// markSent records m sent and, when its content asks for a fallback on a
// timer, starts the timer.
func (w *Worker) markSent(ctx context.Context, m *tessera.Message) error {
	now := w.Now()
	if ts, ok := w.Store.(tessera.TimedFallbackStore); ok && m.VerificationID != "" {
		if out, err := w.open(m); err == nil && out.Content.FallbackAfter > 0 && len(out.Content.Fallback) > 0 {
			return ts.MarkSentFallBackAt(ctx, m.ID, now, now.Add(time.Duration(out.Content.FallbackAfter)*time.Second))
		}
	}
	return w.Store.MarkMessagesSent(ctx, []string{m.ID}, now)
}

// sendHeld sends m while a heartbeat renews its lease every Lease/3. If a
// renewal finds the lease lost, or renewals fail until the lease may have
// run out, the send is cancelled and lost is true.
func (w *Worker) sendHeld(ctx context.Context, m *tessera.Message, since time.Time) (err error, lost bool) {
	sendCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lostFlag atomic.Bool
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		every := max(w.Lease/3, time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		held := since // monotonic: when the lease was last known renewed
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			err := w.storeCall(ctx, func(ctx context.Context) error { return w.Store.RenewLease(ctx, m.ID, w.Holder, w.Lease) })
			switch {
			case err == nil:
				held = time.Now()
				continue
			case tessera.ErrorCode(err) == tessera.ENOTFOUND:
			case time.Since(held) < w.Lease-every:
				w.Log.Warn("outbox: renew lease", "message", m.ID, "err", err)
				continue
			}
			lostFlag.Store(true)
			cancel()
			return
		}
	}()
	err = w.send(sendCtx, m)
	close(done)
	<-stopped
	return err, lostFlag.Load()
}

func (w *Worker) observe(ch tessera.Channel, result string) {
	if w.Observe != nil {
		w.Observe(ch, w.SenderNames[ch], result)
	}
}

func (w *Worker) send(ctx context.Context, m *tessera.Message) error {
	sender, ok := w.Senders[m.Channel]
	if !ok {
		return Permanent(fmt.Errorf("no sender configured for channel %q", m.Channel))
	}
	out, err := w.open(m)
	if err != nil {
		return Permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.SendTimeout)
	defer cancel()
	return sender.Send(ctx, out)
}

// open decrypts and decodes m's content.
func (w *Worker) open(m *tessera.Message) (*tessera.Outgoing, error) {
	plain, err := w.Keys.Open(m.Sealed, verify.MessageAD(m.ID))
	if err != nil {
		return nil, fmt.Errorf("decrypt message: %w", err)
	}
	out := &tessera.Outgoing{ID: m.ID, Channel: m.Channel, To: m.To}
	if err := json.Unmarshal(plain, &out.Content); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	return out, nil
}

// recordFailure schedules a retry with exponential backoff and jitter, or
// gives the message up when the error is permanent or tries run out.
func (w *Worker) recordFailure(ctx context.Context, m *tessera.Message, sendErr error) error {
	attempts := m.Attempts + 1
	msg := sendErr.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	if IsPermanent(sendErr) || w.exhausted(m, attempts) {
		w.observe(m.Channel, "failed")
		w.Log.Warn("outbox: message failed", "message", m.ID, "channel", m.Channel, "attempts", attempts, "err", msg)
		done, err := w.fallBack(ctx, m, attempts, msg)
		if done {
			return err
		}
		if err != nil {
			w.Log.Error("outbox: no fallback: the message fails", "message", m.ID, "err", err)
		}
		return w.storeCall(ctx, func(ctx context.Context) error { return w.fail(ctx, m, attempts, msg) })
	}
	delay := w.Backoff << (attempts - 1)
	if delay > w.MaxBackoff || delay <= 0 {
		delay = w.MaxBackoff
	}
	delay += time.Duration(rand.Int64N(int64(delay)/5 + 1)) // jitter, so retries of many messages spread out
	w.observe(m.Channel, "retry")
	w.Log.Info("outbox: will retry", "message", m.ID, "channel", m.Channel, "attempts", attempts, "in", delay.String(), "err", msg)
	return w.storeCall(ctx, func(ctx context.Context) error {
		return w.Store.RetryMessage(ctx, m.ID, w.Holder, attempts, w.Now().Add(delay), msg)
	})
}

// exhausted reports whether m, failed attempts times, gets no more tries.
func (w *Worker) exhausted(m *tessera.Message, attempts int) bool {
	if m.Channel == tessera.ChannelEvents {
		return w.Now().Sub(m.CreatedAt) >= w.EventsMaxAge
	}
	return attempts >= w.MaxAttempts
}

// fail gives m up and, in the same transaction, writes its message.failed
// event; the event is handed to this worker once committed.
func (w *Worker) fail(ctx context.Context, m *tessera.Message, attempts int, lastErr string) error {
	txs, ok := w.Store.(tessera.Transactor)
	if !ok || m.Channel == tessera.ChannelEvents || !w.Events.Wants(tessera.EventMessageFailed) {
		return w.Store.FailMessage(ctx, m.ID, w.Holder, attempts, lastErr)
	}
	var queued *tessera.Message
	err := txs.InTx(ctx, func(tx tessera.TxStore) error {
		if err := tx.FailMessage(ctx, m.ID, w.Holder, attempts, lastErr); err != nil {
			return err
		}
		var err error
		queued, err = w.Events.Queue(ctx, tx, tessera.EventMessageFailed, verify.MessageEventOf(m, string(tessera.MessageFailed), "outbox", "", attempts))
		return err
	})
	if err == nil && queued != nil {
		w.Enqueue(queued)
	}
	return err
}
