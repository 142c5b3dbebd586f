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

// User is an end user of the apps that run Tessera. Its email, phone,
// password and authenticator fields (and SMSMFAAt) are a view of the
// user's credentials (see Credential), which the store keeps as the one
// source of truth; the store fills them when it reads a user and writes
// credentials when they change.
type User struct {
	ID              string
	Email           string // as entered (domain lower-cased)
	EmailVerifiedAt time.Time
	Phone           string // E.164, empty when none
	PhoneCountry    string // ISO 3166-1 alpha-2 the phone was entered with
	PhoneVerifiedAt time.Time
	PasswordHash    string // argon2id, PHC string format with its parameters
	PasswordChanged time.Time
	// PasskeysAt is when the user's first passkey was added; zero without
	// passkeys. PasskeyUsable is whether one of them is not marked as
	// cloned: only those can prove anything.
	PasskeysAt    time.Time
	PasskeyUsable bool
	// PasswordRecoveredVia is the channel ("email", "sms") whose recovery
	// token set the current password; "" when the user chose it with the
	// old one. That channel already proved the password step, so it
	// cannot also be the second factor (policy.PasswordProves).
	PasswordRecoveredVia string
	Status               UserStatus
	TOTPVerifiedAt       time.Time // zero unless an authenticator app is enrolled
	SMSMFAAt             time.Time // zero unless texted codes are a second factor
	// AntiPhishingSealed is the user's anti-phishing code, encrypted; nil
	// when none is set.
	AntiPhishingSealed []byte
	LastLoginAt        time.Time
	LastLoginDevice    string // User-Agent of the last login
	FailedLogins       int    // consecutive wrong passwords
	LockedUntil        time.Time
	CreatedAt          time.Time

	// Locale is the language the user chose for their messages (an
	// internal/i18n catalogue such as "de"); "" follows the request.
	Locale string
}

// TOTPEnrolled reports whether an authenticator app is enrolled.
func (u *User) TOTPEnrolled() bool { return !u.TOTPVerifiedAt.IsZero() }

// HasPasskeys reports whether the user has a passkey, usable or not.
func (u *User) HasPasskeys() bool { return !u.PasskeysAt.IsZero() }

// SMSFactorOn reports whether texted codes are a second factor.
func (u *User) SMSFactorOn() bool { return !u.SMSMFAAt.IsZero() }

// Whether MFA is on, and what it takes, is the policy package's to say
// (policy.Of): it also weighs recovery codes and, later, passkeys.

// CredentialKind names a way a user proves something.
type CredentialKind string

// The kinds of credentials.
const (
	CredentialPassword      CredentialKind = "password"       // the argon2id hash, never listed
	CredentialEmail         CredentialKind = "email"          // Identifier: the address, unique across users (case-insensitively)
	CredentialPhone         CredentialKind = "phone"          // Identifier: E.164
	CredentialTOTP          CredentialKind = "totp"           // an authenticator app; its secret is the engine's (totp_secrets)
	CredentialRecoveryCodes CredentialKind = "recovery_codes" // the set; the codes are kept hashed on their own
	CredentialPasskeys      CredentialKind = "passkeys"       // the user's WebAuthn passkeys, each a Passkey in the row's data
)

// Passkey is one WebAuthn credential of a user: a key pair on a device
// (or synced), of which Tessera keeps the public half. Nothing here is
// secret. A user's passkeys are one credential row (CredentialPasskeys),
// the way Ory Kratos keeps them: listing, rename, removal and the sign
// counter all change that one row, by compare-and-set.
type Passkey struct {
	ID                []byte    `json:"id"` // the credential id the authenticator chose
	Name              string    `json:"name"`
	PublicKey         []byte    `json:"publicKey"` // COSE
	AAGUID            []byte    `json:"aaguid,omitempty"`
	SignCount         uint32    `json:"signCount"`
	Transports        []string  `json:"transports,omitempty"`
	UserVerified      bool      `json:"userVerified"`
	BackupEligible    bool      `json:"backupEligible"`
	BackedUp          bool      `json:"backedUp"`
	AttestationFormat string    `json:"attestationFormat,omitempty"`
	CreatedAt         time.Time `json:"createdAt"`
	LastUsedAt        time.Time `json:"lastUsedAt,omitzero"`
	// CloneWarning is set when the sign counter went backwards: two
	// devices hold this key. The passkey is refused from then on.
	CloneWarning bool `json:"cloneWarning,omitempty"`
}

