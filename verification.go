package tessera

import (
	"context"
	"time"
)

// Method is how a verification reaches its consumer and is checked.
type Method string

// The verification methods of the verification API.
const (
	MethodEmail      Method = "email"       // a code sent by email
	MethodPhone      Method = "phone"       // a code sent by SMS to an E.164 number
	MethodGoogleAuth Method = "google_auth" // a TOTP code from an authenticator app (RFC 6238)
	MethodWhatsApp   Method = "whatsapp"    // a code sent by WhatsApp to an E.164 number
	MethodCall       Method = "call"        // a code read out in a voice call to an E.164 number
)

// Phone reports whether the method's consumer is a phone number: its
// messages cost money per send, so the phone rules (number types, country
// caps, the pumping breaker) apply to it.
func (m Method) Phone() bool {
	return m == MethodPhone || m == MethodWhatsApp || m == MethodCall
}

// Channel is the channel a method's code goes out on first; "" for
// google_auth, which sends nothing.
func (m Method) Channel() Channel {
	switch m {
	case MethodEmail:
		return ChannelEmail
	case MethodPhone:
		return ChannelSMS
	case MethodWhatsApp:
		return ChannelWhatsApp
	case MethodCall:
		return ChannelCall
	}
	return ""
}

// Channel is the transport a message travels on.
type Channel string

// The delivery channels.
const (
	ChannelEmail    Channel = "email"
	ChannelSMS      Channel = "sms"
	ChannelWhatsApp Channel = "whatsapp"
	ChannelCall     Channel = "call" // a voice call that reads the code out
)

// PhoneChannels are the channels that reach a phone number, in the order
// a fallback may name them.
var PhoneChannels = []Channel{ChannelSMS, ChannelWhatsApp, ChannelCall}

// Verification is one code a person must give back: its hash, its limits
// and who it belongs to. A verification is usable while it is neither
// consumed, expired nor locked.
type Verification struct {
	ID       string
	Owner    string // the API client (or internal component) that created it; others never see it
	Method   Method
	Consumer string // email address, E.164 number or TOTP account name
	Issuer   string
	// CodeHash is the keyed hash of the code; nil for google_auth, whose
	// codes come from the consumer's TOTP secret.
	CodeHash    []byte
	Attempts    int // wrong codes given so far
	MaxAttempts int
	Payload     []byte // caller's JSON, returned as given; nil when none
	CreatedAt   time.Time
	ExpiresAt   time.Time
	ConsumedAt  time.Time // zero until a correct code consumed it
	// SealedContent is the encrypted message that carried the code, kept so
	// the same code can be sent again; erased when the code is used.
	SealedContent []byte
	Sends         int       // how many times the message was queued
	LastSentAt    time.Time // when it was last queued
	// Delivered says a message of it was reported delivered
	// (DeliveryStore.RecordDelivery): only then can its validation be a
	// conversion.
	Delivered bool
}

// Locked reports whether the wrong codes have used up the attempts.
func (v *Verification) Locked() bool { return v.Attempts >= v.MaxAttempts }

// Expired reports whether the verification is past its expiry at now.
func (v *Verification) Expired(now time.Time) bool { return !now.Before(v.ExpiresAt) }

// MessageStatus is where a message is in the outbox.
type MessageStatus string

// The outbox states.
const (
	MessagePending MessageStatus = "pending" // waiting for (another) delivery attempt
	MessageSent    MessageStatus = "sent"    // accepted by the provider; body erased
	MessageFailed  MessageStatus = "failed"  // given up: permanent error or too many attempts
)

