package tessera

import (
	"context"
	"time"
)

// UserStatus is where an end-user account stands.
type UserStatus string

// The user statuses.
const (
	UserUnverified UserStatus = "unverified" // registered; email not confirmed yet
	UserActive     UserStatus = "active"     // email confirmed
	UserDisabled   UserStatus = "disabled"   // switched off by an operator; cannot log in
)

// User is an end user of the apps that run Tessera.
type User struct {
	ID              string
	Email           string // as entered (domain lower-cased)
	EmailVerifiedAt time.Time
	Phone           string // E.164, empty when none
	PhoneCountry    string // ISO 3166-1 alpha-2 the phone was entered with
	PhoneVerifiedAt time.Time
	PasswordHash    string // argon2id, PHC string format with its parameters
	PasswordChanged time.Time
	Status          UserStatus
	TOTPVerifiedAt  time.Time // zero unless an authenticator app is enrolled
	SMSMFAAt        time.Time // zero unless texted codes are a second factor
	// AntiPhishingSealed is the user's anti-phishing code, encrypted; nil
	// when none is set.
	AntiPhishingSealed []byte
	LastLoginAt        time.Time
	LastLoginDevice    string // User-Agent of the last login
	FailedLogins       int    // consecutive wrong passwords
	LockedUntil        time.Time
	CreatedAt          time.Time
}

// MFAEnabled reports whether logging in needs a second factor: an
// enrolled authenticator app or SMS codes.
func (u *User) MFAEnabled() bool { return !u.TOTPVerifiedAt.IsZero() || !u.SMSMFAAt.IsZero() }

// Session is one login of a user on one device: a family of rotating
// refresh tokens.
type Session struct {
	ID           string
	UserID       string
	AMR          []string // how the user authenticated: "pwd", "otp", "mfa"
	UserAgent    string
	IP           string
	CreatedAt    time.Time
	LastUsedAt   time.Time
	ExpiresAt    time.Time // absolute end, whatever the refreshes
	RevokedAt    time.Time
	RevokeReason string
}

// Active reports whether the session can still be used at now.
func (s *Session) Active(now time.Time) bool { return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt) }

// RefreshToken is one link of a session's refresh-token chain, stored
// only as a keyed hash.
type RefreshToken struct {
	Hash      []byte
	SessionID string
	CreatedAt time.Time
	UsedAt    time.Time // zero until rotated
	// SuccessorSealed is the encrypted token that replaced this one, kept
	// so a racing second use within the grace period gets the same one.
	SuccessorSealed []byte
}

// LoginChallenge is a password login waiting for its second factor; its id
// is the processingId the client carries.
type LoginChallenge struct {
	ID          string
	UserID      string
	Attempts    int
	MaxAttempts int
	CreatedAt   time.Time
	ExpiresAt   time.Time
	UsedAt      time.Time
	UserAgent   string
	IP          string
}

// SigningKey is a key that signs ID tokens. The private half is sealed.
type SigningKey struct {
	ID            string // the JWT "kid"
	Algorithm     string // "EdDSA"
	PublicKey     []byte
	PrivateSealed []byte
	CreatedAt     time.Time
}

