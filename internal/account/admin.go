package account

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/policy"
)

// The admin operations: what an API client with the admin scope (the
// admin API) or the operator (tessera user ...) does to accounts. Each
// asks policy.MayAdminister first and records an audit event naming the
// admin.

// Limits of an admin listing.
const (
	DefaultUserPage = 50
	MaxUserPage     = 500
)

// AdminUserView is an account as the admin sees it: unmasked. Secrets
// (password hash, TOTP secret, codes) are never part of it.
type AdminUserView struct {
	ID              string             `json:"id"`
	Email           string             `json:"email"`
	EmailVerifiedAt *time.Time         `json:"emailVerifiedAt,omitempty"`
	Phone           string             `json:"phone,omitempty"`
	PhoneVerifiedAt *time.Time         `json:"phoneVerifiedAt,omitempty"`
	Status          tessera.UserStatus `json:"status"`
	MFAEnabled      bool               `json:"mfaEnabled"`
	HasPassword     bool               `json:"hasPassword"`
	CreatedAt       time.Time          `json:"createdAt"`
	LastLoginAt     *time.Time         `json:"lastLoginAt,omitempty"`
	LastLoginDevice string             `json:"lastLoginDevice,omitempty"`
	FailedLogins    int                `json:"failedLogins"`
	LockedUntil     *time.Time         `json:"lockedUntil,omitempty"`
}

// AdminView returns u as the admin API shows it.
func AdminView(u *tessera.User) *AdminUserView {
	return &AdminUserView{
		ID: u.ID, Email: u.Email, EmailVerifiedAt: timePtr(u.EmailVerifiedAt), Phone: u.Phone, PhoneVerifiedAt: timePtr(u.PhoneVerifiedAt),
		Status: u.Status, MFAEnabled: policy.Of(u, 0).MFA(), HasPassword: u.PasswordHash != "", CreatedAt: u.CreatedAt,
		LastLoginAt: timePtr(u.LastLoginAt), LastLoginDevice: u.LastLoginDevice, FailedLogins: u.FailedLogins, LockedUntil: timePtr(u.LockedUntil),
	}
}

// CredentialView is one credential without its secret.
type CredentialView struct {
	Kind         tessera.CredentialKind `json:"kind"`
	Identifier   string                 `json:"identifier,omitempty"`
	VerifiedAt   *time.Time             `json:"verifiedAt,omitempty"`
	SecondFactor bool                   `json:"secondFactor"`
	CreatedAt    time.Time              `json:"createdAt"`
	LastUsedAt   *time.Time             `json:"lastUsedAt,omitempty"`
}

// UserDetail is one account with its credentials and active sessions.
type UserDetail struct {
	User        *AdminUserView
	Credentials []CredentialView
	Sessions    []*tessera.Session
}

// UserPage is one page of a listing; Next continues it ("" at the end).
type UserPage struct {
	Users []*tessera.User
	Next  string
}

// ParseUserQuery reads a listing's filter from named text values (the
// admin API's query parameters, the command's flags): email, phone,
// status, createdFrom, createdTo, lastLoginFrom, lastLoginTo (RFC 3339),
// cursor (a page's next) and limit. Errors name the value at fault.
func ParseUserQuery(get func(name string) string) (tessera.UserQuery, error) {
	q := tessera.UserQuery{Email: strings.TrimSpace(get("email")), Phone: strings.TrimSpace(get("phone")), Limit: DefaultUserPage}
	var bad []tessera.FieldError
	switch st := tessera.UserStatus(get("status")); st {
	case "", tessera.UserUnverified, tessera.UserActive, tessera.UserDisabled:
		q.Status = st
	default:
		bad = append(bad, tessera.FieldError{Path: "status", Error: "must be unverified, active or disabled"})
	}
	for _, f := range []struct{ name, value string }{{"email", q.Email}, {"phone", q.Phone}} {
		if !storable(f.value) {
			bad = append(bad, tessera.FieldError{Path: f.name, Error: "must be UTF-8 text without NUL characters"})
		}
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"createdFrom", &q.CreatedFrom}, {"createdTo", &q.CreatedTo}, {"lastLoginFrom", &q.LastLoginFrom}, {"lastLoginTo", &q.LastLoginTo}} {
		if v := get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				bad = append(bad, tessera.FieldError{Path: f.name, Error: "must be an RFC 3339 time, such as 2026-01-31T00:00:00Z"})
			}
			*f.to = t
		}
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxUserPage {
			bad = append(bad, tessera.FieldError{Path: "limit", Error: fmt.Sprintf("must be an integer from 1 to %d", MaxUserPage)})
		}
		q.Limit = n
	}
	if v := get("cursor"); v != "" {
		pos, err := parseCursor(v)
		if err != nil {
			bad = append(bad, tessera.FieldError{Path: "cursor", Error: "must be the nextCursor of an earlier page"})
		}
		q.After = pos
	}
	if len(bad) > 0 {
		return q, tessera.Invalid(bad...)
	}
	return q, nil
}

