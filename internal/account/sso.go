package account

import (
	"context"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/policy"
)

// Single sign-on: a browser signed in to the hosted pages signs in to an
// app without typing the password again. The app gets a session of its
// own (its refresh token rotates on its own, and ending it ends only the
// app's access), derived from the browser's: the same user, methods,
// assurance level and auth time, expiring no later. So a continued
// session never looks fresher or stronger than the login it came from:
// the app's privileged actions still ask for a step-up when the proof is
// old.

// MayContinue reports whether the session sess of u may sign u in to an
// app without a new login (see policy.MayContinue).
func (s *Service) MayContinue(u *tessera.User, sess *tessera.Session) bool {
	return policy.MayContinue(policy.Of(u, 0), sessionAuth(sess))
}

// ContinueSession signs the user of the active session sessionID in to an
// app: it returns the app's new session and its tokens. A session that
// ended, of a disabled user, or short of the assurance a login would
// reach now is refused (EUNAUTHORIZED, EREAUTH): the user logs in.
func (s *Service) ContinueSession(ctx context.Context, sessionID string, meta Meta) (*tessera.Session, *Tokens, error) {
	u, from, err := s.SessionUser(ctx, sessionID)
	if err != nil {
		return nil, nil, err
	}
	if !s.MayContinue(u, from) {
		return nil, nil, tessera.Errorf(tessera.EREAUTH, "This session did not use your second factor: log in again")
	}
	now := s.now()
	sess := &tessera.Session{ID: uuid.NewString(), UserID: u.ID, AAL: from.AAL, AMR: from.AMR, AuthTime: from.AuthTime,
		UserAgent: clip(meta.UserAgent, 512), IP: meta.IP, CreatedAt: now, LastUsedAt: now, ExpiresAt: from.ExpiresAt}
	refresh := newRefreshToken()
	err = s.inTx(ctx, func(t *txn) error {
		if err := t.store.CreateSession(ctx, sess, &tessera.RefreshToken{Hash: s.refreshHash(refresh), SessionID: sess.ID, CreatedAt: now}); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditLoginSSO, u, meta, "session "+sess.ID+" from session "+from.ID)
	})
	if err != nil {
		return nil, nil, err
	}
	id, exp, err := s.Tokens.Issue(ctx, u, sess)
	if err != nil {
		return nil, nil, err
	}
	return sess, &Tokens{IDToken: id, RefreshToken: refresh, ExpiresAt: exp}, nil
}
