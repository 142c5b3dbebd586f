package verify

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
)

// Events writes operator events (TESSERA_EVENTS_URL) into the outbox, on
// the events channel, in the transaction of the change they report: the
// outbox worker then sends each as a Standard Webhooks request, with
// retries, so neither a crash nor the endpoint's outage loses one. A nil
// *Events sends nothing.
type Events struct {
	Keys *secret.Keyring
	Now  func() time.Time
	// Random supplies event ids (crypto/rand when nil).
	Random io.Reader
	// Types are the event types sent, or a family with ".*"
	// ("account.*"); empty: every type.
	Types map[string]bool
}

// Wants reports whether events of typ are sent.
func (ev *Events) Wants(typ string) bool {
	if ev == nil {
		return false
	}
	if len(ev.Types) == 0 || ev.Types[typ] {
		return true
	}
	family, _, _ := strings.Cut(typ, ".")
	return ev.Types[family+".*"]
}

// eventBody is an event as the endpoint receives it: the Standard
// Webhooks payload shape, with the id the webhook-id header repeats.
type eventBody struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

// Queue writes an event of typ with data into store's outbox (store may
// be bound to a transaction, and should be: the event then commits with
// the change) and returns its message, to hand to the worker once
// committed; nil when typ is not sent. data holds ids and states: never a
// code, a password or a full address.
func (ev *Events) Queue(ctx context.Context, store tessera.Store, typ string, data any) (*tessera.Message, error) {
	if !ev.Wants(typ) {
		return nil, nil
	}
	random := ev.Random
	if random == nil {
		random = rand.Reader
	}
	u, err := newID(random)
	if err != nil {
		return nil, err
	}
	now := ev.Now()
	id := "evt_" + strings.ReplaceAll(u, "-", "")
	body, err := json.Marshal(eventBody{ID: id, Type: typ, Timestamp: now.UTC().Format(time.RFC3339Nano), Data: data})
	if err != nil {
		return nil, err
	}
	// The worker hands senders a MessageContent: the event's JSON is its
	// body, posted as it is.
	plain, err := json.Marshal(tessera.MessageContent{Body: string(body)})
	if err != nil {
		return nil, err
	}
	m := &tessera.Message{ID: id, Channel: tessera.ChannelEvents, To: typ, Status: tessera.MessagePending, NextAttemptAt: now, CreatedAt: now}
	if m.Sealed, err = ev.Keys.Seal(plain, MessageAD(id)); err != nil {
		return nil, err
	}
	if err := store.QueueMessage(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// VerificationEvent is the data of the verification.* events.
type VerificationEvent struct {
	VerificationID string `json:"verificationId"`
	// Owner is the API client that created the verification (its id), or
	// "tessera:accounts" for the codes of Tessera's own accounts.
	Owner       string         `json:"owner"`
	Method      tessera.Method `json:"method"`
	Destination string         `json:"destination,omitempty"` // masked; none for google_auth
	Attempts    int            `json:"attempts"`
	MaxAttempts int            `json:"maxAttempts"`
}

// MessageEvent is the data of the message.* events.
type MessageEvent struct {
	MessageID      string          `json:"messageId"`
	VerificationID string          `json:"verificationId,omitempty"` // none for a notice
	Owner          string          `json:"owner"`
	Channel        tessera.Channel `json:"channel"`
	Destination    string          `json:"destination"` // masked
	// Status is the provider's report (delivered, undelivered, failed),
	// or "failed" when the outbox gave the message up (Reason "outbox").
	Status        string `json:"status"`
	Reason        string `json:"reason"` // "provider" or "outbox"
	ProviderError string `json:"providerError,omitempty"`
	Attempts      int    `json:"attempts,omitempty"` // the outbox's tries, for Reason "outbox"
}

func verificationEvent(v *tessera.Verification) VerificationEvent {
	d := VerificationEvent{VerificationID: v.ID, Owner: v.Owner, Method: v.Method, Attempts: v.Attempts, MaxAttempts: v.MaxAttempts}
	if v.Method != tessera.MethodGoogleAuth {
		d.Destination = MaskDestination(v.Method.Channel(), v.Consumer)
	}
	return d
}

// MessageEventOf is the data of a message.* event about m.
func MessageEventOf(m *tessera.Message, status, reason, providerError string, attempts int) MessageEvent {
	return MessageEvent{
		MessageID: m.ID, VerificationID: m.VerificationID, Owner: m.Owner, Channel: m.Channel,
		Destination: MaskDestination(m.Channel, m.To), Status: status, Reason: reason, ProviderError: providerError, Attempts: attempts,
	}
}

// wantsVerificationEvents reports whether a code check must write events.
func (e *Engine) wantsVerificationEvents() bool {
	return e.Events.Wants(tessera.EventVerificationApproved) || e.Events.Wants(tessera.EventVerificationFailed) ||
		e.Events.Wants(tessera.EventVerificationLocked)
}

// checkCode is Store.CheckCode that also writes the verification events of
// its outcome in the same transaction: a right code, a wrong one and, when
// that used up the attempts, the lock.
func (e *Engine) checkCode(ctx context.Context, owner string, method tessera.Method, id string, now time.Time, hashes [][]byte, check func(*tessera.Verification) bool) (*tessera.Verification, bool, error) {
	// With hashes, the code is right if the stored hash is one of them;
	// otherwise check decides.
	checkIn := func(s tessera.Store) (*tessera.Verification, bool, error) {
		if hashes != nil {
			return s.CheckCodeHash(ctx, owner, method, id, now, hashes)
		}
		return s.CheckCode(ctx, owner, method, id, now, check)
	}
	txs, ok := e.Store.(tessera.Transactor)
	if !ok || !e.wantsVerificationEvents() {
		return checkIn(e.Store)
	}
	var v *tessera.Verification
	var right bool
	var queued []*tessera.Message
	err := txs.InTx(ctx, func(tx tessera.TxStore) error {
		queued = queued[:0]
		var err error
		if v, right, err = checkIn(tx); err != nil {
			return err
		}
		types := []string{tessera.EventVerificationApproved}
		if !right {
			types = []string{tessera.EventVerificationFailed}
			if v.Locked() {
				types = append(types, tessera.EventVerificationLocked)
			}
		}
		for _, typ := range types {
			m, err := e.Events.Queue(ctx, tx, typ, verificationEvent(v))
			if err != nil {
				return err
			}
			if m != nil {
				queued = append(queued, m)
			}
		}
		return nil
	})
	if err != nil {
		return v, false, err
	}
	for _, m := range queued {
		e.handOver(m)
	}
	return v, right, nil
}

// RecordDelivery records a provider's final report on message id (see
// tessera.DeliveryStore) and, in the same transaction, its
// message.delivered or message.failed event.
func (e *Engine) RecordDelivery(ctx context.Context, id, providerID string, status tessera.DeliveryStatus, providerError string, at time.Time) error {
	store, ok := e.Store.(tessera.DeliveryStore)
	if !ok {
		return tessera.Errorf(tessera.ENOTFOUND, "Not found")
	}
	typ := tessera.EventMessageFailed
	if status == tessera.DeliveryDelivered {
		typ = tessera.EventMessageDelivered
	}
	txs, ok := e.Store.(tessera.Transactor)
	if !ok || !e.Events.Wants(typ) {
		return store.RecordDelivery(ctx, id, providerID, status, providerError, at)
	}
	var queued *tessera.Message
	err := txs.InTx(ctx, func(tx tessera.TxStore) error {
		ds, ok := tx.(tessera.DeliveryStore)
		if !ok {
			return tessera.Errorf(tessera.ENOTFOUND, "Not found")
		}
		if err := ds.RecordDelivery(ctx, id, providerID, status, providerError, at); err != nil {
			return err
		}
		m, err := ds.Message(ctx, id)
		if err != nil {
			return err
		}
		queued, err = e.Events.Queue(ctx, tx, typ, MessageEventOf(m, string(status), "provider", providerError, 0))
		return err
	})
	if err == nil && queued != nil {
		e.handOver(queued)
	}
	return err
}