// AccountStore keeps accounts, sessions and signing keys. As with Store,
// every method is one atomic step.
type AccountStore interface {
	// CreateUser stores u; ECONFLICT if the email is taken (case-insensitively).
	CreateUser(ctx context.Context, u *User) error
	// User returns a user by id; ENOTFOUND if none.
	User(ctx context.Context, id string) (*User, error)
	// UserByEmail returns a user by email, case-insensitively; ENOTFOUND if none.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// ReserveLogin counts a login attempt before the password is checked,
	// unless the account is locked at now (ELOCKED, with the user). lockFor
	// says how long to lock after the given number of failures.
	ReserveLogin(ctx context.Context, userID string, now time.Time, lockFor func(failures int) time.Duration) (*User, error)
	// ClearLoginFailures forgets the failures after a right password.
	ClearLoginFailures(ctx context.Context, userID string) error
	// LoginSucceeded clears the failures and records the login.
	LoginSucceeded(ctx context.Context, userID string, now time.Time, device string) error
	// SetEmailVerified confirms email for the user if it is still the user's
	// email; ENOTFOUND otherwise.
	SetEmailVerified(ctx context.Context, userID, email string, now time.Time) error
	// SetPhone sets an unverified phone; ECONFLICT if a verified one is set.
	SetPhone(ctx context.Context, userID, phone, country string) error
	// SetPhoneVerified verifies phone if it is still the user's phone, and
	// makes texted codes a second factor.
	SetPhoneVerified(ctx context.Context, userID, phone string, now time.Time) error
	// SetSMSMFA turns texted codes as a second factor on (at) or off (zero).
	SetSMSMFA(ctx context.Context, userID string, at time.Time) error
	// ChangeEmail replaces the user's email with a verified newEmail;
	// ECONFLICT if another account has it.
	ChangeEmail(ctx context.Context, userID, newEmail string, now time.Time) error
	// ChangePhone replaces the user's phone with a verified one.
	ChangePhone(ctx context.Context, userID, phone, country string, now time.Time) error
	// RemovePhone removes the phone (and SMS as a second factor).
	RemovePhone(ctx context.Context, userID string) error
	// SetAntiPhishing stores a sealed anti-phishing code: only where none
	// is set (replace false) or only where one is (replace true);
	// ECONFLICT otherwise.
	SetAntiPhishing(ctx context.Context, userID string, sealed []byte, replace bool) error
	// HitSendLimit counts one send for key, unless the last was less than
	// cooldown ago or max were counted in the current window; then it is
	// ETOOMANY with RetryAfter.
	HitSendLimit(ctx context.Context, key string, now time.Time, cooldown, window time.Duration, max int) error
	// SetTOTPVerified records (or with a zero time, clears) the enrolment
	// of an authenticator app.
	SetTOTPVerified(ctx context.Context, userID string, at time.Time) error
	// SetPassword replaces the password hash.
	SetPassword(ctx context.Context, userID, hash string, now time.Time) error
	// SetUserStatus sets the status.
	SetUserStatus(ctx context.Context, userID string, status UserStatus) error

	// CreateSession stores a session and its first refresh token.
	CreateSession(ctx context.Context, s *Session, first *RefreshToken) error
	// Session returns a session; ENOTFOUND if none.
	Session(ctx context.Context, id string) (*Session, error)
	// Sessions lists a user's sessions that are active at now, newest first.
	Sessions(ctx context.Context, userID string, now time.Time) ([]*Session, error)
	// RevokeSessions revokes the user's active sessions, all or one
	// (sessionID), or all but one (except); it returns how many.
	RevokeSessions(ctx context.Context, userID, sessionID, except, reason string, now time.Time) (int, error)
	// RotateRefreshToken uses the token with hash: if unused, it marks it
	// used, keeps successorSealed on it, stores next and returns the
	// session. If it was used already it returns the token as stored (with
	// UsedAt and SuccessorSealed) and ECONFLICT. ENOTFOUND for an unknown
	// token or a session that is not active at now.
	RotateRefreshToken(ctx context.Context, hash []byte, next *RefreshToken, successorSealed []byte, now time.Time) (*Session, *RefreshToken, error)

	// ReplaceRecoveryCodes voids a user's recovery codes and stores new ones.
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte, now time.Time) error
	// UseRecoveryCode consumes an unused recovery code; ENOTFOUND if none.
	UseRecoveryCode(ctx context.Context, userID string, hash []byte, now time.Time) error
	// RecoveryCodesLeft counts a user's unused recovery codes.
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)

	// CreateLoginChallenge stores a pending MFA login.
	CreateLoginChallenge(ctx context.Context, c *LoginChallenge) error
	// LoginChallenge returns a challenge; ENOTFOUND if none.
	LoginChallenge(ctx context.Context, id string) (*LoginChallenge, error)
	// ReserveChallengeAttempt counts an attempt on a challenge that is
	// unused, unexpired at now and has attempts left; ENOTFOUND, EEXPIRED
	// or ELOCKED otherwise.
	ReserveChallengeAttempt(ctx context.Context, id string, now time.Time) (*LoginChallenge, error)
	// UseLoginChallenge marks a challenge used, once; ENOTFOUND otherwise.
	UseLoginChallenge(ctx context.Context, id string, now time.Time) error

	// CreateSigningKey stores a new ID-token signing key.
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// SigningKeys lists the signing keys, newest first.
	SigningKeys(ctx context.Context) ([]*SigningKey, error)

	// AppendAudit records a security event and sets its ID.
	AppendAudit(ctx context.Context, e *AuditEvent) error
	// AuditEvents lists the events filter selects, newest first.
	AuditEvents(ctx context.Context, filter AuditFilter) ([]*AuditEvent, error)
	// PruneAudit deletes the events recorded before the given time and
	// returns how many went.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
}

