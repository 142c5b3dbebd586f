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
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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
	RefreshToken string    `json:"refreshToken"`
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

// ---- registration ----

// Register creates an account and emails a confirmation code. Its answer
// is the same whether or not the email was taken. For an address with a
// confirmed account, its owner gets a notice instead of a code. An account
// nobody has confirmed yet belongs to whoever confirms it: registering it
// again replaces its password and sends a new code, so whoever registered
// first with someone else's address gains nothing.
func (s *Service) Register(ctx context.Context, email, pw string, meta Meta) error {
	addr, err := verify.NormalizeEmail(email)
	if err != nil {
		return tessera.Invalid(tessera.FieldError{Path: "email", Error: err.Error()})
	}
	if err := checkPassword(pw, addr); err != nil {
		return tessera.Invalid(tessera.FieldError{Path: "password", Error: err.Error()})
	}
	hash, err := s.Passwords.Hash(ctx, pw)
	if err != nil {
		return err
	}
	now := s.now()
	u := &tessera.User{ID: uuid.NewString(), Email: addr, PasswordHash: hash, PasswordChanged: now, Status: tessera.UserUnverified, CreatedAt: now}
	err = s.Store.CreateUser(ctx, u)
	if tessera.ErrorCode(err) == tessera.ECONFLICT {
		if u, err = s.Store.UserByEmail(ctx, addr); err != nil {
			return err
		}
		if u.Status != tessera.UserUnverified {
			s.audit(ctx, tessera.AuditRegister, u, meta, "address has an account: owner notified")
			return s.registrationNotice(ctx, u)
		}
		if err := s.Store.SetPassword(ctx, u.ID, hash, now); err != nil {
			return err
		}
		s.audit(ctx, tessera.AuditRegister, u, meta, "unconfirmed account registered again: password replaced")
	} else if err != nil {
		return err
	} else {
		s.audit(ctx, tessera.AuditRegister, u, meta, "new account")
	}
	_, err = s.sendCode(ctx, u, tessera.MethodEmail, u.Email, purposeRegister, "")
	if tessera.ErrorCode(err) == tessera.ETOOMANY {
		return nil // the answer must not differ; the code sent earlier still works
	}
	return err
}

// purposeRegister is the purpose of registration codes.
const purposeRegister = "register"

// registrationNotice tells the owner of a confirmed address that someone
// tried to register it, at most once per noticeCooldown.
func (s *Service) registrationNotice(ctx context.Context, u *tessera.User) error {
	if err := s.Store.HitSendLimit(ctx, s.limitKey("notice-register", u.ID), s.now(), noticeCooldown, time.Hour, 1<<30); err != nil {
		return nil // told recently enough
	}
	return s.notify(ctx, u, u.Email, "someone tried to register with your address",
		"Someone tried to create a "+s.ServiceName+" account with this email address, which already has one. If it was you, log in or reset your password. If not, you can ignore this message.")
}

const noticeCooldown = 10 * time.Minute

// CreateUser makes an account directly, for operators (tessera user
// create). The operator vouches for the address, so it counts as
// confirmed: an unconfirmed account could not log in.
func (s *Service) CreateUser(ctx context.Context, email, pw string) (*tessera.User, error) {
	addr, err := verify.NormalizeEmail(email)
	if err != nil {
		return nil, tessera.Invalid(tessera.FieldError{Path: "email", Error: err.Error()})
	}
	if err := checkPassword(pw, addr); err != nil {
		return nil, tessera.Invalid(tessera.FieldError{Path: "password", Error: err.Error()})
	}
	hash, err := s.Passwords.Hash(ctx, pw)
	if err != nil {
		return nil, err
	}
	now := s.now()
	u := &tessera.User{ID: uuid.NewString(), Email: addr, EmailVerifiedAt: now, PasswordHash: hash, PasswordChanged: now, Status: tessera.UserActive, CreatedAt: now}
	if err := s.Store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	s.audit(ctx, tessera.AuditRegister, u, Meta{}, "created by an operator")
	return u, nil
}

