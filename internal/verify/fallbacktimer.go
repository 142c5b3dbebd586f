package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tessera-id/tessera"
)

// The bounds of a verification's fallbackAfter, in seconds: carriers take
// a few seconds to report a delivered SMS, and a code nobody received for
// an hour is better sent again.
const (
	MinFallbackAfter = 10
	MaxFallbackAfter = 3600
)

// fallbacksPerRound bounds the messages one FallBackOverdue handles, so a
// backlog (after an outage) is worked off in rounds of bounded length.
const fallbacksPerRound = 50

// fallbackAfterFor is how many seconds a new verification's messages wait
// for a delivery report before the next channel of order is tried; 0 for
// none. requested is the request's fallbackAfter (nil: the server's
// FallbackAfter). Codes without a kept copy (NoResend: the accounts') have
// nothing to send the next channel later, so they fall back only when a
// send fails.
func (e *Engine) fallbackAfterFor(m tessera.Method, requested *int, order []tessera.Channel, expiry time.Duration, noResend bool) (int, error) {
	if requested == nil {
		if len(order) == 0 || noResend || !e.DeliveryReports {
			return 0, nil
		}
		return int(e.FallbackAfter / time.Second), nil
	}
	after := *requested
	switch {
	case !m.Phone():
		return 0, errors.New("only the phone methods (phone, whatsapp, call) fall back to other channels")
	case after == 0:
		return 0, nil
	case after < MinFallbackAfter || after > MaxFallbackAfter:
		return 0, fmt.Errorf("must be 0 (fall back only when a channel refuses the message) or %d to %d seconds", MinFallbackAfter, MaxFallbackAfter)
	case !e.DeliveryReports:
		return 0, errors.New("this server receives no delivery reports (TESSERA_PUBLIC_URL and the Twilio sender), so it cannot tell a message undelivered")
	case time.Duration(after)*time.Second >= expiry:
		return 0, errors.New("must be shorter than the code's lifetime (policy.expiredOn)")
	case noResend:
		return 0, nil
	}
	return after, nil
}

// FallBackOverdue sends the next channel of every message whose fallback
// timer ran out with no delivery report (tessera.MessageContent's
// FallbackAfter), and returns how many it queued. The timers live in the
// outbox, so any instance's worker finds them, whichever instance sent
// the message; of instances that find one at the same time, one queues
// the next message (a conditional update). A message whose verification
// was used, expired or locked, that a newer message of its verification
// (a resend) superseded, or whose order has nothing left, is taken off
// its timer.
func (e *Engine) FallBackOverdue(ctx context.Context) (int, error) {
	ts, ok := e.Store.(tessera.TimedFallbackStore)
	if !ok {
		return 0, nil
	}
	now := e.now()
	due, err := ts.FallbacksDue(ctx, now, fallbacksPerRound)
	if err != nil {
		return 0, err
	}
	queued := 0
	var errs []error
	for _, m := range due {
		next, err := e.fallBackOverdue(ctx, ts, m, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("message %s: %w", m.ID, err))
			continue
		}
		if next != nil {
			queued++
		}
	}
	return queued, errors.Join(errs...)
}

func (e *Engine) fallBackOverdue(ctx context.Context, ts tessera.TimedFallbackStore, m *tessera.Message, now time.Time) (*tessera.Message, error) {
	newest, err := e.Store.MessageForVerification(ctx, m.Owner, m.VerificationID)
	if err != nil && tessera.ErrorCode(err) != tessera.ENOTFOUND {
		return nil, err
	}
	var next *tessera.Message
	if err == nil && newest.ID == m.ID {
		if next, err = e.successor(ctx, m, now); err != nil {
			return nil, err
		}
	}
	if next == nil {
		return nil, ts.StopFallback(ctx, m.ID)
	}
	note := fmt.Sprintf("not reported delivered within %s: fell back to %s", m.FallbackAt.Sub(m.SentAt).Round(time.Second), next.Channel)
	err = ts.FallBackUndelivered(ctx, m.ID, now, note, next)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return nil, nil // reported meanwhile, or another instance did it
	}
	if err != nil {
		return nil, err
	}
	if e.Log != nil {
		e.Log.Info("outbox: not reported delivered in time; falling back to the next channel", "message", m.ID, "channel", m.Channel, "next", next.ID, "next_channel", next.Channel)
	}
	e.handOver(next)
	return next, nil
}
