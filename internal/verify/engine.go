// Package verify is Tessera's verification engine: the one place where codes
// are generated, hashed, expired, counted, consumed and handed to delivery.
// The verification API, accounts and one-time-token flows all use it.
package verify

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/ratelimit"
	"github.com/tessera-id/tessera/internal/secret"
)

// Defaults and caps of a verification's policy.
const (
	DefaultExpiry      = 15 * time.Minute
	MaxExpiry          = 30 * 24 * time.Hour
	DefaultMaxAttempts = 5
	MaxMaxAttempts     = 100
	MaxPayloadBytes    = 16 << 10
	MaxCodeInput       = 256 // longest code a caller may submit
	// DefaultResendCooldown is how long after a send the same code may be
	// sent again; DefaultMaxSends caps the sends of one verification.
	DefaultResendCooldown = 30 * time.Second
	DefaultMaxSends       = 5
)

// Engine creates and checks verifications. Its fields are set once at
// start-up; it is safe for concurrent use.
type Engine struct {
	Store tessera.Store
	Keys  *secret.Keyring
	// Now is the engine's clock; expiry and TOTP steps follow it.
	Now func() time.Time
	// Random supplies codes, ids and TOTP secrets (crypto/rand when nil).
	Random io.Reader
	// Deliver hands a committed message to this instance's outbox worker;
	// may be nil, and then the worker finds it in the store.
	Deliver func(*tessera.Message)
	// Reserve, when set, asks that worker for room in its queue of a
	// channel before an initiate's message is written; if it has room the
	// message is written leased to it (the holder Reserve names) for
	// DeliveryLease, so the worker sends it without claiming it first.
	// Unreserve gives the room back when the message is not written.
	// Without room the message is written for any worker to claim.
	Reserve       func(tessera.Channel) (holder string, ok bool)
	Unreserve     func(tessera.Channel)
	DeliveryLease time.Duration
	// ResendCooldown and MaxSends limit Resend; zero means the defaults.
	ResendCooldown time.Duration
	MaxSends       int
	// Observe, when set, hears each outcome: initiated, validated, failed,
	// locked, expired.
	Observe func(method tessera.Method, result string)
	// Limiter and Limits hold the send limits (nil Limiter: none).
	Limiter ratelimit.Limiter
	Limits  SendLimits
	// Breaker, when set, refuses SMS to prefixes whose codes are not used
	// (SMS pumping); see Breaker.
	Breaker *Breaker
	// ObserveConversion, when set, hears each verification validated
	// after its message was reported delivered (by channel); Log, when
	// set, hears what could not be recorded then.
	ObserveConversion func(channel string)
	Log               *slog.Logger
	// Events, when set, writes the verification events of each code
	// check, and the message events of delivery reports, for the
	// operator's endpoint.
	Events *Events
	// Channels are the channels this server can send on (nil: all); a
	// method or fallback on another is refused.
	Channels map[tessera.Channel]bool
	// PhoneFallback is the order phone channels are tried in when a
	// request names no fallback (TESSERA_PHONE_FALLBACK): a phone method
	// falls back to the channels after its own.
	PhoneFallback []tessera.Channel
	// FallbackAfter is how long a phone message with a fallback order
	// waits for a delivery report before the next channel is tried, when
	// a request names no fallbackAfter (TESSERA_PHONE_FALLBACK_AFTER); 0:
	// only a refused or failed message falls back.
	FallbackAfter time.Duration
	// DeliveryReports says whether providers report delivery to this
	// server (Twilio status callbacks): without them, every message would
	// look undelivered, so there is no fallback on a timer.
	DeliveryReports bool

	// Policies, when set, remembers sending policies for
	// SendingPolicyTTL; nil: every initiate reads its client's policy.
	Policies *PolicyCache
}

// SendLimits bound the messages Tessera sends, whoever asks.
type SendLimits struct {
	// PerDestinationHour and PerDestinationDay cap the codes one owner
	// sends to one consumer (for a request with a Subject: one subject;
	// see checkSend).
	PerDestinationHour, PerDestinationDay ratelimit.Limit
	// PerCountry caps one owner's SMS to one country calling code (SMS
	// pumping sends to premium numbers of a few countries).
	PerCountry ratelimit.Limit
	// SMSCountries, when not empty, are the only regions (ISO 3166-1
	// alpha-2) SMS go to.
	SMSCountries map[string]bool
	// SMSNumberTypes are the number types SMS go to (NumberType names;
	// nil: DefaultSMSNumberTypes). See CheckSMSNumber.
	SMSNumberTypes map[string]bool
}

// SubjectShare: one subject may use at most 1/SubjectShare of a send
// counter that all the subjects of its owner share, so it takes that many
// subjects to use one up.
const SubjectShare = 10

// sendCheck is one counter a send must pass.
type sendCheck struct {
	key   string
	limit ratelimit.Limit
}