// ConfirmRegistration checks the emailed code, confirms the address and
// logs the user in.
func (s *Service) ConfirmRegistration(ctx context.Context, email, code string, meta Meta) (*Tokens, *tessera.User, error) {
	if code == "" {
		return nil, nil, tessera.Invalid(tessera.FieldError{Path: "code", Error: "is required"})
	}
	u, err := s.userByEmail(ctx, email)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND || (err == nil && u.Status != tessera.UserUnverified) {
		return nil, nil, tessera.Errorf(tessera.EINVALIDCODE, "Invalid code")
	}
	if err != nil {
		return nil, nil, err
	}
	if err := s.checkCode(ctx, u, tessera.MethodEmail, u.Email, purposeRegister, "", code); err != nil {
		return nil, nil, err
	}
	if err := s.Store.SetEmailVerified(ctx, u.ID, u.Email, s.now()); err != nil {
		return nil, nil, err
	}
	tokens, err := s.newSession(ctx, u, []string{"pwd", "otp"}, meta)
	if err != nil {
		return nil, nil, err
	}
	s.audit(ctx, tessera.AuditRegisterConfirmed, u, meta, "email confirmed, logged in")
	u, err = s.Store.User(ctx, u.ID)
	return tokens, u, err
}

// userByEmail looks a user up by an email as typed; anything that is not
// an address is simply not found (and never reaches the database).
func (s *Service) userByEmail(ctx context.Context, email string) (*tessera.User, error) {
	addr, err := verify.NormalizeEmail(strings.TrimSpace(email))
	if err != nil {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "Not found")
	}
	return s.Store.UserByEmail(ctx, addr)
}

// ---- codes ----

// binding ties a code to its purpose, destination and extra context.
func binding(purpose, destination, extra string) string {
	return purpose + "\x00" + destination + "\x00" + extra
}

