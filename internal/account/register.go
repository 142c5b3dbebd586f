package account

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/policy"
	"github.com/tessera-id/tessera/internal/verify"
)

// ---- registration ----

// A sign-up is a registration flow, not an account: the address and the
// password hash wait in the flow until the emailed code confirms them, and
// only then does the account exist. Registering an address again starts
// another flow with its own code; an earlier code still confirms the
// password it was sent for, never a later one. Pending registrations hold
// no address: they expire with their code and the janitor purges them.

// purposeRegister is the purpose of registration codes.
const purposeRegister = "register"

// pendingRegistrationsChecked bounds how many live registrations of one
// address a code without a processingId is tried against.
const pendingRegistrationsChecked = 5

// registrant stands in for the account a registration code is for: its
// send limits are those of the address.
func registrant(addr string) *tessera.User {
	return &tessera.User{ID: "registration\x00" + strings.ToLower(addr), Email: addr}
}

func newSecret() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// Register starts a registration and emails a confirmation code. It
// returns the flow's id (the processingId). The answer is the same whether
// or not the address has an account: for an address with one, its owner
// gets a notice instead of a code, and the flow can never be confirmed.
func (s *Service) Register(ctx context.Context, email, pw string, meta Meta) (string, error) {
	addr, err := verify.NormalizeEmail(email)
	if err != nil {
		return "", tessera.Invalid(tessera.FieldError{Path: "email", Error: err.Error()})
	}
	if err := checkPassword(pw, addr); err != nil {
		return "", tessera.Invalid(tessera.FieldError{Path: "password", Error: err.Error()})
	}
	hash, err := s.Passwords.Hash(ctx, pw)
	if err != nil {
		return "", err
	}
	now := s.now()
	// The flow carries the id the account will get, so the audit trail of
	// a sign-up leads to the account it became. It is stored whatever
	// happens next, so every sign-up answers alike and counts its tries.
	f := &tessera.Flow{ID: uuid.NewString(), Type: tessera.FlowRegistration, State: stateNoCode, RequiredAAL: 1, UserID: uuid.NewString(), Email: addr, Secret: []byte(hash),
		CSRFSecret: newSecret(), MaxAttempts: codeMaxAttempts, CreatedAt: now, ExpiresAt: now.Add(s.CodeTTL),
		UserAgent: meta.UserAgent, IP: meta.IP}
	u, err := s.Store.UserByEmail(ctx, addr)
	switch tessera.ErrorCode(err) {
	case "":
		// The address has an account: its owner is told, and no code is
		// sent, so nothing can confirm this registration.
		s.audit(ctx, tessera.AuditRegister, u, meta, "address has an account: owner notified")
		if err := s.Store.CreateFlow(ctx, f); err != nil {
			return "", err
		}
		return f.ID, s.registrationNotice(ctx, u)
	case tessera.ENOTFOUND:
	default:
		return "", err
	}
	_, err = s.sendFlowCode(ctx, registrant(addr), tessera.MethodEmail, addr, purposeRegister, f)
	switch tessera.ErrorCode(err) {
	case "":
		f.State = stateCodeSent
	case tessera.ETOOMANY:
		// Within the cooldown this registration gets no code, so nothing
		// can confirm it; the code sent earlier still confirms the
		// registration it was sent for. The answer must not differ.
	default:
		return "", err
	}
	if err := s.Store.CreateFlow(ctx, f); err != nil {
		return "", err
	}
	s.audit(ctx, tessera.AuditRegister, &tessera.User{ID: f.UserID, Email: addr}, meta, "new account, waiting for its confirmation")
	return f.ID, nil
}

// registrationNotice tells the owner of a confirmed address that someone
// tried to register it, at most once per noticeCooldown.
func (s *Service) registrationNotice(ctx context.Context, u *tessera.User) error {
	if err := s.Store.HitSendLimit(ctx, s.limitKey("notice-register", u.ID), s.now(), noticeCooldown, time.Hour, 1<<30); err != nil {
		return nil // told recently enough
	}
	return s.notify(ctx, u, u.Email, "register_attempt")
}