// checkSend applies the send limits to a message for consumer.
//
// An API client is the owner of its sends, and every limit counts per
// owner. Tessera's accounts send for all their users under one owner, so
// they name the user as the subject, and then every limit counts per user
// first and for all users together second, the users together being
// allowed SubjectShare times what one user is: a user can use at most a
// tenth of what the users share, and cannot starve the others (by adding
// phone after phone, by asking for recoveries by PHONE_NUMBER for one
// account, or by sending to someone else's number). Each limit keeps its
// configured meaning:
//   - per destination, a recipient's protection: one user gets the
//     configured allowance per destination, all users together
//     SubjectShare times it;
//   - per country, a spending cap: the configured budget stays the total
//     for all users, one user gets 1/SubjectShare of it (of the default
//     300/h, 30/h: as many as the accounts let a user send an hour).
func (e *Engine) checkSend(ctx context.Context, owner, subject string, method tessera.Method, consumer string) error {
	if method.Phone() && len(e.Limits.SMSCountries) > 0 {
		if region := RegionOf(consumer); !e.Limits.SMSCountries[region] {
			return tessera.Invalid(tessera.FieldError{Path: "consumer", Error: "SMS to this country (" + region + ") are not enabled on this server"})
		}
	}
	if method.Phone() {
		if err := e.CheckSMSNumber(consumer); err != nil {
			return tessera.Invalid(tessera.FieldError{Path: "consumer", Error: err.Error()})
		}
	}
	if e.Limiter == nil {
		return e.checkBreaker(ctx, method, consumer)
	}
	dest := limitConsumer(method, consumer)
	var country string
	if method.Phone() {
		country = callingCode(consumer)
	}
	l := e.Limits
	var checks []sendCheck
	if subject == "" {
		checks = append(checks,
			sendCheck{"dest-hour:" + owner + ":" + dest, l.PerDestinationHour},
			sendCheck{"dest-day:" + owner + ":" + dest, l.PerDestinationDay})
		if country != "" {
			checks = append(checks, sendCheck{"sms-country:" + owner + ":" + country, l.PerCountry})
		}
	} else {
		// The subject's own counters come first: a send they refuse then
		// counts nothing against what all subjects share.
		checks = append(checks,
			sendCheck{"dest-hour-subject:" + owner + ":" + subject + ":" + dest, l.PerDestinationHour},
			sendCheck{"dest-day-subject:" + owner + ":" + subject + ":" + dest, l.PerDestinationDay})
		if country != "" {
			checks = append(checks, sendCheck{"sms-country-subject:" + owner + ":" + subject + ":" + country, shareOf(l.PerCountry)})
		}
		// Then what all subjects share; their keys are not the keys
		// without a subject, which count with other limits.
		checks = append(checks,
			sendCheck{"dest-hour-subjects:" + owner + ":" + dest, timesShare(l.PerDestinationHour)},
			sendCheck{"dest-day-subjects:" + owner + ":" + dest, timesShare(l.PerDestinationDay)})
		if country != "" {
			checks = append(checks, sendCheck{"sms-country-subjects:" + owner + ":" + country, l.PerCountry})
		}
	}
	for _, c := range checks {
		res, err := e.Limiter.Allow(ctx, c.key, c.limit)
		if err != nil {
			return err
		}
		if !res.Allowed {
			return &tessera.Error{Code: tessera.ETOOMANY, Message: "Too many messages to this destination: try again later",
				RetryAfter: int((res.RetryAfter + time.Second - 1) / time.Second)}
		}
	}
	return e.checkBreaker(ctx, method, consumer)
}

// checkBreaker asks the SMS pumping breaker, last: a send the limits
// refuse is not counted as a send.
func (e *Engine) checkBreaker(ctx context.Context, method tessera.Method, consumer string) error {
	if !method.Phone() || e.Breaker == nil {
		return nil
	}
	now := e.now()
	trip, err := e.Breaker.Send(ctx, consumer, now)
	if err != nil || trip == nil {
		return err
	}
	msg := "Codes to numbers starting " + trip.Prefix + " are suspended: too few of the codes sent there were used. Try again later"
	if trip.State == BreakerHalfOpen {
		msg = "Codes to numbers starting " + trip.Prefix + " are limited while a few test codes show whether codes there are used. Try again later"
	}
	return &tessera.Error{Code: tessera.ETOOMANY,
		Message:    msg,
		RetryAfter: int((trip.Until.Sub(now) + time.Second - 1) / time.Second)}
}

// limitConsumer is how a consumer is named in limit keys. An email keeps
// the case of its local part where it is delivered (RFC 5321 lets a server
// tell the cases apart), but mailboxes do not in practice, so the limits
// count every spelling of an address as one: otherwise "Alice@…",
// "aLice@…" and so on would each get a fresh allowance. Phone numbers are
// E.164 already.
func limitConsumer(method tessera.Method, consumer string) string {
	if method == tessera.MethodEmail {
		return strings.ToLower(consumer)
	}
	return consumer
}