// sendCode sends a 6-digit code for purpose to destination; it replaces
// any earlier code for the same purpose.
func (s *Service) sendCode(ctx context.Context, u *tessera.User, method tessera.Method, destination, purpose, extra string) (*CodeSent, error) {
	if err := s.sendLimits(ctx, u, destination, purpose); err != nil {
		return nil, err
	}
	ttl := s.CodeTTL
	body := "Your " + s.ServiceName + " code is {{{CODE}}}. It expires in " + ttlText(ttl) + ". If you did not ask for it, ignore this message."
	if method == tessera.MethodEmail {
		body = s.antiPhishingLine(u) + body
	}
	req := &verify.InitiateRequest{
		Consumer: destination,
		Issuer:   s.ServiceName,
		Template: verify.Template{Subject: "Your " + s.ServiceName + " code", Body: body},
		Policy: verify.Policy{
			ExpiredOn:            hms(ttl),
			MaxAttempts:          codeMaxAttempts,
			ForcedVerificationID: verificationID(u.ID, purpose),
		},
		Binding:  binding(purpose, destination, extra),
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
	return hex.EncodeToString(s.Keys.Hash(parts...)[:16])
}

// antiPhishingLine is the first line of every email to u when u has set
// an anti-phishing code: phishing mail cannot show it.
func (s *Service) antiPhishingLine(u *tessera.User) string {
	if u.AntiPhishingSealed == nil {
		return ""
	}
	code, err := s.Keys.Open(u.AntiPhishingSealed, antiPhishingAD(u.ID))
	if err != nil {
		return ""
	}
	return "Your anti-phishing code: " + string(code) + "\n\n"
}

func antiPhishingAD(userID string) []byte { return []byte("anti-phishing\x00" + userID) }

// notify emails u a security notice, at address (the user's email, or the
// previous one after a change).
func (s *Service) notify(ctx context.Context, u *tessera.User, address, subject, text string) error {
	return s.Engine.Notice(ctx, Owner, tessera.MethodEmail, address, tessera.MessageContent{
		Subject: s.ServiceName + ": " + subject,
		Body:    s.antiPhishingLine(u) + text + "\n\nIf this was not you, reset your password now and contact support.",
	})
}

// checkCode validates a code sent by sendCode with the same arguments.
func (s *Service) checkCode(ctx context.Context, u *tessera.User, method tessera.Method, destination, purpose, extra, code string) error {
	_, err := s.Engine.ValidateBound(ctx, Owner, method, verificationID(u.ID, purpose), strings.TrimSpace(code), binding(purpose, destination, extra), false)
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

// ---- login ----

// lockFor is the login slow-down: nothing for four wrong passwords, then
// a lock of 30 s that doubles with each further failure, up to 15 minutes.
func lockFor(failures int) time.Duration {
	if failures < 5 {
		return 0
	}
	d := 30 * time.Second << min(failures-5, 10)
	return min(d, 15*time.Minute)
}

// Login checks an email and password. With MFA off it returns tokens;
// with MFA on, a challenge to finish with a second factor.
func (s *Service) Login(ctx context.Context, email, pw string, meta Meta) (*LoginResult, error) {
	res, err := s.login(ctx, email, pw, meta)
	switch {
	case err == nil && res.Challenge != nil:
		s.observe("mfa_required")
	case err == nil:
		s.observe("success")
	case tessera.ErrorCode(err) == tessera.EUNAUTHORIZED:
		s.observe("failed")
	case tessera.ErrorCode(err) == tessera.ETOOMANY:
		s.observe("locked")
	}
	return res, err
}

func (s *Service) observe(result string) {
	if s.Observe != nil {
		s.Observe(result)
	}
}

func (s *Service) login(ctx context.Context, email, pw string, meta Meta) (*LoginResult, error) {
	if email == "" || pw == "" {
		var bad []tessera.FieldError
		if email == "" {
			bad = append(bad, tessera.FieldError{Path: "email", Error: "is required"})
		}
		if pw == "" {
			bad = append(bad, tessera.FieldError{Path: "password", Error: "is required"})
		}
		return nil, tessera.Invalid(bad...)
	}
	now := s.now()
	// Attempts per client IP are limited where requests come in (the
	// public accounts endpoints have a per-IP limit, shared across
	// instances through Redis); per account, here.
	u, err := s.userByEmail(ctx, email)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		// Spend the time a real check takes, then give the same answer.
		if _, err := s.Passwords.Verify(ctx, pw, ""); err != nil {
			return nil, err
		}
		s.auditUnknown(ctx, strings.TrimSpace(email), meta)
		return nil, invalidCredentials()
	}
	if err != nil {
		return nil, err
	}
	u, err = s.Store.ReserveLogin(ctx, u.ID, now, lockFor)
	if tessera.ErrorCode(err) == tessera.ELOCKED {
		if _, err := s.Passwords.Verify(ctx, pw, ""); err != nil { // same time as any other answer
			return nil, err
		}
		s.audit(ctx, tessera.AuditLoginLocked, u, meta, "locked until "+u.LockedUntil.Format(time.RFC3339))
		return nil, tooManyLogins(u.LockedUntil.Sub(now))
	}
	if err != nil {
		return nil, err
	}
	ok, err := s.Passwords.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		return nil, err
	}
	if !ok {
		s.audit(ctx, tessera.AuditLoginFailed, u, meta, failureDetail("wrong password", u.FailedLogins+1))
		return nil, invalidCredentials()
	}
	switch u.Status {
	case tessera.UserDisabled:
		s.audit(ctx, tessera.AuditLoginFailed, u, meta, "account disabled")
		return nil, tessera.Errorf(tessera.EFORBIDDEN, "This account is disabled")
	case tessera.UserUnverified:
		s.audit(ctx, tessera.AuditLoginFailed, u, meta, "email not confirmed")
		return nil, tessera.Errorf(tessera.EFORBIDDEN, "Confirm your email first: POST /auth/register/confirm with the emailed code")
	}
	if s.Passwords.NeedsRehash(u.PasswordHash) {
		// Stronger parameters were configured: upgrade while the password is at hand.
		if hash, err := s.Passwords.Hash(ctx, pw); err == nil {
			_ = s.Store.SetPassword(ctx, u.ID, hash, u.PasswordChanged)
		}
	}
	if !u.MFAEnabled() {
		tokens, err := s.newSession(ctx, u, []string{"pwd"}, meta)
		if err != nil {
			return nil, err
		}
		s.audit(ctx, tessera.AuditLoginSuccess, u, meta, "password")
		return &LoginResult{Tokens: tokens}, nil
	}
	// The attempt stays counted until the second factor succeeds, so
	// guessing second factors through new logins runs into the same lock.
	res, err := s.challenge(ctx, u, meta, now)
	if err == nil {
		s.audit(ctx, tessera.AuditLoginMFARequired, u, meta, "methods "+strings.Join(res.Challenge.Methods, ","))
	}
	return res, err
}