// storable reports whether s can be compared with a text column at all:
// PostgreSQL refuses NUL and invalid UTF-8 with an error, where a
// lookup must simply find nothing (or the value be refused as invalid).
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// A cursor is the position of a page's last user, opaque to the caller.
func cursorOf(u *tessera.User) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(u.CreatedAt.UnixMilli(), 10) + "." + u.ID))
}

func parseCursor(c string) (*tessera.UserPosition, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, err
	}
	at, id, ok := strings.Cut(string(raw), ".")
	msec, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" || !storable(id) {
		return nil, fmt.Errorf("bad cursor")
	}
	return &tessera.UserPosition{CreatedAt: time.UnixMilli(msec).UTC(), ID: id}, nil
}

// ListUsers returns one page of the users q selects.
func (s *Service) ListUsers(ctx context.Context, admin policy.Admin, q tessera.UserQuery) (*UserPage, error) {
	if err := policy.MayAdminister(admin, policy.ListUsers); err != nil {
		return nil, err
	}
	if q.Limit < 1 || q.Limit > MaxUserPage {
		return nil, tessera.Invalid(tessera.FieldError{Path: "limit", Error: fmt.Sprintf("must be from 1 to %d", MaxUserPage)})
	}
	// One more than asked says whether there is a next page.
	want := q.Limit
	q.Limit++
	users, err := s.Store.ListUsers(ctx, q)
	if err != nil {
		return nil, err
	}
	page := &UserPage{Users: users}
	if len(users) > want {
		page.Users = users[:want]
		page.Next = cursorOf(page.Users[want-1])
	}
	return page, nil
}

// FindUser returns the account named by idOrEmail: an address (it has an
// "@") or an id. Unknown ones are ENOTFOUND.
func (s *Service) FindUser(ctx context.Context, admin policy.Admin, idOrEmail string) (*tessera.User, error) {
	if err := policy.MayAdminister(admin, policy.ReadUser); err != nil {
		return nil, err
	}
	if !storable(idOrEmail) {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "No such user")
	}
	var u *tessera.User
	var err error
	if strings.Contains(idOrEmail, "@") {
		u, err = s.Store.UserByEmail(ctx, strings.TrimSpace(idOrEmail))
	} else {
		u, err = s.Store.User(ctx, idOrEmail)
	}
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "No such user")
	}
	return u, err
}