// timesShare is what all the subjects of an owner may send together where
// one may send l.
func timesShare(l ratelimit.Limit) ratelimit.Limit {
	if l.Off() {
		return l
	}
	return ratelimit.Limit{Rate: l.Rate * SubjectShare, Period: l.Period, Burst: l.Burst * SubjectShare}
}

// shareOf is one subject's share of l, which all subjects share: the same
// rate over SubjectShare times the period (rates are whole numbers), and a
// burst of at least one.
func shareOf(l ratelimit.Limit) ratelimit.Limit {
	if l.Off() {
		return l
	}
	return ratelimit.Limit{Rate: l.Rate, Period: l.Period * SubjectShare, Burst: max(1, l.Burst/SubjectShare)}
}

func (e *Engine) observe(m tessera.Method, result string) {
	if e.Observe != nil {
		e.Observe(m, result)
	}
}

// InitiateRequest is what a caller asks for; its JSON shape is the
// verification API's initiate body.
type InitiateRequest struct {
	Consumer     string          `json:"consumer"`
	Issuer       string          `json:"issuer"`
	Template     Template        `json:"template"`
	GenerateCode CodeSpec        `json:"generateCode"`
	Policy       Policy          `json:"policy"`
	Payload      json.RawMessage `json:"payload"`
	// Fallback, for the phone methods, names the channels to try in turn
	// when the method's own channel refuses the message for good (see
	// tessera.MessageContent.Fallback). Absent (nil): the server's
	// PhoneFallback order; empty: none.
	Fallback []tessera.Channel `json:"fallback"`
	// FallbackAfter, in seconds, also tries the next channel when a
	// message was sent but not reported delivered within that long (see
	// FallBackOverdue). Absent: the server's FallbackAfter; 0: only on a
	// refusal or failure.
	FallbackAfter *int `json:"fallbackAfter"`

	// Binding, for Tessera's own callers, is mixed into the code's hash: a
	// code only validates with the binding it was issued with, so a code
	// sent for one action can never perform another.
	Binding string `json:"-"`
	// TOTPAccount, when set, is the account name a new TOTP secret shows
	// in the authenticator app instead of the consumer.
	TOTPAccount string `json:"-"`
	// NoResend keeps no copy of the message for Resend: the code then
	// exists nowhere but in the message on its way.
	NoResend bool `json:"-"`
	// Replace lets a forced id overwrite an existing verification (used or
	// not) instead of being a conflict: a new code voids the previous one.
	Replace bool `json:"-"`
	// Renew lets a forced id overwrite an existing verification only if it
	// is consumed or expired; one still in force, locked or not, is
	// ECONFLICT and keeps its attempts. It is for callers that share one
	// verification across requests to hold an attempt cap: parallel
	// requests renewing it can never reset the count. It wins over Replace.
	Renew bool `json:"-"`
	// Subject, for an owner that sends for many people (Tessera's accounts:
	// the user id), is whom the code is for: the send limits then count per
	// subject too, so that no subject can use up the owner's allowance for
	// the others (see checkSend). Resend does not know it: codes sent with
	// a Subject should be NoResend.
	Subject string `json:"-"`
}

// Template shapes the message that carries the code.
type Template struct {
	// ID names a registered template (tessera template add) whose subject
	// and body are used instead of Body and Subject, in Locale (falling
	// back to its language, then to DefaultLocale).
	ID        string `json:"id"`
	Locale    string `json:"locale"`
	Body      string `json:"body"`
	Subject   string `json:"subject"`
	FromEmail string `json:"fromEmail"`
	FromName  string `json:"fromName"`
	// PlainText marks Body as text, never HTML (tessera.MessageContent's
	// PlainText); Tessera's own messages set it, API clients cannot.
	PlainText bool `json:"-"`
}

// CodeSpec says how long a code is and which characters it uses.
//
// Fields tagged zero:"refuse" take their default when left out; sent as 0,
// "" or [] they are refused as out of range (see httpapi's decodeJSON).
type CodeSpec struct {
	Length    int      `json:"length" zero:"refuse"`
	SymbolSet []string `json:"symbolSet" zero:"refuse"`
}

// Policy sets a verification's expiry and attempts, and lets a caller pick
// the id or the code itself.
type Policy struct {
	ExpiredOn            string `json:"expiredOn" zero:"refuse"`
	ForcedVerificationID string `json:"forcedVerificationId"`
	ForcedCode           string `json:"forcedCode"`
	MaxAttempts          int    `json:"maxAttempts" zero:"refuse"`
}

// Initiated is the result of Initiate.
type Initiated struct {
	Verification *tessera.Verification
	// TOTPURI is set when a google_auth initiate created a new (temporary)
	// secret: the otpauth:// URI to show as a QR code.
	TOTPURI string
}

func (e *Engine) now() time.Time { return e.Now() }

func (e *Engine) random() io.Reader {
	if e.Random != nil {
		return e.Random
	}
	return rand.Reader
}