// Message is an outbox row: a message to deliver, written in the same
// transaction as the verification it carries the code of.
type Message struct {
	ID             string
	Owner          string
	VerificationID string
	Channel        Channel
	To             string
	// Sealed is the encrypted MessageContent. The store never sees a code in
	// plain text; it is erased once the message is sent.
	Sealed        []byte
	Status        MessageStatus
	Attempts      int
	NextAttemptAt time.Time
	// LeaseHolder, set on a new message, is the worker it is written
	// leased to, for Lease from the moment of the write on the database's
	// clock (as Store.ClaimMessages leases): the engine hands such a
	// message to that worker in memory, which sends it without claiming
	// it. LeasedFrom is when the write began on this process's clock,
	// which the lease cannot have started before. Without a LeaseHolder a
	// new message is claimable by any worker at once.
	LeaseHolder string
	Lease       time.Duration
	LeasedFrom  time.Time
	LastError   string
	CreatedAt   time.Time
	SentAt      time.Time

	// What the provider reported after accepting it (DeliveryStore).
	ProviderID     string         // the provider's id of the message (Twilio's SID); "" until known
	DeliveryStatus DeliveryStatus // "" until a final report
	ProviderError  string         // the provider's error code, if any
	DeliveredAt    time.Time      // when it was reported delivered
	ConvertedAt    time.Time      // when its verification was validated after delivery
	// FallbackAt is when a sent message falls back to the next channel of
	// its order unless reported delivered first (TimedFallbackStore);
	// zero when it is on no such timer.
	FallbackAt time.Time
}

// DeliveryStatus is the final state a provider reported for a message it
// accepted.
type DeliveryStatus string

// The delivery states a provider reports; "" means none reported yet.
const (
	DeliveryDelivered   DeliveryStatus = "delivered"   // reached the handset
	DeliveryUndelivered DeliveryStatus = "undelivered" // the carrier could not deliver it
	DeliveryFailed      DeliveryStatus = "failed"      // the provider could not send it
)

// DeliveryStore keeps what providers report about messages after they
// accepted them. A store may implement it besides Store.
type DeliveryStore interface {
	// SetProviderID records the provider's id of message id; ENOTFOUND if
	// there is no such message.
	SetProviderID(ctx context.Context, id, providerID string) error
	// RecordDelivery records a provider's final report on message id:
	// status, its error code and, for delivered, at. providerID, when not
	// empty, must match the id recorded (or none recorded yet, and it is
	// recorded). A delivered message stays delivered. ENOTFOUND when there
	// is no such message, the provider id differs or it was delivered
	// already.
	RecordDelivery(ctx context.Context, id, providerID string, status DeliveryStatus, providerError string, at time.Time) error
	// RecordConversion marks the delivered message of a verification
	// converted at now, once, and returns it; ENOTFOUND when it has no
	// delivered message or it was converted already.
	RecordConversion(ctx context.Context, owner, verificationID string, now time.Time) (*Message, error)
	// Message returns outbox message id; ENOTFOUND if there is none.
	Message(ctx context.Context, id string) (*Message, error)
}

// FallbackStore hands a message that failed on its channel over to the
// next channel of its fallback order. A store may implement it besides
// Store.
type FallbackStore interface {
	// FailOver gives message id of holder up, as FailMessage does, and
	// queues next (the same message on its next channel) in the same
	// transaction, so the hand-over is never lost nor done twice;
	// ENOTFOUND when holder does not hold id, and then next is not queued.
	FailOver(ctx context.Context, id, holder string, attempts int, lastErr string, next *Message) error
	// FallBack queues next to take over from message id, whatever its
	// status (a provider reported it undelivered after accepting it), in
	// one transaction with marking id as taken over; ENOTFOUND when there
	// is no such message or one took over from it already (then next is
	// not queued). FailOver marks the same way.
	FallBack(ctx context.Context, id string, next *Message) error
	// MessageByID returns message id; ENOTFOUND if there is none.
	MessageByID(ctx context.Context, id string) (*Message, error)
	// MessagesForVerification lists the messages of a verification, oldest
	// first: each channel it was tried on, with its own state.
	MessagesForVerification(ctx context.Context, owner, verificationID string) ([]*Message, error)
}