// failureDetail describes the failures-th failure in a row, and the lock
// it earns.
func failureDetail(what string, failures int) string {
	d := fmt.Sprintf("%s (%d in a row)", what, failures)
	if lock := lockFor(failures); lock > 0 {
		d += "; locked for " + lock.String()
	}
	return d
}

func tooManyLogins(wait time.Duration) error {
	return &tessera.Error{Code: tessera.ETOOMANY, Message: "Too many failed logins: try again later", RetryAfter: int((wait + time.Second - 1) / time.Second)}
}

// challenge starts the second step of an MFA login.
func (s *Service) challenge(ctx context.Context, u *tessera.User, meta Meta, now time.Time) (*LoginResult, error) {
	c := &tessera.LoginChallenge{ID: uuid.NewString(), UserID: u.ID, MaxAttempts: challengeAttempts, CreatedAt: now, ExpiresAt: now.Add(s.CodeTTL), UserAgent: meta.UserAgent, IP: meta.IP}
	if err := s.Store.CreateLoginChallenge(ctx, c); err != nil {
		return nil, err
	}
	var methods []string
	if !u.TOTPVerifiedAt.IsZero() {
		// A google_auth verification for this challenge, so TOTP codes get
		// the engine's attempt cap and replay protection.
		if _, err := s.Engine.Initiate(ctx, Owner, tessera.MethodGoogleAuth, &verify.InitiateRequest{
			Consumer: u.ID, Issuer: s.ServiceName,
			Policy: verify.Policy{ExpiredOn: hms(s.CodeTTL), MaxAttempts: challengeAttempts, ForcedVerificationID: verificationID(u.ID, "login-totp:"+c.ID)},
		}); err != nil {
			return nil, err
		}
		methods = append(methods, "totp")
	}
	if !u.SMSMFAAt.IsZero() {
		methods = append(methods, "sms")
	}
	if !u.EmailVerifiedAt.IsZero() {
		methods = append(methods, "email")
	}
	if n, err := s.Store.RecoveryCodesLeft(ctx, u.ID); err != nil {
		return nil, err
	} else if n > 0 {
		methods = append(methods, "recovery_code")
	}
	return &LoginResult{Challenge: &Challenge{ProcessingID: c.ID, Methods: methods, ExpiresAt: c.ExpiresAt}}, nil
}

// Destinations of one-time tokens, as the flows document names them.
const (
	DestinationEmail = "EMAIL"
	DestinationPhone = "PHONE_NUMBER"
)

// loginDestination resolves EMAIL or PHONE_NUMBER to where a login code
// may go: the confirmed email, or the phone while texted codes are a
// second factor.
func loginDestination(u *tessera.User, d string) (tessera.Method, string, error) {
	switch d {
	case DestinationEmail:
		if u.EmailVerifiedAt.IsZero() {
			return "", "", tessera.Invalid(tessera.FieldError{Path: "destination", Error: "the email address is not confirmed"})
		}
		return tessera.MethodEmail, u.Email, nil
	case DestinationPhone:
		if u.SMSMFAAt.IsZero() {
			return "", "", tessera.Invalid(tessera.FieldError{Path: "destination", Error: "texted codes are not a second factor of this account"})
		}
		return tessera.MethodPhone, u.Phone, nil
	}
	return "", "", tessera.Invalid(tessera.FieldError{Path: "destination", Error: "must be EMAIL or PHONE_NUMBER"})
}

// SendLoginCode sends the one-time token that finishes an MFA login to the
// user's email or phone (POST /api/v1/token/login).
func (s *Service) SendLoginCode(ctx context.Context, processingID, dest string) (*CodeSent, error) {
	c, u, err := s.openChallenge(ctx, processingID)
	if err != nil {
		return nil, err
	}
	method, to, err := loginDestination(u, dest)
	if err != nil {
		return nil, err
	}
	return s.sendCode(ctx, u, method, to, "login", c.ID)
}

