package account

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/i18n"
	"github.com/tessera-id/tessera/internal/policy"
)

// ---- sessions and tokens ----

func newRefreshToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "rt_" + base64.RawURLEncoding.EncodeToString(b)
}

func (s *Service) refreshHash(t string) []byte { return s.Keys.Hash(refreshHashPurpose, t) }

const refreshHashPurpose = "refresh-token"

// newSession logs u in: a session at the assurance amr reaches, its first
// refresh token, an ID token. A login from a device the account has not
// used before gets a notice, written with the session.
func (s *Service) newSession(ctx context.Context, u *tessera.User, amr []string, meta Meta) (*Tokens, error) {
	return s.newAuditedSession(ctx, u, amr, meta, "", "")
}

// newAuditedSession is newSession that records the audit event kind (with
// detail) in the session's own transaction, so a login is never without
// its record and operator event; none when kind is empty.
func (s *Service) newAuditedSession(ctx context.Context, u *tessera.User, amr []string, meta Meta, kind, detail string) (*Tokens, error) {
	now := s.now()
	aal, amr := assurance(amr)
	sess := &tessera.Session{ID: uuid.NewString(), UserID: u.ID, AAL: aal, AMR: amr, AuthTime: now, UserAgent: clip(meta.UserAgent, 512), IP: meta.IP,
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.SessionTTL)}
	newDevice, err := s.isNewDevice(ctx, u, sess.UserAgent)
	if err != nil {
		return nil, err
	}
	refresh := newRefreshToken()
	err = s.inTx(ctx, func(t *txn) error {
		if err := t.store.CreateSession(ctx, sess, &tessera.RefreshToken{Hash: s.refreshHash(refresh), SessionID: sess.ID, CreatedAt: now}); err != nil {
			return err
		}
		if err := t.store.LoginSucceeded(ctx, u.ID, now, sess.UserAgent); err != nil {
			return err
		}
		if kind != "" {
			if err := s.auditIn(ctx, t, kind, u, meta, detail); err != nil {
				return err
			}
		}
		if !newDevice {
			return nil
		}
		return s.notifyOn(ctx, t.engine, u, u.Email, "new_device", "device", describeDevice(s.lang(ctx, u), sess.UserAgent, sess.IP))
	})
	if err != nil {
		return nil, err
	}
	id, exp, err := s.Tokens.Issue(ctx, u, sess)
	if err != nil {
		return nil, err
	}
	return &Tokens{IDToken: id, RefreshToken: refresh, ExpiresAt: exp}, nil
}

// isNewDevice reports whether a login with userAgent should be told to
// the user: the account has logged in before (a first login is the
// registration itself), and neither its last login nor any of its active
// sessions used this user agent. Off with NewDeviceNotices false.
func (s *Service) isNewDevice(ctx context.Context, u *tessera.User, userAgent string) (bool, error) {
	if !s.NewDeviceNotices || u.LastLoginAt.IsZero() || userAgent == u.LastLoginDevice {
		return false, nil
	}
	active, err := s.Store.Sessions(ctx, u.ID, s.now())
	if err != nil {
		return false, err
	}
	for _, a := range active {
		if a.UserAgent == userAgent {
			return false, nil
		}
	}
	return true, nil
}

func describeDevice(lang, userAgent, ip string) string {
	if userAgent == "" {
		userAgent = i18n.T(lang, "msg.device.unnamed")
	}
	if ip == "" {
		return clip(userAgent, 200)
	}
	return i18n.T(lang, "msg.device.from", "agent", clip(userAgent, 200), "ip", ip)
}

// clip cuts s to at most n bytes without splitting a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
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
	next := newRefreshToken()
	// The token's hash under each HMAC key, newest first: one issued
	// before the newest key was added is stored under an older one. The
	// successor is sealed to the stored hash, so a racing second use
	// finds it under the same hash.
	var hash []byte
	var sess *tessera.Session
	var old *tessera.RefreshToken
	var err error
	for _, hash = range s.Keys.Hashes(refreshHashPurpose, refresh) {
		sealed, serr := s.Keys.Seal([]byte(next), hash)
		if serr != nil {
			return nil, serr
		}
		sess, old, err = s.Store.RotateRefreshToken(ctx, hash, &tessera.RefreshToken{Hash: s.refreshHash(next), CreatedAt: now}, sealed, now)
		if tessera.ErrorCode(err) != tessera.ENOTFOUND {
			break
		}
	}
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
	id, exp, err := s.Tokens.Issue(ctx, u, sess)
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
	u, sess, err := s.SessionUser(ctx, claims.SessionID)
	if err == nil && sess.UserID != claims.Subject {
		return nil, nil, sessionEnded()
	}
	return u, sess, err
}

func sessionEnded() error {
	return tessera.Errorf(tessera.EUNAUTHORIZED, "The session has ended: log in again")
}

// SessionUser returns an active session and its user, as Authenticate
// does for an ID token: the hosted pages' cookie names the session
// itself.
func (s *Service) SessionUser(ctx context.Context, sessionID string) (*tessera.User, *tessera.Session, error) {
	if _, err := uuid.Parse(sessionID); err != nil {
		return nil, nil, sessionEnded()
	}
	sess, err := s.Store.Session(ctx, sessionID)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND || (err == nil && !sess.Active(s.now())) {
		return nil, nil, sessionEnded()
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

// RevokeOtherSessions ends every session of the user but sess, and
// returns how many ended. Like ending one session it needs no step-up:
// it only takes access away, from whoever else holds one.
func (s *Service) RevokeOtherSessions(ctx context.Context, u *tessera.User, sess *tessera.Session, meta Meta) (int, error) {
	n, err := s.Store.RevokeSessions(ctx, u.ID, "", sess.ID, "ended by the user", s.now())
	if err != nil {
		return 0, err
	}
	s.audit(ctx, tessera.AuditSessionRevoked, u, meta, fmt.Sprintf("every other session (%d)", n))
	return n, nil
}

// ChangePassword replaces the password after checking the old one, and
// ends every other session.
func (s *Service) ChangePassword(ctx context.Context, u *tessera.User, sess *tessera.Session, oldPW, newPW string, meta Meta) error {
	if err := s.Authorize(ctx, u, sess, policy.ChangePassword); err != nil {
		return err
	}
	now := s.now()
	if err := checkPassword(newPW, u.Email); err != nil {
		return tessera.Invalid(tessera.FieldError{Path: "newPassword", Error: err.Error()})
	}
	// Checking the old password is a login attempt: it counts, and locks.
	locked, err := s.reserveLoginAttempt(ctx, u, meta, "password change")
	if err != nil {
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
	var n int
	err = s.inTx(ctx, func(t *txn) error {
		if err := t.store.SetPassword(ctx, u.ID, hash, "", now); err != nil {
			return err
		}
		if err := t.store.EndFlows(ctx, u.ID, passwordFlows, now); err != nil {
			return err
		}
		if n, err = t.store.RevokeSessions(ctx, u.ID, "", sess.ID, "password changed", now); err != nil {
			return err
		}
		if err := s.notifyOn(ctx, t.engine, u, u.Email, "password_changed"); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditPasswordChanged, u, meta, fmt.Sprintf("%d other sessions ended", n))
	})
	return err
}