// TimedFallbackStore keeps the timers of messages that fall back when not
// reported delivered in time. A store may implement it besides
// FallbackStore. The times are the callers' clock, as NextAttemptAt is:
// which caller falls a message back is decided by a conditional update,
// never by the clock, so clocks that disagree move a fallback by their
// difference but never make it happen twice.
type TimedFallbackStore interface {
	// MarkSentFallBackAt marks message id sent at sentAt, as
	// MarkMessagesSent does, and sets it to fall back at fallbackAt unless
	// a delivery report comes first.
	MarkSentFallBackAt(ctx context.Context, id string, sentAt, fallbackAt time.Time) error
	// FallbacksDue lists up to limit messages whose fallback time is
	// past at now, with no delivery report and nothing taken over from
	// them, oldest time first.
	FallbacksDue(ctx context.Context, now time.Time, limit int) ([]*Message, error)
	// FallBackUndelivered queues next to take over from message id, and
	// notes why on id (its LastError), in one transaction, only while id
	// is due (as FallbacksDue says) and nothing took over from it;
	// ENOTFOUND otherwise (a report came, or another caller fell back
	// first), and then next is not queued.
	FallBackUndelivered(ctx context.Context, id string, now time.Time, note string, next *Message) error
	// StopFallback takes message id off its timer.
	StopFallback(ctx context.Context, id string) error
}

// MessageContent is what a sender delivers.
type MessageContent struct {
	Subject   string `json:"subject,omitempty"`
	Body      string `json:"body"`
	FromEmail string `json:"fromEmail,omitempty"`
	FromName  string `json:"fromName,omitempty"`
	// PlainText says Body is text, never HTML, whatever it contains: the
	// account messages, which may quote text someone else chose (the user
	// agent of a new sign-in). An email sender escapes it for its HTML
	// part instead of taking tags in it for markup.
	PlainText bool `json:"plainText,omitempty"`
	// Code is the code Body carries, kept beside it (sealed alike): a voice
	// call reads it out character by character, a WhatsApp template fills
	// it in, and the development inbox shows it; empty for a message
	// without a code.
	Code string `json:"code,omitempty"`
	// Fallback lists the channels to try next, in order, when this
	// message's channel refuses it for good (a permanent provider error,
	// or retries used up); the message then goes to the same address on
	// Fallback[0], carrying the rest. It travels sealed with the content,
	// so a resend starts the same order again.
	Fallback []Channel `json:"fallback,omitempty"`
	// FallbackAfter, in seconds, when not zero, also moves the message to
	// Fallback[0] when it was sent but not reported delivered within that
	// long (see TimedFallbackStore).
	FallbackAfter int `json:"fallbackAfter,omitempty"`
}

// TOTPSecret is a consumer's authenticator-app secret. It is temporary until
// a first correct code verifies it.
type TOTPSecret struct {
	Owner      string
	Consumer   string
	Sealed     []byte    // the encrypted base32 secret
	VerifiedAt time.Time // zero while temporary
	// LastStep is the last RFC 6238 time step accepted; a code for this step
	// or an earlier one is never accepted again.
	LastStep  int64
	CreatedAt time.Time
}

// Client is a service that calls the verification API with a bearer token.
type Client struct {
	ID        string
	Name      string
	TokenHash []byte
	// Admin is the admin scope: the client may also call the admin API
	// (/admin/...), which reads and changes every end-user account.
	Admin     bool
	CreatedAt time.Time
	RevokedAt time.Time
}

// MessageTemplate is a message an operator registered (`tessera template
// add`), named by ID and Locale. A request names it instead of sending its
// own text; Body holds the {{{CODE}}} placeholder.
type MessageTemplate struct {
	ID        string
	Locale    string // a BCP 47 tag such as "en" or "pt-BR"
	Subject   string // email only; empty for the default subject
	Body      string
	CreatedAt time.Time
}

// SendingPolicy limits what an API client may put in its messages. A
// client without one may send any text from any fromEmail, as the
// blueprint allows; one with a policy may use only the fromEmail
// addresses and domains in FromAllow (none: only the server's own
// sender) and, when TemplatesOnly, only registered templates.
type SendingPolicy struct {
	ClientID string
	// FromAllow holds lower-case addresses ("codes@example.com") and
	// domains ("example.com"); a domain allows every address at exactly
	// that domain.
	FromAllow     []string
	TemplatesOnly bool
	UpdatedAt     time.Time
}

