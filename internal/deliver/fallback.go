package deliver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/verify"
)

// fallBack hands message m, which failed for good on its channel, over to
// the next channel of its fallback order, if it has one and the store can:
// m is failed and its successor queued in one transaction (FailOver). It
// reports whether it did; when not, the caller fails m as usual.
func (w *Worker) fallBack(ctx context.Context, m *tessera.Message, attempts int, lastErr string) (bool, error) {
	store, ok := w.Store.(tessera.FallbackStore)
	if !ok || m.Sealed == nil {
		return false, nil
	}
	plain, err := w.Keys.Open(m.Sealed, verify.MessageAD(m.ID))
	if err != nil {
		return false, nil // failed as undecryptable anyway
	}
	var content tessera.MessageContent
	if json.Unmarshal(plain, &content) != nil || len(content.Fallback) == 0 {
		return false, nil
	}
	now := w.Now()
	// A verification deleted, used, expired or locked while this message
	// was retried no longer needs its code: no call or message more.
	if m.VerificationID != "" {
		v, err := w.Store.Verification(ctx, m.Owner, m.VerificationID)
		if tessera.ErrorCode(err) == tessera.ENOTFOUND || err == nil && !verify.AwaitsCode(v, now) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	next := &tessera.Message{
		ID: uuid.NewString(), Owner: m.Owner, VerificationID: m.VerificationID,
		Channel: content.Fallback[0], To: m.To, Status: tessera.MessagePending, NextAttemptAt: now,
		// Later than m, so the newest message of the verification is the
		// one still in play even when the clock has not moved.
		CreatedAt: maxTime(now, m.CreatedAt.Add(time.Millisecond)),
	}
	content.Fallback = content.Fallback[1:]
	if plain, err = json.Marshal(content); err != nil {
		return false, err
	}
	if next.Sealed, err = w.Keys.Seal(plain, verify.MessageAD(next.ID)); err != nil {
		return false, err
	}
	if err := w.storeCall(ctx, func(ctx context.Context) error { return store.FailOver(ctx, m.ID, w.Holder, attempts, lastErr, next) }); err != nil {
		return true, err
	}
	w.Log.Info("outbox: falling back to the next channel", "message", m.ID, "channel", m.Channel, "next", next.ID, "next_channel", next.Channel)
	w.Enqueue(next)
	return true, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
