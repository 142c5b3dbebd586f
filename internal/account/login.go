package account

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/policy"
)

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
			_ = s.Store.SetPassword(ctx, u.ID, hash, u.PasswordRecoveredVia, u.PasswordChanged)
		}
	}
	// Whether MFA is on is in the user row; recovery codes only matter to
	// the challenge, so a login with MFA off makes no query for them.
	if !policy.Of(u, 0).MFA() {
		tokens, err := s.newAuditedSession(ctx, u, []string{policy.Password}, meta, tessera.AuditLoginSuccess, "password")
		if err != nil {
			return nil, err
		}
		return &LoginResult{Tokens: tokens}, nil
	}
	// The attempt stays counted until the second factor succeeds, so
	// guessing second factors through new logins runs into the same lock.
	f, err := s.factors(ctx, u)
	if err != nil {
		return nil, err
	}
	res, err := s.startSecondFactor(ctx, u, f, tessera.FlowLogin, "", meta, now)
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

// reserveLoginAttempt counts an attempt at u's password or second factor
// before it is checked (what names it in the audit), so parallel attempts
// cannot slip past the lock; a locked account answers 429. It returns the
// user as counted (FailedLogins before this attempt).
func (s *Service) reserveLoginAttempt(ctx context.Context, u *tessera.User, meta Meta, what string) (*tessera.User, error) {
	now := s.now()
	locked, err := s.Store.ReserveLogin(ctx, u.ID, now, lockFor)
	if tessera.ErrorCode(err) == tessera.ELOCKED {
		s.audit(ctx, tessera.AuditLoginLocked, u, meta, what+"; locked until "+locked.LockedUntil.Format(time.RFC3339))
		return nil, tooManyLogins(locked.LockedUntil.Sub(now))
	}
	return locked, err
}

func tooManyLogins(wait time.Duration) error {
	return &tessera.Error{Code: tessera.ETOOMANY, Message: "Too many failed logins: try again later", RetryAfter: int((wait + time.Second - 1) / time.Second)}
}

// factors returns what u has enrolled, as the policy sees it.
func (s *Service) factors(ctx context.Context, u *tessera.User) (policy.Factors, error) {
	n, err := s.Store.RecoveryCodesLeft(ctx, u.ID)
	return policy.Of(u, n), err
}

// startSecondFactor opens a flow (a login, or the step-up of sessionID)
// whose password step is done and whose second factor is pending.
func (s *Service) startSecondFactor(ctx context.Context, u *tessera.User, f policy.Factors, typ tessera.FlowType, sessionID string, meta Meta, now time.Time) (*LoginResult, error) {
	fl := &tessera.Flow{ID: uuid.NewString(), Type: typ, State: stateSecondFactor, UserID: u.ID, SessionID: sessionID, RequiredAAL: 2, AAL: 1,
		Methods: policy.PasswordProves(u.PasswordRecoveredVia), CSRFSecret: newSecret(), MaxAttempts: challengeAttempts, CreatedAt: now, ExpiresAt: now.Add(s.CodeTTL),
		UserAgent: meta.UserAgent, IP: meta.IP}
	if err := s.Store.CreateFlow(ctx, fl); err != nil {
		return nil, err
	}
	methods := policy.SecondFactors(f, fl.Methods)
	for _, m := range methods {
		// Factors that send nothing are begun now: the client has no call
		// to begin them (the authenticator app's check opens here).
		if fa := s.factor(m); !fa.sends() {
			if _, err := fa.Begin(ctx, u, fl); err != nil {
				return nil, err
			}
		}
	}
	return &LoginResult{Challenge: &Challenge{ProcessingID: fl.ID, Methods: factorNames(methods), ExpiresAt: fl.ExpiresAt}}, nil
}

// Destinations of one-time tokens, as the flows document names them.
const (
	DestinationEmail = "EMAIL"
	DestinationPhone = "PHONE_NUMBER"
)