func (s *Service) openChallenge(ctx context.Context, processingID string) (*tessera.LoginChallenge, *tessera.User, error) {
	if _, err := uuid.Parse(processingID); err != nil {
		return nil, nil, tessera.Invalid(tessera.FieldError{Path: "processingId", Error: "must be the processingId a login returned"})
	}
	c, err := s.Store.LoginChallenge(ctx, processingID)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND || (err == nil && (!c.UsedAt.IsZero() || !s.now().Before(c.ExpiresAt))) {
		return nil, nil, tessera.Errorf(tessera.ENOTFOUND, "Unknown, used or expired processingId: log in again")
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := s.Store.User(ctx, c.UserID)
	return c, u, err
}

// The second factors of an MFA login.
const (
	FactorTOTP     = "totp"
	FactorSMS      = "sms"
	FactorEmail    = "email"
	FactorRecovery = "recovery_code"
)

// CompleteLogin finishes an MFA login with a second factor.
func (s *Service) CompleteLogin(ctx context.Context, processingID, factor, code string, meta Meta) (*Tokens, error) {
	if code == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "code", Error: "is required"})
	}
	c, u, err := s.openChallenge(ctx, processingID)
	if err != nil {
		return nil, err
	}
	if u.Status == tessera.UserDisabled {
		s.audit(ctx, tessera.AuditLoginFailed, u, meta, "account disabled")
		return nil, tessera.Errorf(tessera.EFORBIDDEN, "This account is disabled")
	}
	// A second factor counts like a password attempt: wrong ones lock the
	// account, however many logins they are spread over.
	locked, err := s.Store.ReserveLogin(ctx, u.ID, s.now(), lockFor)
	if tessera.ErrorCode(err) == tessera.ELOCKED {
		s.audit(ctx, tessera.AuditLoginLocked, u, meta, "second factor; locked until "+locked.LockedUntil.Format(time.RFC3339))
		return nil, tooManyLogins(locked.LockedUntil.Sub(s.now()))
	} else if err != nil {
		return nil, err
	}
	if _, err := s.Store.ReserveChallengeAttempt(ctx, c.ID, s.now()); err != nil {
		switch tessera.ErrorCode(err) {
		case tessera.ENOTFOUND:
			return nil, tessera.Errorf(tessera.ENOTFOUND, "Unknown, used or expired processingId: log in again")
		case tessera.ELOCKED:
			s.audit(ctx, tessera.AuditLoginMFAFailed, u, meta, "too many attempts on this login")
		}
		return nil, err
	}
	switch factor {
	case FactorTOTP:
		if u.TOTPVerifiedAt.IsZero() {
			return nil, tessera.Invalid(tessera.FieldError{Path: "method", Error: "no authenticator app is enrolled"})
		}
		_, err = s.Engine.Validate(ctx, Owner, tessera.MethodGoogleAuth, verificationID(u.ID, "login-totp:"+c.ID), strings.TrimSpace(code), false)
		err = codeError(err)
	case FactorSMS, FactorEmail:
		d := DestinationEmail
		if factor == FactorSMS {
			d = DestinationPhone
		}
		method, to, derr := loginDestination(u, d)
		if derr != nil {
			return nil, derr
		}
		err = s.checkCode(ctx, u, method, to, "login", c.ID, code)
	case FactorRecovery:
		err = s.Store.UseRecoveryCode(ctx, u.ID, s.recoveryHash(u.ID, code), s.now())
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			err = tessera.Errorf(tessera.EINVALIDCODE, "Invalid code")
		}
	default:
		return nil, tessera.Invalid(tessera.FieldError{Path: "method", Error: "must be totp, sms, email or recovery_code"})
	}
	if err != nil {
		if code := tessera.ErrorCode(err); code == tessera.EINVALIDCODE || code == tessera.EEXPIRED || code == tessera.ELOCKED {
			s.audit(ctx, tessera.AuditLoginMFAFailed, u, meta, failureDetail(factor+": "+code, locked.FailedLogins+1))
		}
		return nil, err
	}
	if err := s.Store.UseLoginChallenge(ctx, c.ID, s.now()); err != nil {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "Unknown, used or expired processingId: log in again")
	}
	s.observe("mfa_success")
	tokens, err := s.newSession(ctx, u, []string{"pwd", "otp", "mfa"}, meta)
	if err == nil {
		s.audit(ctx, tessera.AuditLoginMFASuccess, u, meta, factor)
	}
	return tokens, err
}