// UserDetail reads one account unmasked, with its credentials and active
// sessions; the reading is audited.
func (s *Service) UserDetail(ctx context.Context, admin policy.Admin, idOrEmail string, meta Meta) (*UserDetail, error) {
	u, err := s.FindUser(ctx, admin, idOrEmail)
	if err != nil {
		return nil, err
	}
	creds, err := s.Store.Credentials(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	sessions, err := s.Store.Sessions(ctx, u.ID, s.now())
	if err != nil {
		return nil, err
	}
	d := &UserDetail{User: AdminView(u), Sessions: sessions, Credentials: []CredentialView{}}
	for _, c := range creds {
		d.Credentials = append(d.Credentials, CredentialView{Kind: c.Kind, Identifier: c.Identifier, VerifiedAt: timePtr(c.VerifiedAt),
			SecondFactor: c.SecondFactor, CreatedAt: c.CreatedAt, LastUsedAt: timePtr(c.LastUsedAt)})
	}
	s.audit(ctx, tessera.AuditAdminUserViewed, u, meta, "by "+admin.Name)
	return d, nil
}

// userFlows are the flows of an account that a disabled or reset account
// must not be able to finish.
var userFlows = []tessera.FlowType{tessera.FlowLogin, tessera.FlowReauthentication, tessera.FlowKeyRecovery, tessera.FlowKeyChange,
	tessera.FlowMFADisabling, tessera.FlowPasskeyEnrolment}

// DisableUser switches an account off: its status is disabled, every
// session ends (its refresh and ID tokens stop working at once) and its
// pending flows with them.
func (s *Service) DisableUser(ctx context.Context, admin policy.Admin, idOrEmail string, meta Meta) (*tessera.User, error) {
	return s.setStatus(ctx, admin, policy.DisableUser, idOrEmail, tessera.UserDisabled, meta)
}

// EnableUser switches a disabled account on again. Sessions ended by the
// disabling stay ended: the user logs in again.
func (s *Service) EnableUser(ctx context.Context, admin policy.Admin, idOrEmail string, meta Meta) (*tessera.User, error) {
	return s.setStatus(ctx, admin, policy.EnableUser, idOrEmail, tessera.UserActive, meta)
}

func (s *Service) setStatus(ctx context.Context, admin policy.Admin, action policy.AdminAction, idOrEmail string, status tessera.UserStatus, meta Meta) (*tessera.User, error) {
	if err := policy.MayAdminister(admin, action); err != nil {
		return nil, err
	}
	u, err := s.FindUser(ctx, admin, idOrEmail)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var ended int
	err = s.inTx(ctx, func(t *txn) error {
		if err := t.store.SetUserStatus(ctx, u.ID, status); err != nil {
			return err
		}
		if status != tessera.UserDisabled {
			return nil
		}
		if err := t.store.EndFlows(ctx, u.ID, userFlows, now); err != nil {
			return err
		}
		ended, err = t.store.RevokeSessions(ctx, u.ID, "", "", "account disabled", now)
		return err
	})
	if err != nil {
		return nil, err
	}
	kind, detail := tessera.AuditAdminUserEnabled, "by "+admin.Name
	if status == tessera.UserDisabled {
		kind, detail = tessera.AuditAdminUserDisabled, fmt.Sprintf("by %s; %d sessions ended", admin.Name, ended)
	}
	s.audit(ctx, kind, u, meta, detail)
	return s.Store.User(ctx, u.ID)
}

// RevokeUserSessions ends every session of an account and returns how
// many there were.
func (s *Service) RevokeUserSessions(ctx context.Context, admin policy.Admin, idOrEmail string, meta Meta) (int, error) {
	if err := policy.MayAdminister(admin, policy.RevokeUserSessions); err != nil {
		return 0, err
	}
	u, err := s.FindUser(ctx, admin, idOrEmail)
	if err != nil {
		return 0, err
	}
	n, err := s.Store.RevokeSessions(ctx, u.ID, "", "", "revoked by an admin", s.now())
	if err != nil {
		return 0, err
	}
	s.audit(ctx, tessera.AuditAdminSessionsRevoked, u, meta, fmt.Sprintf("by %s; %d sessions ended", admin.Name, n))
	return n, nil
}

// ResetMFA removes every second factor of an account (authenticator app,
// texted codes as a factor, passkeys, recovery codes) and ends its
// sessions: for a user who lost them, once the operator has made sure
// who is asking. The phone stays, as a user key. The user is told by
// email.
func (s *Service) ResetMFA(ctx context.Context, admin policy.Admin, idOrEmail string, meta Meta) (*tessera.User, error) {
	if err := policy.MayAdminister(admin, policy.ResetMFA); err != nil {
		return nil, err
	}
	u, err := s.FindUser(ctx, admin, idOrEmail)
	if err != nil {
		return nil, err
	}
	keys, err := s.Store.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var removed []string
	if u.TOTPEnrolled() {
		removed = append(removed, ChannelTOTP)
	}
	if u.SMSFactorOn() {
		removed = append(removed, ChannelSMS)
	}
	if len(keys) > 0 {
		removed = append(removed, "passkeys")
	}
	err = s.inTx(ctx, func(t *txn) error {
		if err := t.store.DeleteTOTPSecret(ctx, Owner, u.ID); err != nil && tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return err
		}
		if err := t.store.SetTOTPVerified(ctx, u.ID, zeroTime); err != nil {
			return err
		}
		if err := t.store.SetSMSMFA(ctx, u.ID, zeroTime); err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := t.store.SavePasskeys(ctx, u.ID, keys, nil, now); err != nil {
				return err
			}
		}
		if err := t.store.ReplaceRecoveryCodes(ctx, u.ID, nil, now); err != nil {
			return err
		}
		if err := t.store.EndFlows(ctx, u.ID, userFlows, now); err != nil {
			return err
		}
		if _, err := t.store.RevokeSessions(ctx, u.ID, "", "", "MFA reset by an admin", now); err != nil {
			return err
		}
		return s.notifyOn(ctx, t.engine, u, u.Email, "two-step verification was reset",
			"An administrator removed the second factors of your account (authenticator app, texted codes, passkeys and recovery codes) "+
				"and ended every session. Log in with your password and set up two-step verification again.")
	})
	if err != nil {
		return nil, err
	}
	detail := "by " + admin.Name + "; removed: none"
	if len(removed) > 0 {
		detail = "by " + admin.Name + "; removed: " + strings.Join(removed, ", ")
	}
	s.audit(ctx, tessera.AuditAdminMFAReset, u, meta, detail)
	return s.Store.User(ctx, u.ID)
}

