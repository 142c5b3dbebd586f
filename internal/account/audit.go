package account

import (
	"context"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/verify"
)

// auditTimeout bounds one audit append: a slow database delays the user's
// answer by at most this much.
const auditTimeout = 5 * time.Second

// audit records a security event of u (nil for no account) with the
// request's meta. Recording never fails the user's action: an error is
// logged and the action goes on. detail must be short and hold no
// password, code or token.
func (s *Service) audit(ctx context.Context, kind string, u *tessera.User, meta Meta, detail string) {
	e := &tessera.AuditEvent{At: s.now(), Kind: kind, IP: meta.IP, UserAgent: clip(meta.UserAgent, 512), Detail: detail}
	if u != nil {
		e.UserID, e.Email = u.ID, u.Email
	}
	s.appendAudit(ctx, e)
}

// auditUnknown records a failed login for an email that names no account:
// the address as typed, normalised, or nothing when it is not an address
// (it may be a password typed into the wrong field).
func (s *Service) auditUnknown(ctx context.Context, email string, meta Meta) {
	e := &tessera.AuditEvent{At: s.now(), Kind: tessera.AuditLoginFailed, IP: meta.IP, UserAgent: clip(meta.UserAgent, 512), Detail: "unknown account"}
	if addr, err := verify.NormalizeEmail(email); err == nil {
		e.Email = clip(addr, 320)
	}
	s.appendAudit(ctx, e)
}

func (s *Service) appendAudit(ctx context.Context, e *tessera.AuditEvent) {
	// The action is done: a client hanging up now must not lose its record.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := s.Store.AppendAudit(ctx, e); err != nil && s.Log != nil {
		s.Log.Error("audit: event not recorded", "kind", e.Kind, "user_id", e.UserID, "err", err)
	}
}