// SendLoginCode texts the code that finishes an MFA login or step-up
// (POST /api/v1/token/login), if the policy lets texted codes complete
// it. EMAIL is refused: emailed codes never complete a second factor.
func (s *Service) SendLoginCode(ctx context.Context, processingID, dest string) (*CodeSent, error) {
	fl, u, err := s.openFlow(ctx, processingID, tessera.FlowLogin, tessera.FlowReauthentication, tessera.FlowKeyRecovery)
	if err != nil {
		return nil, err
	}
	factor := map[string]string{DestinationEmail: FactorEmail, DestinationPhone: FactorSMS}[dest]
	if factor == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "destination", Error: "must be EMAIL or PHONE_NUMBER"})
	}
	if err := s.mayComplete(ctx, u, fl.Methods, factor, "destination"); err != nil {
		return nil, err
	}
	sent, err := s.factor(amrOfFactor[factor]).Begin(ctx, u, fl)
	if err != nil {
		return nil, err
	}
	return sent.(*CodeSent), nil
}

// mayComplete refuses a factor the policy does not accept for this flow,
// naming the ones it does.
func (s *Service) mayComplete(ctx context.Context, u *tessera.User, proven []string, factor, field string) error {
	f, err := s.factors(ctx, u)
	if err != nil {
		return err
	}
	if amr, ok := amrOfFactor[factor]; ok && policy.MayCompleteWith(f, proven, amr) {
		return nil
	}
	return tessera.Invalid(tessera.FieldError{Path: field, Error: "is not a second factor this account accepts here; use one of: " +
		strings.Join(factorNames(policy.SecondFactors(f, proven)), ", ")})
}

// flowGone is the answer for a processingId that cannot be used.
func flowGone() error {
	return tessera.Errorf(tessera.ENOTFOUND, "Unknown, used or expired processingId: start again")
}

// openFlow returns a live flow of one of types, and its user.
func (s *Service) openFlow(ctx context.Context, processingID string, types ...tessera.FlowType) (*tessera.Flow, *tessera.User, error) {
	if _, err := uuid.Parse(processingID); err != nil {
		return nil, nil, tessera.Invalid(tessera.FieldError{Path: "processingId", Error: "must be a processingId the server returned"})
	}
	fl, err := s.Store.Flow(ctx, processingID)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND || (err == nil && (!fl.UsedAt.IsZero() || !s.now().Before(fl.ExpiresAt) || !slices.Contains(types, fl.Type))) {
		return nil, nil, flowGone()
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := s.Store.User(ctx, fl.UserID)
	return fl, u, err
}

// CompleteLogin finishes a login (new session) or a step-up (the same
// session, a fresh auth time and a new ID token) with a second factor the
// policy accepts.
func (s *Service) CompleteLogin(ctx context.Context, processingID, factor, code string, meta Meta) (*Tokens, error) {
	if code == "" {
		if factor == FactorPasskey {
			return nil, tessera.Invalid(tessera.FieldError{Path: "credential", Error: "is required: the PublicKeyCredential navigator.credentials.get gave"})
		}
		return nil, tessera.Invalid(tessera.FieldError{Path: "code", Error: "is required"})
	}
	fl, u, err := s.openFlow(ctx, processingID, tessera.FlowLogin, tessera.FlowReauthentication)
	if err != nil {
		return nil, err
	}
	if u.Status == tessera.UserDisabled {
		s.audit(ctx, tessera.AuditLoginFailed, u, meta, "account disabled")
		return nil, tessera.Errorf(tessera.EFORBIDDEN, "This account is disabled")
	}
	if _, ok := amrOfFactor[factor]; !ok {
		return nil, tessera.Invalid(tessera.FieldError{Path: "method", Error: "must be totp, sms or recovery_code"})
	}
	if err := s.mayComplete(ctx, u, fl.Methods, factor, "method"); err != nil {
		return nil, err
	}
	// A second factor counts like a password attempt: wrong ones lock the
	// account, however many logins they are spread over.
	locked, err := s.reserveLoginAttempt(ctx, u, meta, "second factor")
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.ReserveFlowAttempt(ctx, fl.ID, s.now()); err != nil {
		switch tessera.ErrorCode(err) {
		case tessera.ENOTFOUND:
			return nil, flowGone()
		case tessera.ELOCKED:
			s.audit(ctx, tessera.AuditLoginMFAFailed, u, meta, "too many attempts on this login")
		}
		return nil, err
	}
	if err := s.factor(amrOfFactor[factor]).Verify(ctx, u, fl, code); err != nil {
		if code := tessera.ErrorCode(err); code == tessera.EINVALIDCODE || code == tessera.EEXPIRED || code == tessera.ELOCKED {
			s.audit(ctx, tessera.AuditLoginMFAFailed, u, meta, failureDetail(factor+": "+code, locked.FailedLogins+1))
		}
		return nil, err
	}
	if err := s.Store.UseFlow(ctx, fl.ID, s.now()); err != nil {
		return nil, flowGone()
	}
	amr := append(slices.Clone(fl.Methods), amrOfFactor[factor])
	if fl.Type == tessera.FlowReauthentication {
		return s.stepUp(ctx, u, fl.SessionID, amr, meta)
	}
	s.observe("mfa_success")
	return s.newAuditedSession(ctx, u, amr, meta, tessera.AuditLoginMFASuccess, factor)
}

// ---- step-up and privileged actions ----

// Reauthenticate starts a step-up of the caller's session with the
// password (POST /auth/reauthenticate). With MFA off that is all: the
// session gets a fresh auth time and a new ID token. With MFA on it
// returns a challenge, finished like a login's with POST /auth/login/mfa.
func (s *Service) Reauthenticate(ctx context.Context, u *tessera.User, sess *tessera.Session, pw string, meta Meta) (*LoginResult, error) {
	if pw == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "password", Error: "is required"})
	}
	now := s.now()
	locked, err := s.reserveLoginAttempt(ctx, u, meta, "step-up")
	if err != nil {
		return nil, err
	}
	ok, err := s.Passwords.Verify(ctx, pw, locked.PasswordHash)
	if err != nil {
		return nil, err
	}
	if !ok {
		s.audit(ctx, tessera.AuditLoginFailed, u, meta, failureDetail("step-up: wrong password", locked.FailedLogins+1))
		return nil, tessera.Invalid(tessera.FieldError{Path: "password", Error: "is not the current password"})
	}
	f, err := s.factors(ctx, u)
	if err != nil {
		return nil, err
	}
	if !f.MFA() {
		tokens, err := s.stepUp(ctx, u, sess.ID, []string{policy.Password}, meta)
		return &LoginResult{Tokens: tokens}, err
	}
	return s.startSecondFactor(ctx, u, f, tessera.FlowReauthentication, sess.ID, meta, now)
}