// ---- sessions and tokens ----

func newRefreshToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "rt_" + base64.RawURLEncoding.EncodeToString(b)
}

func (s *Service) refreshHash(t string) []byte { return s.Keys.Hash("refresh-token", t) }

// newSession logs u in: a session, its first refresh token, an ID token.
func (s *Service) newSession(ctx context.Context, u *tessera.User, amr []string, meta Meta) (*Tokens, error) {
	now := s.now()
	sess := &tessera.Session{ID: uuid.NewString(), UserID: u.ID, AMR: amr, UserAgent: clip(meta.UserAgent, 512), IP: meta.IP, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.SessionTTL)}
	refresh := newRefreshToken()
	if err := s.Store.CreateSession(ctx, sess, &tessera.RefreshToken{Hash: s.refreshHash(refresh), SessionID: sess.ID, CreatedAt: now}); err != nil {
		return nil, err
	}
	if err := s.Store.LoginSucceeded(ctx, u.ID, now, sess.UserAgent); err != nil {
		return nil, err
	}
	id, exp, err := s.Tokens.Issue(ctx, u.ID, sess.ID, amr)
	if err != nil {
		return nil, err
	}
	return &Tokens{IDToken: id, RefreshToken: refresh, ExpiresAt: exp}, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Refresh rotates a refresh token: the old one stops working and a new ID
// token and refresh token come back. Reusing a rotated token revokes the
// session, except within RefreshGrace, where a racing second use (two
// tabs) gets the same successor instead.
func (s *Service) Refresh(ctx context.Context, refresh string, meta Meta) (*Tokens, error) {
	if refresh == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "refreshToken", Error: "is required"})
	}
	now := s.now()
	hash := s.refreshHash(refresh)
	next := newRefreshToken()
	sealed, err := s.Keys.Seal([]byte(next), hash)
	if err != nil {
		return nil, err
	}
	sess, old, err := s.Store.RotateRefreshToken(ctx, hash, &tessera.RefreshToken{Hash: s.refreshHash(next), CreatedAt: now}, sealed, now)
	switch tessera.ErrorCode(err) {
	case "":
	case tessera.ENOTFOUND:
		return nil, tessera.Errorf(tessera.EUNAUTHORIZED, "Invalid or expired refresh token")
	case tessera.ECONFLICT:
		if now.Sub(old.UsedAt) <= s.RefreshGrace && old.SuccessorSealed != nil {
			successor, err := s.Keys.Open(old.SuccessorSealed, hash)
			if err != nil {
				return nil, err
			}
			next = string(successor)
			break
		}
		if _, err := s.Store.RevokeSessions(ctx, sess.UserID, sess.ID, "", "refresh token reused", now); err != nil {
			return nil, err
		}
		u, err := s.Store.User(ctx, sess.UserID)
		if err != nil {
			u = &tessera.User{ID: sess.UserID}
		}
		s.audit(ctx, tessera.AuditRefreshReuse, u, meta, "session "+sess.ID+" revoked")
		return nil, tessera.Errorf(tessera.EUNAUTHORIZED, "Refresh token reused: the session is revoked, log in again")
	default:
		return nil, err
	}
	u, err := s.Store.User(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
	if u.Status == tessera.UserDisabled {
		return nil, tessera.Errorf(tessera.EUNAUTHORIZED, "This account is disabled")
	}
	id, exp, err := s.Tokens.Issue(ctx, u.ID, sess.ID, sess.AMR)
	if err != nil {
		return nil, err
	}
	return &Tokens{IDToken: id, RefreshToken: next, ExpiresAt: exp}, nil
}