// Initiate checks req, creates a verification for owner and queues the
// message that carries its code.
func (e *Engine) Initiate(ctx context.Context, owner string, method tessera.Method, req *InitiateRequest) (*Initiated, error) {
	out, err := e.initiate(ctx, owner, method, req)
	if err == nil {
		e.observe(method, "initiated")
	}
	return out, err
}

func (e *Engine) initiate(ctx context.Context, owner string, method tessera.Method, req *InitiateRequest) (*Initiated, error) {
	now := e.now()
	if err := e.checkMethodEnabled(method); err != nil {
		return nil, err
	}
	var bad []tessera.FieldError
	fail := func(path string, err error) { bad = append(bad, tessera.FieldError{Path: path, Error: err.Error()}) }

	consumer, err := normalizeConsumer(method, req.Consumer)
	if err != nil {
		fail("consumer", err)
	}
	if err := checkText(req.Issuer, 100, false); err != nil {
		fail("issuer", err)
	}
	expiry := DefaultExpiry
	if req.Policy.ExpiredOn != "" {
		if expiry, err = ParseHMS(req.Policy.ExpiredOn); err != nil {
			fail("policy.expiredOn", err)
		} else if expiry < time.Second || expiry > MaxExpiry {
			fail("policy.expiredOn", fmt.Errorf("must be between 00:00:01 and %d:00:00", int(MaxExpiry.Hours())))
		}
	}
	maxAttempts := DefaultMaxAttempts
	if req.Policy.MaxAttempts != 0 {
		maxAttempts = req.Policy.MaxAttempts
		if maxAttempts < 1 || maxAttempts > MaxMaxAttempts {
			fail("policy.maxAttempts", fmt.Errorf("must be between 1 and %d", MaxMaxAttempts))
		}
	}
	id := req.Policy.ForcedVerificationID
	if id != "" {
		if u, err := uuid.Parse(id); err != nil || len(id) != 36 {
			fail("policy.forcedVerificationId", errors.New("must be a UUID"))
		} else {
			id = u.String()
		}
	}
	payload := []byte(req.Payload)
	if len(payload) > MaxPayloadBytes {
		fail("payload", fmt.Errorf("must be at most %d bytes of JSON", MaxPayloadBytes))
	}
	if string(payload) == "null" {
		payload = nil
	}

	var code, alphabet string
	length := DefaultCodeLength
	if method != tessera.MethodGoogleAuth {
		if req.GenerateCode.Length != 0 {
			length = req.GenerateCode.Length
			if length < MinCodeLength || length > MaxCodeLength {
				fail("generateCode.length", fmt.Errorf("must be between %d and %d", MinCodeLength, MaxCodeLength))
			}
		}
		if alphabet, err = Alphabet(req.GenerateCode.SymbolSet); err != nil {
			fail("generateCode.symbolSet", err)
		}
		if req.Policy.ForcedCode != "" {
			code = req.Policy.ForcedCode
			if len(code) > MaxCodeInput || checkText(code, MaxCodeInput, false) != nil {
				fail("policy.forcedCode", fmt.Errorf("must be 1 to %d printable characters", MaxCodeInput))
			}
		}
		bad = append(bad, checkTemplate(method, &req.Template)...)
	}
	fallback, err := e.fallbackFor(method, req.Fallback)
	if err != nil {
		bad = append(bad, tessera.FieldError{Path: "fallback", Error: err.Error()})
	}
	fallbackAfter, err := e.fallbackAfterFor(method, req.FallbackAfter, fallback, expiry, req.NoResend)
	if err != nil {
		bad = append(bad, tessera.FieldError{Path: "fallbackAfter", Error: err.Error()})
	}
	if len(bad) > 0 {
		return nil, tessera.Invalid(bad...)
	}

	if id == "" {
		if id, err = newID(e.random()); err != nil {
			return nil, fmt.Errorf("new id: %w", err)
		}
	}
	v := &tessera.Verification{
		ID:          id,
		Owner:       owner,
		Method:      method,
		Consumer:    consumer,
		Issuer:      req.Issuer,
		MaxAttempts: maxAttempts,
		Payload:     payload,
		CreatedAt:   now,
		ExpiresAt:   now.Add(expiry),
	}
	out := &Initiated{Verification: v}

	if method == tessera.MethodGoogleAuth {
		account := consumer
		if req.TOTPAccount != "" {
			account = req.TOTPAccount
		}
		if out.TOTPURI, err = e.ensureTOTPSecret(ctx, owner, consumer, account, req.Issuer, now); err != nil {
			return nil, err
		}
		if err := e.put(req)(ctx, v, nil); err != nil {
			return nil, err
		}
		return out, nil
	}

	tpl, err := e.applySendingPolicy(ctx, owner, method, &req.Template)
	if err != nil {
		return nil, err
	}
	if err := e.checkSend(ctx, owner, req.Subject, method, consumer); err != nil {
		return nil, err
	}
	if code == "" {
		if code, err = GenerateCode(e.random(), length, alphabet); err != nil {
			return nil, err
		}
	}
	v.CodeHash = e.codeHash(owner, id, req.Binding, code)
	content := messageContent(method, tpl, req.Issuer, code, id)
	content.Fallback = fallback
	if len(fallback) > 0 {
		content.FallbackAfter = fallbackAfter
	}
	plain, err := json.Marshal(content)
	if err != nil {
		return nil, err
	}
	// The content is kept, encrypted, for resends of the same code.
	if !req.NoResend {
		if v.SealedContent, err = e.Keys.Seal(plain, contentAD(owner, id)); err != nil {
			return nil, err
		}
	}
	v.Sends, v.LastSentAt = 1, now
	msg, err := e.newMessage(owner, v, plain, now)
	if err != nil {
		return nil, err
	}
	e.reserve(msg)
	if err := e.put(req)(ctx, v, msg); err != nil {
		e.unreserve(msg)
		return nil, err
	}
	e.handOver(msg)
	return out, nil
}