// AuditEvent is one security event of an end-user account, kept for
// operators (tessera audit). It never holds a password, code or token.
type AuditEvent struct {
	ID     string // assigned by the store; later events have larger ids
	At     time.Time
	Kind   string // one of the Audit* kinds
	UserID string // empty when no account matched (a login with an unknown email)
	// Email is the account's email at the time, or for an unknown account
	// the address that was typed, normalised; empty when it was no address.
	Email     string
	IP        string
	UserAgent string
	Detail    string // short and free of secrets: a factor, a key type, a session id
}

// The kinds of audit events.
const (
	AuditLoginSuccess       = "login.success"      // password login, MFA off
	AuditLoginFailed        = "login.failed"       // wrong password, unknown or unusable account
	AuditLoginLocked        = "login.locked"       // refused: too many failures
	AuditLoginMFARequired   = "login.mfa_required" // right password, second factor pending
	AuditLoginMFASuccess    = "login.mfa_success"
	AuditLoginMFAFailed     = "login.mfa_failed"
	AuditRefreshReuse       = "refresh.reuse" // a spent refresh token came back: its session is revoked
	AuditSessionRevoked     = "session.revoked"
	AuditLogout             = "logout"
	AuditPasswordChanged    = "password.changed"
	AuditPasswordReset      = "password.reset"
	AuditMFAEnabled         = "mfa.enabled"  // Detail: totp or sms
	AuditMFADisabled        = "mfa.disabled" // Detail: totp, sms or all
	AuditRecoveryCodesRegen = "recovery_codes.regenerated"
	AuditKeyAdded           = "key.added"
	AuditKeyChanged         = "key.changed"
	AuditKeyRemoved         = "key.removed"
	AuditKeyRecovered       = "key.recovered"
	AuditAntiPhishingSet    = "anti_phishing.set"
	AuditRegister           = "register"
	AuditRegisterConfirmed  = "register.confirmed"
)

// AuditKinds lists every audit kind, for validating filters.
var AuditKinds = []string{
	AuditLoginSuccess, AuditLoginFailed, AuditLoginLocked, AuditLoginMFARequired, AuditLoginMFASuccess, AuditLoginMFAFailed,
	AuditRefreshReuse, AuditSessionRevoked, AuditLogout, AuditPasswordChanged, AuditPasswordReset,
	AuditMFAEnabled, AuditMFADisabled, AuditRecoveryCodesRegen,
	AuditKeyAdded, AuditKeyChanged, AuditKeyRemoved, AuditKeyRecovered, AuditAntiPhishingSet,
	AuditRegister, AuditRegisterConfirmed,
}

// AuditFilter selects audit events; empty fields select everything.
type AuditFilter struct {
	UserID string
	Email  string // matched case-insensitively
	Kind   string
	Since  time.Time // events at or after
	Limit  int       // at most this many; 0 means DefaultAuditLimit
}

// Limits of an AuditEvents listing.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 10000
)
