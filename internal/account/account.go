// Package account is the account model of Tessera's end users:
// registration, password login with ID and refresh tokens, sessions, MFA
// enrolment (authenticator apps, SMS) and the codes that prove a channel.
// Every code a user receives is a verification in the engine, bound to its
// user and purpose; this package holds the rules around them, and the HTTP
// layer only translates.
package account

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/password"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/token"
	"github.com/tessera-id/tessera/internal/verify"
)

// Owner is the engine owner of every account code: no API client can see
// or validate them.
const Owner = "tessera:accounts"

// Defaults of the account rules.
const (
	DefaultSessionTTL   = 30 * 24 * time.Hour
	DefaultRefreshGrace = 10 * time.Second
	DefaultCodeTTL      = 30 * time.Minute
	codeMaxAttempts     = 5
	challengeAttempts   = 5
	recoveryCodeCount   = 10
	minPasswordLen      = 8
	maxPasswordLen      = 128
)

// Service carries out account operations. Set its fields once at start-up.
type Service struct {
	Store     tessera.AccountStore
	Engine    *verify.Engine
	Tokens    *token.Signer
	Passwords *password.Hasher
	Keys      *secret.Keyring
	Now       func() time.Time
	// ServiceName names Tessera to users: in messages and authenticator apps.
	ServiceName string
	// SessionTTL is a session's absolute lifetime; RefreshGrace how long a
	// rotated refresh token still yields its successor (two tabs racing).
	SessionTTL, RefreshGrace time.Duration
	// CodeTTL is how long an emailed or texted code is valid.
	CodeTTL time.Duration
	// PrivilegedMaxAge is how long after the user last proved their
	// factors a session may do privileged actions
	// (policy.DefaultPrivilegedMaxAge when zero).
	PrivilegedMaxAge time.Duration
	// NewDeviceNotices emails the user when their account is logged in to
	// from a device it has not used before.
	NewDeviceNotices bool
	// WebAuthn is the passkeys' relying party; nil turns passkeys off.
	WebAuthn *webauthn.WebAuthn

	// Log gets errors of work done after a request was answered.
	Log *slog.Logger
	// Observe, when set, hears each login's result: success, mfa_required,
	// mfa_success, failed, locked.
	Observe func(result string)

	pending   sync.WaitGroup // background sends (see background)
	slots     chan struct{}
	slotsOnce sync.Once
}

// Meta is what a request tells about its client.
type Meta struct {
	UserAgent string
	IP        string
}

// Tokens is a login's result: an ID token and a refresh token.
type Tokens struct {
	IDToken      string    `json:"idToken"`
	RefreshToken string    `json:"refreshToken,omitempty"` // not after a step-up: the session keeps its chain
	ExpiresAt    time.Time `json:"idTokenExpiresAt"`
}

// LoginResult is either tokens or, with MFA on, a challenge to complete.
type LoginResult struct {
	Tokens    *Tokens
	Challenge *Challenge
}