// put is the store method that stores a new verification as req asks:
// over an existing one with the same id never (CreateVerification), only
// once it is unusable (Renew), or always (Replace).
func (e *Engine) put(req *InitiateRequest) func(context.Context, *tessera.Verification, *tessera.Message) error {
	switch {
	case req.Renew:
		return e.Store.RenewVerification
	case req.Replace:
		return e.Store.ReplaceVerification
	}
	return e.Store.CreateVerification
}

// Resend queues the message of verification id again, with the same code,
// unless it was sent less than ResendCooldown ago or MaxSends times
// already (ETOOMANY, with RetryAfter when waiting helps).
func (e *Engine) Resend(ctx context.Context, owner string, method tessera.Method, id string) (*tessera.Verification, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if method == tessera.MethodGoogleAuth {
		return nil, tessera.Invalid(tessera.FieldError{Path: "method", Error: "google_auth codes come from the authenticator app; there is nothing to resend"})
	}
	if err := e.checkMethodEnabled(method); err != nil {
		return nil, err
	}
	now := e.now()
	v, err := e.Store.Verification(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	if v.Method != method || !v.ConsumedAt.IsZero() || v.SealedContent == nil {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "Not found")
	}
	plain, err := e.Keys.Open(v.SealedContent, contentAD(owner, id))
	if err != nil {
		return nil, fmt.Errorf("open message content: %w", err)
	}
	msg, err := e.newMessage(owner, v, plain, now)
	if err != nil {
		return nil, err
	}
	cooldown, maxSends := e.ResendCooldown, e.MaxSends
	if cooldown == 0 {
		cooldown = DefaultResendCooldown
	}
	if maxSends == 0 {
		maxSends = DefaultMaxSends
	}
	// A resend the cooldown or the cap refuses must not use up the
	// destination's allowance, so the send limits apply only when those
	// allow it (QueueResend checks them again, atomically).
	if v.Sends < maxSends && !now.Before(v.LastSentAt.Add(cooldown)) {
		if err := e.checkSend(ctx, owner, "", method, v.Consumer); err != nil {
			return nil, err
		}
	}
	v, err = e.Store.QueueResend(ctx, owner, method, id, now, now.Add(-cooldown), maxSends, msg)
	if tessera.ErrorCode(err) == tessera.ETOOMANY {
		tooMany := &tessera.Error{Code: tessera.ETOOMANY, Message: fmt.Sprintf("The code was sent %d times already; at most %d sends", v.Sends, maxSends), Data: v}
		if v.Sends < maxSends {
			wait := v.LastSentAt.Add(cooldown).Sub(now)
			tooMany.Message = fmt.Sprintf("Sent less than %v ago: try again in %v", cooldown, wait.Round(time.Second))
			tooMany.RetryAfter = int((wait + time.Second - 1) / time.Second)
		}
		return nil, tooMany
	}
	if err != nil {
		return nil, unusableError(v, err)
	}
	e.handOver(msg)
	return v, nil
}

// Notice queues a message that carries no code, such as a security
// notice, on the channel of method.
func (e *Engine) Notice(ctx context.Context, owner string, method tessera.Method, to string, content tessera.MessageContent) error {
	plain, err := json.Marshal(content)
	if err != nil {
		return err
	}
	msg, err := e.newMessage(owner, &tessera.Verification{Method: method, Consumer: to}, plain, e.now())
	if err != nil {
		return err
	}
	if err := e.Store.QueueMessage(ctx, msg); err != nil {
		return err
	}
	e.handOver(msg)
	return nil
}

// reserve leases msg, before it is written, to this instance's worker if
// that has room for it in memory.
func (e *Engine) reserve(msg *tessera.Message) {
	if e.Reserve == nil || e.Deliver == nil || e.DeliveryLease <= 0 {
		return
	}
	if holder, ok := e.Reserve(msg.Channel); ok {
		// Taken before the write, so the lease, which starts during the
		// write, cannot have started earlier.
		msg.LeaseHolder, msg.Lease, msg.LeasedFrom = holder, e.DeliveryLease, time.Now()
	}
}