const noticeCooldown = 10 * time.Minute

// CreateUser makes an account directly, for operators (tessera user
// create). The operator vouches for the address, so it counts as
// confirmed.
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

// ConfirmRegistration checks the emailed code against the registration
// it was sent for, creates the account with that registration's password
// and logs the user in at AAL 1. The registration is processingID, or,
// when the client sends none, the address's one live registration that
// got a code: with several, the processingId is required, since a code
// from another sign-up of the same address (an attacker's, mailed to the
// owner too) would otherwise set the attacker's password.
//
// Every registration counts its tries (five), whether or not a code was
// ever sent for it, so the answers are the same for an address that has
// an account and one that has not.
func (s *Service) ConfirmRegistration(ctx context.Context, email, code, processingID string, meta Meta) (*Tokens, *tessera.User, error) {
	invalid := tessera.Errorf(tessera.EINVALIDCODE, "Invalid code")
	if code == "" {
		return nil, nil, tessera.Invalid(tessera.FieldError{Path: "code", Error: "is required"})
	}
	addr, err := verify.NormalizeEmail(strings.TrimSpace(email))
	if err != nil {
		return nil, nil, invalid
	}
	now := s.now()
	var f *tessera.Flow
	if processingID != "" {
		if _, err := uuid.Parse(processingID); err != nil {
			return nil, nil, tessera.Invalid(tessera.FieldError{Path: "processingId", Error: "must be the processingId POST /auth/register returned"})
		}
		if f, err = s.Store.Flow(ctx, processingID); tessera.ErrorCode(err) == tessera.ENOTFOUND ||
			(err == nil && (f.Type != tessera.FlowRegistration || !strings.EqualFold(f.Email, addr))) {
			return nil, nil, invalid
		} else if err != nil {
			return nil, nil, err
		}
	} else {
		pending, err := s.Store.PendingRegistrations(ctx, addr, now, pendingRegistrationsChecked)
		if err != nil {
			return nil, nil, err
		}
		pending = slices.DeleteFunc(pending, func(f *tessera.Flow) bool { return f.State != stateCodeSent })
		switch len(pending) {
		case 0:
			return nil, nil, invalid
		case 1:
			f = pending[0]
		default:
			return nil, nil, tessera.Invalid(tessera.FieldError{Path: "processingId",
				Error: "is required: several sign-ups of this address are waiting; send the one POST /auth/register answered you with"})
		}
	}
	if _, err := s.reserveAttempt(ctx, f.ID); err != nil {
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			return nil, nil, invalid // confirmed already
		}
		return nil, nil, err
	}
	if f.State != stateCodeSent {
		return nil, nil, invalid // no code was sent for it: nothing can confirm it
	}
	if err := s.checkFlowCode(ctx, registrant(addr), tessera.MethodEmail, addr, purposeRegister, f, code); err != nil {
		return nil, nil, err
	}
	u := &tessera.User{ID: f.UserID, Email: addr, EmailVerifiedAt: now, PasswordHash: string(f.Secret), PasswordChanged: now,
		Status: tessera.UserActive, CreatedAt: now}
	err = s.inTx(ctx, func(t *txn) error {
		if err := t.store.UseFlow(ctx, f.ID, now); err != nil {
			return err
		}
		if err := t.store.CreateUser(ctx, u); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditRegisterConfirmed, u, meta, "email confirmed, logged in")
	})
	if code := tessera.ErrorCode(err); code == tessera.ENOTFOUND || code == tessera.ECONFLICT {
		return nil, nil, invalid // confirmed by a parallel request, or the address got an account meanwhile
	} else if err != nil {
		return nil, nil, err
	}
	tokens, err := s.newSession(ctx, u, []string{policy.Password, policy.Email}, meta)
	if err != nil {
		return nil, nil, err
	}
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