// Authenticate checks an ID token and that its session is still active.
func (s *Service) Authenticate(ctx context.Context, idToken string) (*tessera.User, *tessera.Session, error) {
	claims, err := s.Tokens.Verify(ctx, idToken)
	if err != nil {
		return nil, nil, err
	}
	sess, err := s.Store.Session(ctx, claims.SessionID)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND || (err == nil && (!sess.Active(s.now()) || sess.UserID != claims.Subject)) {
		return nil, nil, tessera.Errorf(tessera.EUNAUTHORIZED, "The session has ended: log in again")
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := s.Store.User(ctx, sess.UserID)
	if err != nil {
		return nil, nil, err
	}
	if u.Status == tessera.UserDisabled {
		return nil, nil, tessera.Errorf(tessera.EUNAUTHORIZED, "This account is disabled")
	}
	return u, sess, nil
}

// Logout ends the current session.
func (s *Service) Logout(ctx context.Context, u *tessera.User, sess *tessera.Session, meta Meta) error {
	if _, err := s.Store.RevokeSessions(ctx, u.ID, sess.ID, "", "logout", s.now()); err != nil {
		return err
	}
	s.audit(ctx, tessera.AuditLogout, u, meta, "session "+sess.ID)
	return nil
}

// Sessions lists the user's active sessions.
func (s *Service) Sessions(ctx context.Context, u *tessera.User) ([]*tessera.Session, error) {
	return s.Store.Sessions(ctx, u.ID, s.now())
}

// RevokeSession ends one of the user's sessions.
func (s *Service) RevokeSession(ctx context.Context, u *tessera.User, sessionID string, meta Meta) error {
	if _, err := uuid.Parse(sessionID); err != nil {
		return tessera.Errorf(tessera.ENOTFOUND, "No such active session")
	}
	n, err := s.Store.RevokeSessions(ctx, u.ID, sessionID, "", "revoked by the user", s.now())
	if err != nil {
		return err
	}
	if n == 0 {
		return tessera.Errorf(tessera.ENOTFOUND, "No such active session")
	}
	s.audit(ctx, tessera.AuditSessionRevoked, u, meta, "session "+sessionID)
	return nil
}

// ChangePassword replaces the password after checking the old one, and
// ends every other session.
func (s *Service) ChangePassword(ctx context.Context, u *tessera.User, sess *tessera.Session, oldPW, newPW string, meta Meta) error {
	now := s.now()
	if err := checkPassword(newPW, u.Email); err != nil {
		return tessera.Invalid(tessera.FieldError{Path: "newPassword", Error: err.Error()})
	}
	// Checking the old password is a login attempt: it counts, and locks.
	locked, err := s.Store.ReserveLogin(ctx, u.ID, now, lockFor)
	if tessera.ErrorCode(err) == tessera.ELOCKED {
		s.audit(ctx, tessera.AuditLoginLocked, u, meta, "password change; locked until "+locked.LockedUntil.Format(time.RFC3339))
		return tooManyLogins(locked.LockedUntil.Sub(now))
	} else if err != nil {
		return err
	}
	ok, err := s.Passwords.Verify(ctx, oldPW, u.PasswordHash)
	if err != nil {
		return err
	}
	if !ok {
		s.audit(ctx, tessera.AuditLoginFailed, u, meta, failureDetail("password change: wrong current password", locked.FailedLogins+1))
		return tessera.Invalid(tessera.FieldError{Path: "oldPassword", Error: "is not the current password"})
	}
	hash, err := s.Passwords.Hash(ctx, newPW)
	if err != nil {
		return err
	}
	if err := s.Store.SetPassword(ctx, u.ID, hash, now); err != nil {
		return err
	}
	n, err := s.Store.RevokeSessions(ctx, u.ID, "", sess.ID, "password changed", now)
	s.audit(ctx, tessera.AuditPasswordChanged, u, meta, fmt.Sprintf("%d other sessions ended", n))
	return err
}

// ---- recovery codes ----

// recoveryEncoding leaves out i, l, o and 1, which read alike.
var recoveryEncoding = base32.NewEncoding("abcdefghjkmnpqrstuvwxyz023456789").WithPadding(base32.NoPadding)

func (s *Service) recoveryHash(userID, code string) []byte {
	norm := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
	return s.Keys.Hash("recovery-code", userID, norm)
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