// unreserve gives back the room reserve took for a message not written.
func (e *Engine) unreserve(msg *tessera.Message) {
	if msg.LeaseHolder != "" {
		e.Unreserve(msg.Channel)
		msg.LeaseHolder = ""
	}
}

// handOver gives a committed message to this instance's worker.
func (e *Engine) handOver(msg *tessera.Message) {
	if e.Deliver != nil {
		e.Deliver(msg)
	}
}

// ensureTOTPSecret gives the consumer a new temporary secret unless it has
// a verified one, and returns the new secret's URI (empty when verified).
func (e *Engine) ensureTOTPSecret(ctx context.Context, owner, consumer, account, issuer string, now time.Time) (string, error) {
	existing, err := e.Store.TOTPSecret(ctx, owner, consumer)
	if err == nil && !existing.VerifiedAt.IsZero() {
		return "", nil
	}
	if err != nil && tessera.ErrorCode(err) != tessera.ENOTFOUND {
		return "", err
	}
	if issuer == "" {
		issuer = "Tessera"
	}
	key, err := newTOTPKey(e.random(), issuer, account)
	if err != nil {
		return "", fmt.Errorf("new totp key: %w", err)
	}
	sealed, err := e.Keys.Seal([]byte(key.Secret()), totpAD(owner, consumer))
	if err != nil {
		return "", err
	}
	err = e.Store.PutTemporaryTOTPSecret(ctx, &tessera.TOTPSecret{Owner: owner, Consumer: consumer, Sealed: sealed, CreatedAt: now})
	if tessera.ErrorCode(err) == tessera.ECONFLICT {
		return "", nil // verified meanwhile by a parallel request
	}
	if err != nil {
		return "", err
	}
	return key.URL(), nil
}

// Validate checks code against verification id of owner. A wrong code
// counts an attempt; a right one consumes the verification. With
// removeSecret, a correct google_auth code also deletes the consumer's
// TOTP secret.
func (e *Engine) Validate(ctx context.Context, owner string, method tessera.Method, id, code string, removeSecret bool) (*tessera.Verification, error) {
	return e.ValidateBound(ctx, owner, method, id, code, "", removeSecret)
}

// ValidateBound is Validate for a code issued with a Binding.
func (e *Engine) ValidateBound(ctx context.Context, owner string, method tessera.Method, id, code, binding string, removeSecret bool) (*tessera.Verification, error) {
	v, err := e.validate(ctx, owner, method, id, code, binding, removeSecret)
	switch tessera.ErrorCode(err) {
	case "":
		e.observe(method, "validated")
		if method.Phone() && e.Breaker != nil && v != nil {
			// Best effort: the code is used already, and a conversion
			// not counted only makes the breaker stricter.
			_ = e.Breaker.Validated(ctx, v.Consumer, e.now())
		}
		// Only a verification with a message reported delivered can
		// convert: the others (nearly all) need no question to the store.
		if method != tessera.MethodGoogleAuth && v != nil && v.Delivered {
			e.recordConversion(ctx, v)
		}
	case tessera.EINVALIDCODE:
		e.observe(method, "failed")
	case tessera.ELOCKED:
		e.observe(method, "locked")
	case tessera.EEXPIRED:
		e.observe(method, "expired")
	}
	return v, err
}

func (e *Engine) validate(ctx context.Context, owner string, method tessera.Method, id, code, binding string, removeSecret bool) (*tessera.Verification, error) {
	if code == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "code", Error: "is required"})
	}
	if len(code) > MaxCodeInput {
		return nil, tessera.Invalid(tessera.FieldError{Path: "code", Error: fmt.Sprintf("must be at most %d characters", MaxCodeInput)})
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	now := e.now()
	var v *tessera.Verification
	var ok bool
	var err error
	if method == tessera.MethodGoogleAuth {
		v, ok, err = e.checkTOTP(ctx, owner, id, code, now)
	} else {
		// The code's hash under every HMAC key: the store compares and
		// consumes or counts in one statement.
		v, ok, err = e.checkCode(ctx, owner, method, id, now, e.Keys.Hashes(codeHashParts(owner, id, binding, code)...), nil)
	}
	if err != nil {
		return nil, unusableError(v, err)
	}
	if !ok {
		return nil, &tessera.Error{Code: tessera.EINVALIDCODE, Message: "Invalid code", Data: v}
	}
	if removeSecret && method == tessera.MethodGoogleAuth {
		if err := e.Store.DeleteTOTPSecret(ctx, owner, v.Consumer); err != nil && tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return nil, err
		}
	}
	return v, nil
}