// Credential is one way a user can prove something: the store keeps one
// row per credential, and the factor fields of User (EmailVerifiedAt,
// Phone, TOTPVerifiedAt, SMSMFAAt, PasswordHash, ...) are a view of them.
// Secrets are not part of it.
type Credential struct {
	ID         string // assigned by the store
	UserID     string
	Kind       CredentialKind
	Identifier string    // the email address or phone number; empty for the other kinds
	VerifiedAt time.Time // zero while unverified
	// SecondFactor reports whether the credential completes a login's
	// second step and turns MFA on: an enrolled authenticator app always,
	// a phone only while the user turned texted codes on as a factor.
	SecondFactor bool
	CreatedAt    time.Time
	LastUsedAt   time.Time // zero until used (recorded for recovery codes)
}

// Session is one login of a user on one device: a family of rotating
// refresh tokens. AAL, AMR and AuthTime say how strongly and how recently
// the user proved who they are; the policy reads them, never the request.
type Session struct {
	ID     string
	UserID string
	// AAL is the authenticator assurance level: 1 for one factor, 2 for
	// two distinct factors.
	AAL int
	// AMR lists the methods used (RFC 8176 names where there is one):
	// "pwd", "otp" (authenticator app), "sms", "email", "recovery_code",
	// and "mfa" at AAL 2.
	AMR []string
	// AuthTime is when the user last proved those factors: the login, or
	// the latest step-up (POST /auth/reauthenticate).
	AuthTime     time.Time
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

// FlowType names what a flow is for.
type FlowType string

// The flows kept on the server.
const (
	FlowLogin            FlowType = "login"            // password checked, second factor pending
	FlowReauthentication FlowType = "reauthentication" // step-up of an existing session (SessionID)
	FlowRegistration     FlowType = "registration"     // a pending sign-up: Email, Secret = the password hash
	FlowPasswordRecovery FlowType = "password_recovery"
	FlowKeyRecovery      FlowType = "key_recovery" // a login flow turned to recovering a lost email or phone
	FlowKeyChange        FlowType = "key_change"
	FlowMFADisabling     FlowType = "mfa_disabling"
	FlowPasskeyEnrolment FlowType = "passkey_enrolment" // a challenge for a new passkey of a signed-in user
	FlowPasskeyLogin     FlowType = "passkey_login"     // a challenge any passkey of this site may answer
	FlowHandoff          FlowType = "handoff"           // a one-time code that hands a page login's tokens to the app (Secret: sealed refresh token)
)

// Flow is one multi-step operation kept on the server: a login waiting for
// its second factor, a step-up, a pending registration, a password
// recovery. Its ID is the processingId the client carries: always issued
// by the server. Codes sent within a flow are bound to it.
type Flow struct {
	ID   string
	Type FlowType
	// State is the step the flow has reached (each type names its own);
	// it moves forward only by AdvanceFlow's compare-and-set.
	State string
	// UserID is the account the flow is for; for a registration, the id
	// the account will get once confirmed; empty for a recovery (the
	// address decides, at the end).
	UserID string
	// Email is the address a registration or recovery is for, normalised.
	Email string
	// SessionID is the session a reauthentication flow steps up.
	SessionID string
	// Label is a value the client chose (the flows document's
	// processingId), kept for its logs; it binds nothing.
	Label string
	// Secret holds what the flow needs later: a registration's password
	// hash, a recovery's destination, a key change's key type and new key.
	Secret []byte
	// Challenge is a WebAuthn ceremony's session data (its challenge,
	// the credentials it allows), for the passkey that must answer it.
	Challenge []byte
	// RequiredAAL is the assurance the flow must reach to finish, AAL the
	// assurance it has reached so far, Methods the methods proven in it.
	RequiredAAL int
	AAL         int
	Methods     []string
	CSRFSecret  []byte // for the browser pages: forms carry a token derived from it
	Attempts    int
	MaxAttempts int
	CreatedAt   time.Time
	ExpiresAt   time.Time
	UsedAt      time.Time // set once the flow has done its work
	UserAgent   string
	IP          string
}

// TxStore is every store bound to one transaction (see AccountStore.InTx).
type TxStore interface {
	Store
	AccountStore
}

// SigningKey is a key that signs ID tokens. The private half is sealed.
// A key is published from CreatedAt and signs from ActivatesAt until a key
// of a later Generation activates (internal/token derives the life cycle
// from these times, so every instance agrees without talking).
type SigningKey struct {
	ID            string // the JWT "kid"
	Algorithm     string // "EdDSA", "ES256" or "RS256"
	PublicKey     []byte // Ed25519: the raw 32 bytes; others: PKIX DER
	PrivateSealed []byte // Ed25519: the seed; others: PKCS #8 DER
	Generation    int64  // 1, 2, …: unique, later keys win
	CreatedAt     time.Time
	ActivatesAt   time.Time
}

// AccountStore keeps accounts, sessions and signing keys. As with Store,
// every method is one atomic step.
type AccountStore interface {
	AdminStore

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
	// SetSMSMFA turns texted codes as a second factor on (at) or off
	// (zero). Turning it on needs a verified phone (ENOTFOUND otherwise);
	// turning it off where there is no phone is a no-op.
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
	// SetPassword replaces the password hash; recoveredVia is the channel
	// of the recovery that set it, or "".
	SetPassword(ctx context.Context, userID, hash, recoveredVia string, now time.Time) error
	// SetUserStatus sets the status.
	SetUserStatus(ctx context.Context, userID string, status UserStatus) error
	// SetLocale sets the language of the user's messages ("" for none);
	// ENOTFOUND if the user does not exist.
	SetLocale(ctx context.Context, userID, locale string) error
	// Credentials lists a user's credentials, oldest first; none for an
	// unknown user.
	Credentials(ctx context.Context, userID string) ([]*Credential, error)

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

	// SetSessionAuth records a step-up: the session's new assurance level,
	// methods and auth time. ENOTFOUND unless the session is active at now.
	SetSessionAuth(ctx context.Context, sessionID string, aal int, amr []string, authTime, now time.Time) error

	// CreateFlow stores a new flow.
	CreateFlow(ctx context.Context, f *Flow) error
	// Flow returns a flow, used or not; ENOTFOUND if none.
	Flow(ctx context.Context, id string) (*Flow, error)
	// PendingRegistrations lists the unused registration flows for email
	// that are unexpired at now, newest first, at most limit.
	PendingRegistrations(ctx context.Context, email string, now time.Time, limit int) ([]*Flow, error)
	// LatestFlow returns the user's newest flow of type typ that is unused
	// and unexpired at now; ENOTFOUND if none.
	LatestFlow(ctx context.Context, userID string, typ FlowType, now time.Time) (*Flow, error)
	// AdvanceFlow writes f's Type, State, Methods, AAL, Secret and Challenge if the
	// stored flow is still in fromState, unused and unexpired at now;
	// ENOTFOUND otherwise (a parallel request advanced it first).
	AdvanceFlow(ctx context.Context, f *Flow, fromState string, now time.Time) error
	// ReserveFlowAttempt counts an attempt on a flow that is unused,
	// unexpired at now and has attempts left, and returns it; ENOTFOUND,
	// EEXPIRED or ELOCKED otherwise.
	ReserveFlowAttempt(ctx context.Context, id string, now time.Time) (*Flow, error)
	// Passkeys returns the user's passkeys, oldest first.
	Passkeys(ctx context.Context, userID string) ([]*Passkey, error)
	// SavePasskeys replaces the user's passkeys by next if they are still
	// prev (what the caller read); ECONFLICT if they changed meanwhile.
	// An empty next removes the credential.
	SavePasskeys(ctx context.Context, userID string, prev, next []*Passkey, now time.Time) error
	// RemovePassword removes the user's password credential: the account
	// then logs in with a passkey only.
	RemovePassword(ctx context.Context, userID string) error

	// EndFlows marks used every unused flow of the user of one of types:
	// what a changed password must not let finish.
	EndFlows(ctx context.Context, userID string, types []FlowType, now time.Time) error
	// UseFlow marks a flow used, once, if it is unexpired at now;
	// ENOTFOUND otherwise. Whoever uses it first wins.
	UseFlow(ctx context.Context, id string, now time.Time) error

	// InTx runs fn with a store bound to one transaction: everything fn
	// writes commits together or not at all. fn must be quick and do no
	// I/O of its own (on SQLite it runs on the single writer). Calling
	// InTx on the store fn gets runs fn's body in the same transaction.
	InTx(ctx context.Context, fn func(tx TxStore) error) error

	// CreateSigningKey stores a new ID-token signing key; ECONFLICT if its
	// generation is taken (another instance rotated at the same time).
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// SigningKeys lists the signing keys, latest generation first.
	SigningKeys(ctx context.Context) ([]*SigningKey, error)
	// DeleteSigningKey removes a signing key (a retired one whose tokens
	// have all expired); deleting a missing key is no error.
	DeleteSigningKey(ctx context.Context, id string) error

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
	AuditLoginSSO           = "login.sso"     // an app signed in from the hosted pages' session, without a new login
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
	AuditReauthenticated    = "reauthenticated" // a session stepped up: its auth_time is new
	AuditPasskeyAdded       = "passkey.added"
	AuditPasskeyRemoved     = "passkey.removed"
	AuditPasskeyCloned      = "passkey.clone_warning" // its sign counter went backwards: refused from then on
	AuditPasswordRemoved    = "password.removed"      // the account logs in with passkeys only
	// Admin actions: Detail names the admin (an API client or the operator).
	AuditAdminUserViewed      = "admin.user_viewed" // read unmasked, with credentials and sessions
	AuditAdminUserDisabled    = "admin.user_disabled"
	AuditAdminUserEnabled     = "admin.user_enabled"
	AuditAdminUserDeleted     = "admin.user_deleted" // no UserID or Email: the account is erased
	AuditAdminMFAReset        = "admin.mfa_reset"
	AuditAdminSessionsRevoked = "admin.sessions_revoked"
	AuditAdminUserImported    = "admin.user_imported"
	// The SMS pumping breaker's changes: no user; Detail names the prefix.
	AuditSMSBreakerOpen     = "sms_breaker.open"
	AuditSMSBreakerHalfOpen = "sms_breaker.half_open"
	AuditSMSBreakerClosed   = "sms_breaker.closed"
	AuditSMSBreakerCleared  = "sms_breaker.cleared" // by an operator: tessera sms-breaker clear
)

// AuditKinds lists every audit kind, for validating filters.
var AuditKinds = []string{
	AuditLoginSuccess, AuditLoginFailed, AuditLoginLocked, AuditLoginMFARequired, AuditLoginMFASuccess, AuditLoginMFAFailed, AuditLoginSSO,
	AuditRefreshReuse, AuditSessionRevoked, AuditLogout, AuditPasswordChanged, AuditPasswordReset,
	AuditMFAEnabled, AuditMFADisabled, AuditRecoveryCodesRegen,
	AuditKeyAdded, AuditKeyChanged, AuditKeyRemoved, AuditKeyRecovered, AuditAntiPhishingSet,
	AuditRegister, AuditRegisterConfirmed, AuditReauthenticated,
	AuditPasskeyAdded, AuditPasskeyRemoved, AuditPasskeyCloned, AuditPasswordRemoved,
	AuditAdminUserViewed, AuditAdminUserDisabled, AuditAdminUserEnabled, AuditAdminUserDeleted,
	AuditAdminMFAReset, AuditAdminSessionsRevoked, AuditAdminUserImported,
	AuditSMSBreakerOpen, AuditSMSBreakerHalfOpen, AuditSMSBreakerClosed, AuditSMSBreakerCleared,
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
