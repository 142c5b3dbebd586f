package tessera

import "context"

// ChannelEvents is the outbox channel of operator events: rows on it are
// not messages to a person but events for the operator's endpoint
// (TESSERA_EVENTS_URL), delivered by the same worker, with the same
// leases and retries, in a lane of their own.
const ChannelEvents Channel = "events"

// The event types. The account security events are named after the audit
// kinds: AccountEventType.
const (
	EventVerificationApproved = "verification.approved" // a right code consumed a verification
	EventVerificationFailed   = "verification.failed"   // a wrong code counted an attempt
	EventVerificationLocked   = "verification.locked"   // that wrong code used up the attempts
	EventMessageDelivered     = "message.delivered"     // the provider reported the message delivered
	EventMessageFailed        = "message.failed"        // the provider reported it undelivered or failed, or the outbox gave it up
)

// AccountEventType is the event type of an audit kind: "account." and the
// kind with its dots turned into underscores ("password.changed" →
// "account.password_changed").
func AccountEventType(auditKind string) string {
	b := []byte("account." + auditKind)
	for i := len("account."); i < len(b); i++ {
		if b[i] == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// EventTypes lists every event type, for validating TESSERA_EVENTS.
func EventTypes() []string {
	out := []string{EventVerificationApproved, EventVerificationFailed, EventVerificationLocked, EventMessageDelivered, EventMessageFailed}
	for _, k := range AuditKinds {
		out = append(out, AccountEventType(k))
	}
	return out
}

// Transactor is a store that runs several of its methods in one
// transaction (AccountStore.InTx): an event is written in the transaction
// of the change it reports.
type Transactor interface {
	InTx(ctx context.Context, fn func(tx TxStore) error) error
}
