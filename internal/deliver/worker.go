// Package deliver sends the messages of the transactional outbox: a worker
// claims due messages, decrypts them, hands them to the sender of their
// channel and records the outcome, retrying with exponential backoff.
// Because a message is written in the same transaction as its
// verification and only marked sent after the provider accepted it, a crash
// or an outage delays a message but never loses it.
package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
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
type Worker struct {
	Store   tessera.Store
	Keys    *secret.Keyring
	Senders map[tessera.Channel]tessera.Sender
	Now     func() time.Time
	Log     *slog.Logger

	// Lease is how long a claimed message is reserved for this worker; if
	// the process dies, another worker takes it after that.
	Lease time.Duration
	// Batch is how many messages one claim takes.
	Batch int
	// Poll is how often the worker looks for due messages without being
	// notified (retries, other instances' crashes).
	Poll time.Duration
	// MaxAttempts is how many tries a message gets before it fails.
	MaxAttempts int
	// Backoff is the first retry delay; each retry doubles it, up to
	// MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// SendTimeout bounds one provider call.
	SendTimeout time.Duration
	// SenderNames names each channel's sender for Observe ("smtp", …).
	SenderNames map[tessera.Channel]string
	// Observe, when set, hears each attempt's result: sent, retry, failed.
	Observe func(channel tessera.Channel, sender, result string)

	wake chan struct{}

	mu        sync.Mutex
	queue     []*tessera.Message // handed over in memory by this instance's engine
	lastClaim time.Time
}

// NewWorker returns a worker with sensible defaults.
func NewWorker(store tessera.Store, keys *secret.Keyring, senders map[tessera.Channel]tessera.Sender, log *slog.Logger) *Worker {
	return &Worker{
		Store: store, Keys: keys, Senders: senders, Now: time.Now, Log: log,
		Lease: time.Minute, Batch: 100, Poll: time.Second, MaxAttempts: 8,
		Backoff: 2 * time.Second, MaxBackoff: 10 * time.Minute, SendTimeout: 30 * time.Second,
		wake: make(chan struct{}, 1),
	}
}

// Enqueue hands the worker a message this instance just committed, leased
// to it (see tessera.Message.LockedUntil), so it is sent without another
// trip to the database. If the process dies first, the lease runs out and
// any instance's worker sends it.
func (w *Worker) Enqueue(m *tessera.Message) {
	w.mu.Lock()
	w.queue = append(w.queue, m)
	w.mu.Unlock()
	w.Notify()
}

// Notify wakes the worker. It never blocks.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers messages until ctx ends. A batch in flight when ctx ends is
// finished, so no message is left half-sent (its lease would hand it on
// anyway).
func (w *Worker) Run(ctx context.Context) {
	ticker := time.NewTicker(w.Poll)
	defer ticker.Stop()
	for {
		for {
			n, err := w.DeliverDue(context.WithoutCancel(ctx))
			if err != nil {
				w.Log.Error("outbox: deliver", "err", err)
				break
			}
			if n == 0 || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-ticker.C:
		}
	}
}

// DeliverDue takes one batch (messages handed over in memory first, then
// due ones claimed from the store) and tries each once. It returns how
// many it tried.
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	now := w.Now()
	w.mu.Lock()
	n := min(len(w.queue), w.Batch)
	msgs := append([]*tessera.Message(nil), w.queue[:n]...)
	w.queue = w.queue[n:]
	// Under steady load the queue is never empty; still look in the store
	// every Poll for retries and for messages of instances that died.
	claim := len(msgs) < w.Batch && (n == 0 || now.Sub(w.lastClaim) >= w.Poll)
	if claim {
		w.lastClaim = now
	}
	w.mu.Unlock()
	if claim {
		claimed, err := w.Store.ClaimMessages(ctx, now, w.Lease, w.Batch-len(msgs))
		if err != nil {
			return 0, fmt.Errorf("claim: %w", err)
		}
		for _, m := range claimed {
			// A handed-over message whose lease ran out while it waited in
			// the queue is claimed too; send it once.
			if !slices.ContainsFunc(msgs, func(q *tessera.Message) bool { return q.ID == m.ID }) {
				msgs = append(msgs, m)
			}
		}
	}
	for _, m := range msgs {
		err := w.send(ctx, m)
		if err == nil {
			w.observe(m.Channel, "sent")
			// Marked at once, not after the batch: a slow provider must not
			// let the lease run out on messages already delivered.
			if err := w.Store.MarkMessagesSent(ctx, []string{m.ID}, w.Now()); err != nil {
				// The provider has it; the lease will hand it out again,
				// which is the "at least once" of at-least-once delivery.
				w.Log.Error("outbox: mark sent", "message", m.ID, "err", err)
			}
			continue
		}
		if err := w.recordFailure(ctx, m, err); err != nil {
			w.Log.Error("outbox: record failure", "message", m.ID, "err", err)
		}
	}
	return len(msgs), nil
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
	plain, err := w.Keys.Open(m.Sealed, verify.MessageAD(m.ID))
	if err != nil {
		return Permanent(fmt.Errorf("decrypt message: %w", err))
	}
	out := &tessera.Outgoing{ID: m.ID, Channel: m.Channel, To: m.To}
	if err := json.Unmarshal(plain, &out.Content); err != nil {
		return Permanent(fmt.Errorf("decode message: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, w.SendTimeout)
	defer cancel()
	return sender.Send(ctx, out)
}

// recordFailure schedules a retry with exponential backoff and jitter, or
// gives the message up when the error is permanent or tries run out.
func (w *Worker) recordFailure(ctx context.Context, m *tessera.Message, sendErr error) error {
	attempts := m.Attempts + 1
	msg := sendErr.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	if IsPermanent(sendErr) || attempts >= w.MaxAttempts {
		w.observe(m.Channel, "failed")
		w.Log.Warn("outbox: message failed", "message", m.ID, "channel", m.Channel, "attempts", attempts, "err", msg)
		return w.Store.FailMessage(ctx, m.ID, attempts, msg)
	}
	delay := w.Backoff << (attempts - 1)
	if delay > w.MaxBackoff || delay <= 0 {
		delay = w.MaxBackoff
	}
	delay += time.Duration(rand.Int64N(int64(delay)/5 + 1)) // jitter, so retries of many messages spread out
	w.observe(m.Channel, "retry")
	w.Log.Info("outbox: will retry", "message", m.ID, "channel", m.Channel, "attempts", attempts, "in", delay.String(), "err", msg)
	return w.Store.RetryMessage(ctx, m.ID, attempts, w.Now().Add(delay), msg)
}
