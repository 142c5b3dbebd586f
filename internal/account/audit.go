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

// AccountEvent is the data of an account.* operator event: whose account,
// and the audit event (tessera audit) that holds the details (IP, device,
// what changed). No email, phone, code or password.
type AccountEvent struct {
	UserID  string `json:"userId,omitempty"` // none for a login with an unknown email
	AuditID string `json:"auditId"`
}

// audit records a security event of u (nil for no account) with the
// request's meta, after the change it reports. Recording never fails the
// user's action: an error is logged and the action goes on. detail must
// be short and hold no password, code or token. A change made in a
// transaction records its event in it instead (auditIn).
func (s *Service) audit(ctx context.Context, kind string, u *tessera.User, meta Meta, detail string) {
	s.appendAudit(ctx, s.auditEvent(kind, u, meta, detail))
}

func (s *Service) auditEvent(kind string, u *tessera.User, meta Meta, detail string) *tessera.AuditEvent {
	e := &tessera.AuditEvent{At: s.now(), Kind: kind, IP: meta.IP, UserAgent: clip(meta.UserAgent, 512), Detail: detail}
	if u != nil {
		e.UserID, e.Email = u.ID, u.Email
	}
	return e
}

// auditIn records a security event in t, the transaction of the change it
// reports, with its operator event: both commit with the change or not at
// all, so no crash can leave a change without its record or its event.
func (s *Service) auditIn(ctx context.Context, t *txn, kind string, u *tessera.User, meta Meta, detail string) error {
	return s.recordAudit(ctx, t, s.auditEvent(kind, u, meta, detail))
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

// appendAudit records e and its operator event, together in a transaction
// of their own.
func (s *Service) appendAudit(ctx context.Context, e *tessera.AuditEvent) {
	// The action is done: a client hanging up now must not lose its record.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	var err error
	if s.Engine.Events.Wants(tessera.AccountEventType(e.Kind)) {
		err = s.inTx(ctx, func(t *txn) error { return s.recordAudit(ctx, t, e) })
	} else {
		err = s.Store.AppendAudit(ctx, e)
	}
	if err != nil && s.Log != nil {
		s.Log.Error("audit: event not recorded", "kind", e.Kind, "user_id", e.UserID, "err", err)
	}
}

// recordAudit appends e in t and queues its operator event there, handed
// to the worker once t commits.
func (s *Service) recordAudit(ctx context.Context, t *txn, e *tessera.AuditEvent) error {
	if err := t.store.AppendAudit(ctx, e); err != nil {
		return err
	}
	m, err := s.Engine.Events.Queue(ctx, t.store, tessera.AccountEventType(e.Kind), AccountEvent{UserID: e.UserID, AuditID: e.ID})
	if err != nil || m == nil {
		return err
	}
	t.engine.Deliver(m)
	return nil
}