// Store keeps Tessera's state. Each method is one statement or one
// transaction, so parallel requests and several instances can never both
// win a race. Methods return *Error with ENOTFOUND, ECONFLICT, ELOCKED or
// EEXPIRED where the text says so; other errors are internal.
type Store interface {
	// CreateVerification stores v and, when msg is not nil, its outbox
	// message, in one transaction. An existing (Owner, ID) is ECONFLICT.
	CreateVerification(ctx context.Context, v *Verification, msg *Message) error
	// ReplaceVerification stores v and msg like CreateVerification, but
	// replaces a verification with the same (Owner, ID), used or not, so a
	// new code for the same purpose voids the previous one.
	ReplaceVerification(ctx context.Context, v *Verification, msg *Message) error
	// RenewVerification stores v and msg like CreateVerification, but
	// replaces a verification with the same (Owner, ID) that can never be
	// used again: consumed, or expired at v.CreatedAt. One that has not
	// expired, locked or not, is ECONFLICT and keeps its attempts, so
	// parallel renewals never reset the cap; exactly one of them wins.
	RenewVerification(ctx context.Context, v *Verification, msg *Message) error
	// Verification returns the verification of owner with id, consumed or
	// not; ENOTFOUND if there is none.
	Verification(ctx context.Context, owner, id string) (*Verification, error)
	// CheckCode is consume-if-valid. It reads verification id of owner
	// and, if it is usable (that method, unconsumed, unexpired at now,
	// attempts left), asks check whether the code is right: if so it
	// consumes the verification, if not it counts a wrong attempt. Read,
	// check and write are one atomic step, so parallel requests can never
	// count past the cap or consume twice. check must be pure and fast (it
	// may run inside a transaction). It returns the verification after
	// the change and check's answer; ENOTFOUND for a missing or consumed
	// verification or another method, EEXPIRED or ELOCKED (with the
	// verification) when it is not usable.
	CheckCode(ctx context.Context, owner string, method Method, id string, now time.Time, check func(*Verification) bool) (*Verification, bool, error)
	// CheckCodeHash is CheckCode for a code whose stored hash has known
	// forms (one per HMAC key, secret.Keyring.Hashes): the code is right if
	// the verification's hash is one of hashes. The store can then check
	// and change in one statement, without reading the row first.
	CheckCodeHash(ctx context.Context, owner string, method Method, id string, now time.Time, hashes [][]byte) (*Verification, bool, error)
	// QueueResend queues msg, another copy of a usable verification's
	// message, if the last one was queued at or before sentBefore and fewer
	// than maxSends were queued; in the same step it counts the send. It is
	// ETOOMANY (with the verification) when the cooldown or the cap forbids
	// it, and otherwise fails as CheckCode does.
	QueueResend(ctx context.Context, owner string, method Method, id string, now, sentBefore time.Time, maxSends int, msg *Message) (*Verification, error)
	// QueueMessage queues a message that carries no code (a security
	// notice); its VerificationID may be empty.
	QueueMessage(ctx context.Context, msg *Message) error
	// DeleteVerification removes an unconsumed verification of that method;
	// ENOTFOUND if none.
	DeleteVerification(ctx context.Context, owner string, method Method, id string) error

	// TOTPSecret returns the secret of owner's consumer; ENOTFOUND if none.
	TOTPSecret(ctx context.Context, owner, consumer string) (*TOTPSecret, error)
	// PutTemporaryTOTPSecret stores s unless the consumer has a verified
	// secret, replacing a temporary one; ECONFLICT if a verified one exists.
	PutTemporaryTOTPSecret(ctx context.Context, s *TOTPSecret) error
	// AcceptTOTPStep records step as used and marks the secret verified,
	// only if step is later than every step accepted before; ECONFLICT
	// otherwise (a replayed code), ENOTFOUND with no secret.
	AcceptTOTPStep(ctx context.Context, owner, consumer string, step int64, now time.Time) error
	// DeleteTOTPSecret removes the secret; ENOTFOUND if none.
	DeleteTOTPSecret(ctx context.Context, owner, consumer string) error

	// CreateClient stores a new API client.
	CreateClient(ctx context.Context, c *Client) error
	// ClientByTokenHash returns the unrevoked client with that token hash;
	// ENOTFOUND otherwise.
	ClientByTokenHash(ctx context.Context, hash []byte) (*Client, error)
	// Clients lists every client, revoked ones included, oldest first.
	Clients(ctx context.Context) ([]*Client, error)
	// RevokeClient revokes a client by id or name; ENOTFOUND if none.
	RevokeClient(ctx context.Context, idOrName string, now time.Time) error

	// PutTemplate stores t, replacing the template with the same (ID,
	// Locale).
	PutTemplate(ctx context.Context, t *MessageTemplate) error
	// Template returns the template id in locale; ENOTFOUND if none.
	Template(ctx context.Context, id, locale string) (*MessageTemplate, error)
	// Templates lists every template by id and locale.
	Templates(ctx context.Context) ([]*MessageTemplate, error)
	// DeleteTemplate removes a template; ENOTFOUND if none.
	DeleteTemplate(ctx context.Context, id, locale string) error
	// SetSendingPolicy stores p for p.ClientID, replacing its policy;
	// ENOTFOUND if there is no such client.
	SetSendingPolicy(ctx context.Context, p *SendingPolicy) error
	// SendingPolicy returns the policy of a client; ENOTFOUND when it has
	// none (and may send anything).
	SendingPolicy(ctx context.Context, clientID string) (*SendingPolicy, error)
	// DeleteSendingPolicy removes a client's policy; ENOTFOUND if none.
	DeleteSendingPolicy(ctx context.Context, clientID string) error

	// ClaimMessages leases to holder (a worker's name) up to limit pending
	// messages of channel that are due at now and that nobody holds: not
	// claimed since they were queued or last tried, or whose holder's lease
	// ran out. The lease ends lease after the database's clock (PostgreSQL's
	// now; SQLite, one process, has the instance's own), never the
	// caller's, so instances with skewed clocks agree on it; now is only
	// compared with the messages' next attempt times.
	ClaimMessages(ctx context.Context, channel Channel, holder string, now time.Time, lease time.Duration, limit int) ([]*Message, error)
	// ClaimMessage claims the message id as ClaimMessages would (one handed
	// over in memory); ENOTFOUND when it is not claimable.
	ClaimMessage(ctx context.Context, id, holder string, now time.Time, lease time.Duration) (*Message, error)
	// RenewLease extends holder's lease on pending message id to lease
	// after the database's clock; ENOTFOUND when holder no longer holds it
	// (another worker claimed it after the lease ran out, or it is done).
	RenewLease(ctx context.Context, id, holder string, lease time.Duration) error
	// MarkMessagesSent marks messages sent and erases their bodies,
	// whoever holds them: a provider accepted them.
	MarkMessagesSent(ctx context.Context, ids []string, now time.Time) error
	// RetryMessage records holder's failed attempt and when to try again,
	// releasing the message; ENOTFOUND when holder does not hold it.
	RetryMessage(ctx context.Context, id, holder string, attempts int, next time.Time, lastErr string) error
	// FailMessage gives a message of holder up for good, erasing its body;
	// ENOTFOUND when holder does not hold it.
	FailMessage(ctx context.Context, id, holder string, attempts int, lastErr string) error
	// MessageForVerification returns the newest message of a verification;
	// ENOTFOUND if none.
	MessageForVerification(ctx context.Context, owner, verificationID string) (*Message, error)

	// DeleteStale removes verifications that expired or were consumed
	// before the given time and messages that were sent or failed before
	// it, returning how many rows went. A store that also keeps accounts
	// deletes sessions that expired or were revoked before it, with their
	// refresh tokens; a spent refresh token of a session that has not
	// ended stays (only its sealed successor is erased), since presenting
	// it again is reuse.
	DeleteStale(ctx context.Context, before time.Time) (int64, error)
	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// Outgoing is a message ready for a sender: decrypted, with its address.
type Outgoing struct {
	ID      string // the outbox id; stable across retries, so usable as an idempotency key
	Channel Channel
	To      string
	Content MessageContent
}

// Sender hands a message to a provider (SMTP, Twilio, a webhook, a log).
// An error marked permanent (see the deliver package) is not retried.
type Sender interface {
	Send(ctx context.Context, m *Outgoing) error
}