// sendPurposes are the purposes of every code the account sends, for
// finding the user's send-limit counters (see sendLimits).
var sendPurposes = []string{"otp:email", "otp:sms", "login", purposePasswordRecovery, purposeKeyRecoveryCheck, purposeKeyRecoveryNew,
	purposeKeyAdding, purposeKeyChanging, purposeKeyChangingNew, purposeKeyRemoving, purposeAntiPhishing, purposeMFADisabling}

// DeleteUser erases an account, for an erasure request: every row that
// is the user's or names them goes, in one transaction. The audit event
// that stays names the admin only.
func (s *Service) DeleteUser(ctx context.Context, admin policy.Admin, idOrEmail string, meta Meta) error {
	if err := policy.MayAdminister(admin, policy.DeleteUser); err != nil {
		return err
	}
	u, err := s.FindUser(ctx, admin, idOrEmail)
	if err != nil {
		return err
	}
	// "user:ID" is the scope of the accounts API's idempotency records.
	e := tessera.Erasure{UserID: u.ID, Owner: Owner, IdempotencyScopes: []string{"user:" + u.ID},
		SendLimitKeys: []string{s.limitKey("send-user-hourly", u.ID)}}
	for _, addr := range []string{u.Email, u.Phone} {
		if addr == "" {
			continue
		}
		e.Addresses = append(e.Addresses, addr)
		addr = strings.ToLower(addr)
		e.SendLimitKeys = append(e.SendLimitKeys, s.limitKey("send-hourly", u.ID, addr))
		for _, p := range sendPurposes {
			e.SendLimitKeys = append(e.SendLimitKeys, s.limitKey("send-cooldown", u.ID, addr, p))
		}
	}
	if err := s.Store.DeleteUser(ctx, e); err != nil {
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			return tessera.Errorf(tessera.ENOTFOUND, "No such user")
		}
		return err
	}
	// Neither the user's id nor address: the meta is the admin's.
	s.audit(ctx, tessera.AuditAdminUserDeleted, nil, meta, "by "+admin.Name)
	return nil
}