// stepUp records that the user proved amr just now on session sessionID
// and returns a new ID token for it. The refresh token stays the same;
// ID tokens it yields carry the new auth time too.
func (s *Service) stepUp(ctx context.Context, u *tessera.User, sessionID string, amr []string, meta Meta) (*Tokens, error) {
	now := s.now()
	aal, amr := assurance(amr)
	if err := s.Store.SetSessionAuth(ctx, sessionID, aal, amr, now, now); err != nil {
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			return nil, tessera.Errorf(tessera.EUNAUTHORIZED, "The session has ended: log in again")
		}
		return nil, err
	}
	if err := s.Store.ClearLoginFailures(ctx, u.ID); err != nil {
		return nil, err
	}
	sess, err := s.Store.Session(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	id, exp, err := s.Tokens.Issue(ctx, u, sess)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, tessera.AuditReauthenticated, u, meta, fmt.Sprintf("session %s, %s", sessionID, strings.Join(amr, "+")))
	return &Tokens{IDToken: id, ExpiresAt: exp}, nil
}

// assurance returns the level amr reaches, and amr with "mfa" added at
// AAL 2.
func assurance(amr []string) (int, []string) {
	aal := policy.AAL(amr)
	if aal == 2 && !slices.Contains(amr, policy.MFA) {
		amr = append(slices.Clone(amr), policy.MFA)
	}
	return aal, amr
}

// PrivilegedMaxAge is how old a session's auth time may be for
// privileged actions; DefaultPrivilegedMaxAge when zero.
func (s *Service) privilegedMaxAge() time.Duration {
	if s.PrivilegedMaxAge > 0 {
		return s.PrivilegedMaxAge
	}
	return policy.DefaultPrivilegedMaxAge
}

// Authorize asks the policy whether sess may do action for u now:
// EREAUTH (403 reauthentication_required) when it must step up first.
func (s *Service) Authorize(ctx context.Context, u *tessera.User, sess *tessera.Session, action policy.Action) error {
	// The full assurance level does not depend on recovery codes: no query.
	return policy.Privileged(policy.Of(u, 0), sessionAuth(sess), action, s.now(), s.privilegedMaxAge())
}

func sessionAuth(sess *tessera.Session) policy.Session {
	return policy.Session{AAL: sess.AAL, AMR: sess.AMR, AuthTime: sess.AuthTime}
}