// Challenge tells the client how to finish an MFA login.
type Challenge struct {
	ProcessingID string    `json:"processingId"`
	Methods      []string  `json:"methods"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// CodeSent describes a code that went out.
type CodeSent struct {
	Destination string    `json:"destination,omitempty"` // obfuscated
	Expiration  string    `json:"expiration"`            // "30min.", as the flows document writes it
	ExpiresAt   time.Time `json:"expiresAt"`
	// ProcessingID is the flow the code belongs to, where the next call
	// must name it (password recovery).
	ProcessingID string `json:"processingId,omitempty"`
}

func (s *Service) now() time.Time { return s.Now().UTC() }

// verificationID is the engine id of a user's code for a purpose. It is
// derived, so a new code for the same purpose replaces (voids) the last.
func verificationID(userID, purpose string) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte("tessera-account\x00"+userID+"\x00"+purpose)).String()
}

// invalidCredentials is the one answer to a wrong email or password, so
// the answer never tells whether an account exists.
func invalidCredentials() error {
	return tessera.Errorf(tessera.EUNAUTHORIZED, "Invalid email or password")
}

// codeError turns an engine error into what a user may see: the code was
// wrong, expired or used up, without the engine's verification details.
func codeError(err error) error {
	switch tessera.ErrorCode(err) {
	case tessera.EINVALIDCODE, tessera.ENOTFOUND:
		return tessera.Errorf(tessera.EINVALIDCODE, "Invalid code")
	case tessera.EEXPIRED:
		return tessera.Errorf(tessera.EEXPIRED, "The code expired: ask for a new one")
	case tessera.ELOCKED:
		return tessera.Errorf(tessera.ELOCKED, "Too many wrong codes: ask for a new one")
	}
	return err
}

// printable keeps what a client sent as a label storable and loggable:
// valid UTF-8, no control characters (PostgreSQL refuses NUL), at most n
// bytes.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return clip(s, n)
}

func checkPassword(pw, email string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < minPasswordLen:
		return fmt.Errorf("must be at least %d characters", minPasswordLen)
	case n > maxPasswordLen:
		return fmt.Errorf("must be at most %d characters", maxPasswordLen)
	case strings.EqualFold(pw, email):
		return errors.New("must not be the email address")
	}
	return nil
}

// ---- codes ----

// codeSpec says what a one-time code is for. purpose also keys the send
// limits; extra is context the code is bound to (a key type, a new
// address). A code sent within a flow is bound to the flow and has its own
// verification, so a code of another flow (a stranger's recovery of the
// same address, a second registration) neither replaces nor burns it.
// Without a flow, a new code for the same purpose replaces the last.
type codeSpec struct {
	purpose, extra, flowID string
	// message names the message's text (msg.code.<message>) where the
	// purpose alone does not say it (see codeMessages).
	message string
}

func (c codeSpec) verificationID(userID string) string {
	if c.flowID != "" {
		return verificationID(userID, c.purpose+"\x00flow\x00"+c.flowID)
	}
	return verificationID(userID, c.purpose)
}

func (c codeSpec) binding(destination string) string {
	return c.purpose + "\x00" + destination + "\x00" + c.extra + "\x00" + c.flowID
}

// sendCode sends a 6-digit code for purpose to destination; it replaces
// any earlier code for the same purpose.
func (s *Service) sendCode(ctx context.Context, u *tessera.User, method tessera.Method, destination, purpose, extra string) (*CodeSent, error) {
	return s.send(ctx, u, method, destination, codeSpec{purpose: purpose, extra: extra})
}

// sendFlowCode sends a code for purpose bound to flow f.
func (s *Service) sendFlowCode(ctx context.Context, u *tessera.User, method tessera.Method, destination, purpose string, f *tessera.Flow) (*CodeSent, error) {
	return s.send(ctx, u, method, destination, codeSpec{purpose: purpose, flowID: f.ID})
}

func (s *Service) send(ctx context.Context, u *tessera.User, method tessera.Method, destination string, c codeSpec) (*CodeSent, error) {
	if err := s.sendLimits(ctx, u, destination, c.purpose); err != nil {
		return nil, err
	}
	ttl := s.CodeTTL
	lang := s.lang(ctx, u)
	subject, body := s.codeText(lang, method, c)
	if method == tessera.MethodEmail {
		body = s.antiPhishingLine(u, lang) + body
	}
	req := &verify.InitiateRequest{
		Consumer: destination,
		Issuer:   s.ServiceName,
		Template: verify.Template{Subject: subject, Body: body, PlainText: true},
		Policy: verify.Policy{
			ExpiredOn:            hms(ttl),
			MaxAttempts:          codeMaxAttempts,
			ForcedVerificationID: c.verificationID(u.ID),
		},
		Binding:  c.binding(destination),
		Replace:  true,
		NoResend: true, // account codes are never resent: a new one replaces it
		Subject:  u.ID, // the engine's send limits count per user: no user uses up the others' allowance
	}
	out, err := s.Engine.Initiate(ctx, Owner, method, req)
	if err != nil {
		return nil, err
	}
	return &CodeSent{Destination: obfuscate(method, destination), Expiration: ttlText(ttl) + ".", ExpiresAt: out.Verification.ExpiresAt}, nil
}

// Send limits: one code per purpose and destination per SendCooldown, and
// at most SendsPerHour codes to one destination of a user.
const (
	SendCooldown     = 30 * time.Second
	SendsPerHour     = 10
	SendsPerUserHour = 30
)

func (s *Service) sendLimits(ctx context.Context, u *tessera.User, destination, purpose string) error {
	now := s.now()
	destination = strings.ToLower(destination) // one counter for every spelling of an address
	if err := s.Store.HitSendLimit(ctx, s.limitKey("send-cooldown", u.ID, destination, purpose), now, SendCooldown, time.Hour, 1<<30); err != nil {
		return err
	}
	if err := s.Store.HitSendLimit(ctx, s.limitKey("send-hourly", u.ID, destination), now, 0, time.Hour, SendsPerHour); err != nil {
		return err
	}
	// And a cap over every destination, so fresh numbers or addresses
	// (SMS pumping, mail bombing) do not each get a new allowance.
	return s.Store.HitSendLimit(ctx, s.limitKey("send-user-hourly", u.ID), now, 0, time.Hour, SendsPerUserHour)
}

// limitKey names a send-limit counter. Keys are hashed: the table then
// holds no addresses, and no byte a database may refuse.
func (s *Service) limitKey(parts ...string) string {
	return hex.EncodeToString(s.Keys.MAC(parts...)[:16])
}

func antiPhishingAD(userID string) []byte { return []byte("anti-phishing\x00" + userID) }

// txn is a transaction of the account stores with an engine bound to it:
// codes it checks, changes it makes and notices it queues commit together.
type txn struct {
	store  tessera.TxStore
	engine *verify.Engine
}

// inTx runs fn in one transaction. Messages fn queues reach the outbox
// worker once the transaction has committed. fn must not hash passwords
// or do other slow work: on SQLite it holds the single writer.
//
// A wrong code must still count as an attempt, so fn returns nil after a
// failed code check (keeping the error aside) rather than rolling back.
func (s *Service) inTx(ctx context.Context, fn func(t *txn) error) error {
	var queued []*tessera.Message
	err := s.Store.InTx(ctx, func(tx tessera.TxStore) error {
		queued = queued[:0]
		eng := *s.Engine
		eng.Store = tx
		eng.Deliver = func(m *tessera.Message) { queued = append(queued, m) }
		// No room is reserved in the worker's queue for a message written
		// leased to it: a rolled-back transaction would never give the
		// room back. Messages of a transaction are claimed as usual.
		eng.Reserve = nil
		return fn(&txn{store: tx, engine: &eng})
	})
	if err == nil && s.Engine.Deliver != nil {
		for _, m := range queued {
			s.Engine.Deliver(m)
		}
	}
	return err
}

// checkCode validates a code sent by sendCode with the same arguments.
func (s *Service) checkCode(ctx context.Context, u *tessera.User, method tessera.Method, destination, purpose, extra, code string) error {
	return checkCodeOn(ctx, s.Engine, u, method, destination, codeSpec{purpose: purpose, extra: extra}, code)
}

// checkFlowCode validates a code sent by sendFlowCode.
func (s *Service) checkFlowCode(ctx context.Context, u *tessera.User, method tessera.Method, destination, purpose string, f *tessera.Flow, code string) error {
	return checkCodeOn(ctx, s.Engine, u, method, destination, codeSpec{purpose: purpose, flowID: f.ID}, code)
}

// checkCodeOn validates a code with eng: the service's engine, or one
// bound to a transaction (see inTx).
func checkCodeOn(ctx context.Context, eng *verify.Engine, u *tessera.User, method tessera.Method, destination string, c codeSpec, code string) error {
	_, err := eng.ValidateBound(ctx, Owner, method, c.verificationID(u.ID), strings.TrimSpace(code), c.binding(destination), false)
	return codeError(err)
}

func ttlText(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dmin", int(d.Minutes()))
	}
	return d.String()
}

func hms(d time.Duration) string {
	sec := int(d.Seconds())
	return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec/60%60, sec%60)
}

// ---- recovery codes ----

// recoveryEncoding leaves out i, l, o and 1, which read alike.
var recoveryEncoding = base32.NewEncoding("abcdefghjkmnpqrstuvwxyz023456789").WithPadding(base32.NoPadding)

func (s *Service) recoveryHash(userID, code string) []byte {
	return s.Keys.Hash(recoveryHashParts(userID, code)...)
}

// recoveryHashes are a code's hashes under each HMAC key, newest first:
// codes issued before the newest key was added are stored under an older.
func (s *Service) recoveryHashes(userID, code string) [][]byte {
	return s.Keys.Hashes(recoveryHashParts(userID, code)...)
}

func recoveryHashParts(userID, code string) []string {
	norm := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
	return []string{"recovery-code", userID, norm}
}

// NewRecoveryCodes voids the user's recovery codes and returns ten new
// ones, shown this once; each can stand in for an MFA code once.
func (s *Service) NewRecoveryCodes(ctx context.Context, u *tessera.User) ([]string, error) {
	codes := make([]string, recoveryCodeCount)
	hashes := make([][]byte, recoveryCodeCount)
	for i := range codes {
		b := make([]byte, 7)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		c := recoveryEncoding.EncodeToString(b)[:10]
		codes[i] = c[:5] + "-" + c[5:]
		hashes[i] = s.recoveryHash(u.ID, codes[i])
	}
	if err := s.Store.ReplaceRecoveryCodes(ctx, u.ID, hashes, s.now()); err != nil {
		return nil, err
	}
	return codes, nil
}

var zeroTime = time.Time{}