// checkTOTP checks a google_auth code. The TOTP step must be recorded as
// used before the verification is consumed, and that takes the store, so
// the code is matched first and CheckCode then applies the outcome.
func (e *Engine) checkTOTP(ctx context.Context, owner, id, code string, now time.Time) (*tessera.Verification, bool, error) {
	v, err := e.Store.Verification(ctx, owner, id)
	if err != nil {
		return nil, false, err
	}
	if v.Method != tessera.MethodGoogleAuth || !v.ConsumedAt.IsZero() {
		return nil, false, tessera.Errorf(tessera.ENOTFOUND, "Not found")
	}
	if v.Expired(now) {
		return v, false, tessera.Errorf(tessera.EEXPIRED, "Verification expired")
	}
	if v.Locked() {
		return v, false, tessera.Errorf(tessera.ELOCKED, "Too many attempts")
	}
	right, err := e.matchesTOTP(ctx, v, code, now)
	if err != nil {
		return nil, false, err
	}
	return e.checkCode(ctx, owner, tessera.MethodGoogleAuth, id, now, nil, func(*tessera.Verification) bool { return right })
}

// recordConversion notes that v, whose message was reported delivered, was
// then validated: the code reached the person and was used. It runs on
// every validation path (the verification API, the accounts' codes). The
// code is consumed already, so a failure is logged, not returned.
func (e *Engine) recordConversion(ctx context.Context, v *tessera.Verification) {
	store, ok := e.Store.(tessera.DeliveryStore)
	if !ok {
		return
	}
	msg, err := store.RecordConversion(ctx, v.Owner, v.ID, e.now())
	switch {
	case err == nil:
		if e.ObserveConversion != nil {
			e.ObserveConversion(string(msg.Channel))
		}
	case tessera.ErrorCode(err) != tessera.ENOTFOUND && e.Log != nil: // ENOTFOUND: not delivered (yet), or no message
		e.Log.Warn("record conversion", "verification", v.ID, "err", err)
	}
}

// unusableError turns the store's EEXPIRED and ELOCKED into the caller's
// errors, which carry the verification.
func unusableError(v *tessera.Verification, err error) error {
	switch tessera.ErrorCode(err) {
	case tessera.EEXPIRED:
		return &tessera.Error{Code: tessera.EEXPIRED, Message: "Verification expired", Data: v}
	case tessera.ELOCKED:
		return &tessera.Error{Code: tessera.ELOCKED, Message: "Too many attempts: verification locked", Data: v}
	}
	return err
}

// matchesTOTP reports whether code is right for the consumer's TOTP secret
// and records its time step, so the same code is never accepted twice.
func (e *Engine) matchesTOTP(ctx context.Context, v *tessera.Verification, code string, now time.Time) (bool, error) {
	s, err := e.Store.TOTPSecret(ctx, v.Owner, v.Consumer)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return false, nil // the secret was removed meanwhile: no code can be right
	}
	if err != nil {
		return false, err
	}
	plain, err := e.Keys.Open(s.Sealed, totpAD(v.Owner, v.Consumer))
	if err != nil {
		return false, fmt.Errorf("open totp secret: %w", err)
	}
	step, ok, err := matchTOTP(string(plain), code, now)
	if err != nil || !ok {
		return false, err
	}
	err = e.Store.AcceptTOTPStep(ctx, v.Owner, v.Consumer, step, now)
	switch tessera.ErrorCode(err) {
	case "":
		return true, nil
	case tessera.ECONFLICT, tessera.ENOTFOUND:
		return false, nil // replayed step, or the secret went away
	default:
		return false, err
	}
}

// Get returns verification id of owner, which must have the given method.
// A consumed verification is not found: it cannot be used any more.
func (e *Engine) Get(ctx context.Context, owner string, method tessera.Method, id string) (*tessera.Verification, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	v, err := e.Store.Verification(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	if v.Method != method || !v.ConsumedAt.IsZero() {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "Not found")
	}
	return v, nil
}

// Delivery returns the newest message of verification id, for its
// delivery state; ENOTFOUND when it has none (google_auth).
func (e *Engine) Delivery(ctx context.Context, owner, id string) (*tessera.Message, error) {
	return e.Store.MessageForVerification(ctx, owner, id)
}

// Deliveries lists every message of verification id, oldest first, when
// the store keeps them apart (FallbackStore); nil otherwise.
func (e *Engine) Deliveries(ctx context.Context, owner, id string) ([]*tessera.Message, error) {
	if fs, ok := e.Store.(tessera.FallbackStore); ok {
		return fs.MessagesForVerification(ctx, owner, id)
	}
	return nil, nil
}

// Invalidate deletes verification id so its code can no longer be used.
func (e *Engine) Invalidate(ctx context.Context, owner string, method tessera.Method, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return e.Store.DeleteVerification(ctx, owner, method, id)
}

// checkID rejects a verification id that is not a UUID: no such id can
// exist, and saying so names the field at fault.
func checkID(id string) error {
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return tessera.Invalid(tessera.FieldError{Path: "verificationId", Error: "must be a UUID"})
	}
	return nil
}

// codeHash is the keyed hash stored instead of a code. Owner, id and
// binding are part of it, so a hash copied to another row, or a code
// checked for another purpose, matches nothing.
func (e *Engine) codeHash(owner, id, binding, code string) []byte {
	return e.Keys.Hash(codeHashParts(owner, id, binding, code)...)
}

func codeHashParts(owner, id, binding, code string) []string {
	return []string{"verification-code", owner, id, binding, code}
}

func totpAD(owner, consumer string) []byte { return []byte("totp\x00" + owner + "\x00" + consumer) }

// MessageAD is the associated data an outbox message body is sealed with.
func MessageAD(messageID string) []byte { return []byte("message\x00" + messageID) }

// contentAD is the associated data a verification's kept message content
// is sealed with.
func contentAD(owner, id string) []byte { return []byte("content\x00" + owner + "\x00" + id) }

// newMessage makes the outbox row for v's message (plain is the JSON of a
// tessera.MessageContent).
func (e *Engine) newMessage(owner string, v *tessera.Verification, plain []byte, now time.Time) (*tessera.Message, error) {
	id, err := newID(e.random())
	if err != nil {
		return nil, err
	}
	m := &tessera.Message{
		ID:             id,
		Owner:          owner,
		VerificationID: v.ID,
		Channel:        v.Method.Channel(),
		To:             v.Consumer,
		Status:         tessera.MessagePending,
		NextAttemptAt:  now,
		CreatedAt:      now,
	}
	if m.Sealed, err = e.Keys.Seal(plain, MessageAD(m.ID)); err != nil {
		return nil, err
	}
	return m, nil
}

// normalizeConsumer validates the consumer the way its method needs.
func normalizeConsumer(m tessera.Method, consumer string) (string, error) {
	switch m {
	case tessera.MethodEmail:
		return NormalizeEmail(consumer)
	case tessera.MethodPhone, tessera.MethodWhatsApp, tessera.MethodCall:
		return NormalizePhone(consumer)
	case tessera.MethodGoogleAuth:
		if consumer == "" {
			return "", errors.New("is required")
		}
		if err := checkText(consumer, maxEmailLength, false); err != nil {
			return "", err
		}
		return consumer, nil
	}
	return "", errors.New("unsupported method")
}

// checkTemplate validates the parts of a template a method uses.
func checkTemplate(m tessera.Method, t *Template) []tessera.FieldError {
	var bad []tessera.FieldError
	if t.ID != "" {
		if err := CheckTemplateID(t.ID); err != nil {
			bad = append(bad, tessera.FieldError{Path: "template.id", Error: err.Error()})
		}
		if t.Body != "" {
			bad = append(bad, tessera.FieldError{Path: "template.body", Error: "must not be given with template.id"})
		}
		if t.Subject != "" {
			bad = append(bad, tessera.FieldError{Path: "template.subject", Error: "must not be given with template.id"})
		}
	}
	if t.Locale != "" {
		if t.ID == "" {
			bad = append(bad, tessera.FieldError{Path: "template.locale", Error: "needs template.id"})
		} else if l, err := CanonicalLocale(t.Locale); err != nil {
			bad = append(bad, tessera.FieldError{Path: "template.locale", Error: err.Error()})
		} else {
			t.Locale = l
		}
	}
	if t.Body != "" {
		if err := checkText(t.Body, 10<<10, true); err != nil {
			bad = append(bad, tessera.FieldError{Path: "template.body", Error: err.Error()})
		} else if !strings.Contains(t.Body, PlaceholderCode) {
			bad = append(bad, tessera.FieldError{Path: "template.body", Error: "must contain " + PlaceholderCode})
		}
	}
	if err := checkText(t.Subject, 200, false); err != nil {
		bad = append(bad, tessera.FieldError{Path: "template.subject", Error: err.Error()})
	}
	if t.FromEmail != "" {
		if _, err := NormalizeEmail(t.FromEmail); err != nil {
			bad = append(bad, tessera.FieldError{Path: "template.fromEmail", Error: err.Error()})
		}
	}
	if err := checkText(t.FromName, 100, false); err != nil {
		bad = append(bad, tessera.FieldError{Path: "template.fromName", Error: err.Error()})
	}
	return bad
}

// messageContent renders the message for a code, with defaults for what
// the template leaves out.
func messageContent(m tessera.Method, t *Template, issuer, code, id string) tessera.MessageContent {
	body := t.Body
	if body == "" {
		body = "Your verification code is " + PlaceholderCode
		if issuer != "" {
			body = "Your " + issuer + " verification code is " + PlaceholderCode
		}
	}
	c := tessera.MessageContent{Body: Render(body, code, id), FromEmail: t.FromEmail, FromName: t.FromName, Code: code, PlainText: t.PlainText}
	if m == tessera.MethodEmail {
		c.Subject = t.Subject
		if c.Subject == "" {
			c.Subject = "Your verification code"
			if issuer != "" {
				c.Subject = issuer + " verification code"
			}
		}
	}
	return c
}

func equalStrings(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
