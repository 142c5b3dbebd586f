package account

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/i18n"
	"github.com/tessera-id/tessera/internal/policy"
	"github.com/tessera-id/tessera/internal/verify"
)

// The account-security flows of one-time-token-flows.txt. Each sends a
// one-time token (OTT) through sendCode, bound to its user, purpose,
// destination and context (processing id, new value), and a matching call
// consumes it to perform the action.

// Purposes of one-time tokens.
const (
	purposePasswordRecovery = "password-recovery"
	purposeKeyRecoveryCheck = "key-recovery-verification"
	purposeKeyRecoveryNew   = "key-recovery-new-key"
	purposeKeyAdding        = "key-adding"
	purposeKeyChanging      = "key-changing"
	purposeKeyChangingNew   = "key-changing-new-key"
	purposeKeyRemoving      = "key-removing"
	purposeAntiPhishing     = "anti-phishing"
	purposeMFADisabling     = "mfa-disabling"
)

// keyAddress resolves EMAIL or PHONE_NUMBER to the user's address for it
// as a user key (where account-security tokens go): the email, or the
// phone if verified. Login codes use loginDestination, which is stricter.
func keyAddress(u *tessera.User, d string) (tessera.Method, string, error) {
	switch d {
	case DestinationEmail:
		return tessera.MethodEmail, u.Email, nil
	case DestinationPhone:
		if u.PhoneVerifiedAt.IsZero() {
			return "", "", tessera.Invalid(tessera.FieldError{Path: "destination", Error: "no verified phone number"})
		}
		return tessera.MethodPhone, u.Phone, nil
	}
	return "", "", tessera.Invalid(tessera.FieldError{Path: "destination", Error: "must be EMAIL or PHONE_NUMBER"})
}

// newKey parses a new email address or E.164 phone number; a phone
// number must be of a type the server texts (verify.Engine.CheckSMSNumber).
func (s *Service) newKey(path, value string) (keyType string, method tessera.Method, normalized string, err error) {
	value = strings.TrimSpace(value)
	if strings.HasPrefix(value, "+") {
		p, err := verify.NormalizePhone(value)
		if err == nil {
			err = s.Engine.CheckSMSNumber(p)
		}
		if err != nil {
			return "", "", "", tessera.Invalid(tessera.FieldError{Path: path, Error: err.Error()})
		}
		return DestinationPhone, tessera.MethodPhone, p, nil
	}
	e, err := verify.NormalizeEmail(value)
	if err != nil {
		return "", "", "", tessera.Invalid(tessera.FieldError{Path: path, Error: "must be an email address or an E.164 phone number"})
	}
	return DestinationEmail, tessera.MethodEmail, e, nil
}

func obfuscate(method tessera.Method, address string) string {
	if method == tessera.MethodPhone {
		return ObfuscatePhone(address)
	}
	return ObfuscateEmail(address)
}

func requireToken(token string) error {
	if strings.TrimSpace(token) == "" {
		return tessera.Invalid(tessera.FieldError{Path: "oneTimeToken", Error: "is required"})
	}
	return nil
}

// ---- password recovery ----

// Recovery guesses per address and hour, over all its recovery flows: a
// stranger starting flow after flow gets no more tries than this.
const recoveryGuessesPerHour = 20

// SendPasswordRecovery starts a password recovery for the account of
// email and sends its token to the account's EMAIL or PHONE_NUMBER. It
// returns the flow's id as ProcessingID: the reset must name it. label
// is the client's own processingId, kept only for its logs. The answer
// and its timing are the same whether or not the account (or its phone)
// exists: the flow is written for any address, and the lookup and the
// send happen after the answer.
func (s *Service) SendPasswordRecovery(ctx context.Context, email, dest, label string, meta Meta) (*CodeSent, error) {
	addr, err := verify.NormalizeEmail(strings.TrimSpace(email))
	if err != nil {
		return nil, tessera.Invalid(tessera.FieldError{Path: "email", Error: err.Error()})
	}
	shown := ObfuscateEmail(addr)
	switch dest {
	case DestinationEmail:
	case DestinationPhone:
		shown = "the phone number of the account"
	default:
		return nil, tessera.Invalid(tessera.FieldError{Path: "destination", Error: "must be EMAIL or PHONE_NUMBER"})
	}
	now := s.now()
	f := &tessera.Flow{ID: uuid.NewString(), Type: tessera.FlowPasswordRecovery, State: stateCodeSent, RequiredAAL: 1, Email: addr, Label: printable(label, 64), Secret: []byte(dest),
		CSRFSecret: newSecret(), MaxAttempts: codeMaxAttempts, CreatedAt: now, ExpiresAt: now.Add(s.CodeTTL), UserAgent: meta.UserAgent, IP: meta.IP}
	if err := s.Store.CreateFlow(ctx, f); err != nil {
		return nil, err
	}
	s.background(ctx, func(ctx context.Context) {
		u, err := s.Store.UserByEmail(ctx, addr)
		if err != nil {
			return // no account: nothing to send, and nobody told
		}
		method, to, err := keyAddress(u, dest)
		if err != nil {
			return
		}
		if _, err := s.sendFlowCode(ctx, u, method, to, purposePasswordRecovery, f); err != nil && tessera.ErrorCode(err) != tessera.ETOOMANY {
			s.logError("password recovery: send", err)
		}
	})
	return &CodeSent{Destination: shown, Expiration: ttlText(s.CodeTTL) + ".", ExpiresAt: f.ExpiresAt, ProcessingID: f.ID}, nil
}

// ResetPassword consumes the token of recovery flow processingID: the
// password changes, every session ends and a notice goes out, in one
// transaction. It grants no session (see policy, "What a recovery
// grants"): the user logs in afterwards, second factor included.
//
// Every answer is the same for an account that exists and one that does
// not: each flow counts its attempts (five), every flow of the address
// shares a throttle, and a wrong token, an unknown account and a missing
// phone are all "Invalid code".
func (s *Service) ResetPassword(ctx context.Context, processingID, token, newPassword string, meta Meta) error {
	if err := requireToken(token); err != nil {
		return err
	}
	if _, err := uuid.Parse(processingID); err != nil {
		return tessera.Invalid(tessera.FieldError{Path: "processingId", Error: "must be the processingId the token request returned"})
	}
	now := s.now()
	f, err := s.reserveAttempt(ctx, processingID)
	if err != nil {
		return err
	}
	if f.Type != tessera.FlowPasswordRecovery {
		return flowGone()
	}
	if err := checkPassword(newPassword, f.Email); err != nil {
		return tessera.Invalid(tessera.FieldError{Path: "newPassword", Error: err.Error()})
	}
	if err := s.Store.HitSendLimit(ctx, s.limitKey("recovery-guesses", strings.ToLower(f.Email)), now, 0, time.Hour, recoveryGuessesPerHour); err != nil {
		return err
	}
	// Hash before anything depends on the account: the time of the answer
	// must not tell whether it exists.
	hash, err := s.Passwords.Hash(ctx, newPassword)
	if err != nil {
		return err
	}
	invalid := tessera.Errorf(tessera.EINVALIDCODE, "Invalid code")
	u, err := s.Store.UserByEmail(ctx, f.Email)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return invalid
	}
	if err != nil {
		return err
	}
	dest := string(f.Secret)
	method, to, err := keyAddress(u, dest)
	if err != nil {
		return invalid
	}
	via := map[string]string{DestinationEmail: policy.Email, DestinationPhone: policy.SMS}[dest]
	var codeErr error
	err = s.inTx(ctx, func(t *txn) error {
		if codeErr = checkCodeOn(ctx, t.engine, u, method, to, codeSpec{purpose: purposePasswordRecovery, flowID: f.ID}, token); codeErr != nil {
			return nil // the wrong attempt must count: commit it
		}
		if err := t.store.UseFlow(ctx, f.ID, now); err != nil {
			return err
		}
		if err := t.store.SetPassword(ctx, u.ID, hash, via, now); err != nil {
			return err
		}
		if err := t.store.EndFlows(ctx, u.ID, passwordFlows, now); err != nil {
			return err
		}
		if _, err := t.store.RevokeSessions(ctx, u.ID, "", "", "password reset", now); err != nil {
			return err
		}
		if err := s.notifyOn(ctx, t.engine, u, u.Email, "password_reset"); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditPasswordReset, u, meta, "token sent to "+dest+"; every session ended")
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return flowGone() // a parallel reset used the flow
	}
	if err != nil {
		return err
	}
	if codeErr != nil {
		return codeErr
	}
	return nil
}

// ---- disabling MFA ----

// mfaOnFor says whether MFA is on for a destination. EMAIL stands for MFA
// as a whole (the email is where the account is recovered to); PHONE_NUMBER
// for texted codes as a second factor.
func mfaOnFor(u *tessera.User, dest string) (bool, error) {
	switch dest {
	case DestinationEmail:
		return u.TOTPEnrolled() || u.SMSFactorOn(), nil // passkeys are removed one by one
	case DestinationPhone:
		return u.SMSFactorOn(), nil
	}
	return false, tessera.Invalid(tessera.FieldError{Path: "destination", Error: "must be EMAIL or PHONE_NUMBER"})
}

// mayDisable refuses to turn MFA off for dest unless it is on and the
// session used a factor at least as strong as what goes: EMAIL removes
// every factor (the authenticator app included), PHONE_NUMBER texted
// codes.
func mayDisable(u *tessera.User, sess *tessera.Session, dest string) error {
	if on, err := mfaOnFor(u, dest); err != nil {
		return err
	} else if !on {
		return tessera.Errorf(tessera.ECONFLICT, "MFA is off for %s already", dest)
	}
	removing := policy.SMS
	if dest == DestinationEmail {
		removing = policy.Strongest(policy.Factors{TOTP: u.TOTPEnrolled(), SMS: u.SMSFactorOn()})
	}
	return policy.MayRemove(sessionAuth(sess), removing)
}

// SendMFADisabling starts an MFA-disabling flow and sends its token;
// refused when MFA is off for dest already, or when the session did not
// use a factor as strong as the one going.
func (s *Service) SendMFADisabling(ctx context.Context, u *tessera.User, sess *tessera.Session, dest string, meta Meta) (*CodeSent, error) {
	if err := s.Authorize(ctx, u, sess, policy.DisableMFA); err != nil {
		return nil, err
	}
	if err := mayDisable(u, sess, dest); err != nil {
		return nil, err
	}
	method, to, err := keyAddress(u, dest)
	if err != nil {
		return nil, err
	}
	f := s.newFlow(tessera.FlowMFADisabling, stateCodeSent, u, sess, meta)
	f.Secret = []byte(dest)
	if err := s.Store.CreateFlow(ctx, f); err != nil {
		return nil, err
	}
	sent, err := s.sendFlowCode(ctx, u, method, to, purposeMFADisabling, f)
	if err != nil {
		return nil, err
	}
	sent.ProcessingID = f.ID
	return sent, nil
}

// DisableMFA consumes the token of an MFA-disabling flow: PHONE_NUMBER
// turns texted codes off as a second factor; EMAIL turns MFA off
// altogether (authenticator app removed too). Other sessions end and a
// notice goes to the email, all in one transaction.
func (s *Service) DisableMFA(ctx context.Context, u *tessera.User, sess *tessera.Session, processingID, dest, token string, meta Meta) (*tessera.User, error) {
	if err := s.Authorize(ctx, u, sess, policy.DisableMFA); err != nil {
		return nil, err
	}
	if err := requireToken(token); err != nil {
		return nil, err
	}
	if err := mayDisable(u, sess, dest); err != nil {
		return nil, err
	}
	f, err := s.userFlow(ctx, u, tessera.FlowMFADisabling, processingID, stateCodeSent)
	if err != nil {
		return nil, err
	}
	if string(f.Secret) != dest {
		return nil, tessera.Invalid(tessera.FieldError{Path: "destination", Error: "is not the one the token was sent for"})
	}
	if _, err := s.reserveAttempt(ctx, f.ID); err != nil {
		return nil, err
	}
	method, to, err := keyAddress(u, dest)
	if err != nil {
		return nil, err
	}
	notice, off := "sms_factor_off", ChannelSMS
	if dest == DestinationEmail {
		notice, off = "mfa_off", "all"
	}
	var codeErr error
	err = s.inTx(ctx, func(t *txn) error {
		if codeErr = checkCodeOn(ctx, t.engine, u, method, to, codeSpec{purpose: purposeMFADisabling, flowID: f.ID}, token); codeErr != nil {
			return nil // the wrong attempt must count: commit it
		}
		if err := t.store.UseFlow(ctx, f.ID, s.now()); err != nil {
			return err
		}
		if err := t.store.SetSMSMFA(ctx, u.ID, zeroTime); err != nil {
			return err
		}
		if dest == DestinationEmail {
			if err := t.store.DeleteTOTPSecret(ctx, Owner, u.ID); err != nil && tessera.ErrorCode(err) != tessera.ENOTFOUND {
				return err
			}
			if err := t.store.SetTOTPVerified(ctx, u.ID, zeroTime); err != nil {
				return err
			}
		}
		if _, err := t.store.RevokeSessions(ctx, u.ID, "", sess.ID, "MFA changed", s.now()); err != nil {
			return err
		}
		if err := s.notifyOn(ctx, t.engine, u, u.Email, notice); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditMFADisabled, u, meta, off)
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return nil, flowGone()
	}
	if err == nil {
		err = codeErr
	}
	if err != nil {
		return nil, err
	}
	return s.Store.User(ctx, u.ID)
}

// ---- anti-phishing code ----

// SendAntiPhishing sends, by email only, the token to add (changing false,
// only when none is set) or change (only when one is set) the code.
func (s *Service) SendAntiPhishing(ctx context.Context, u *tessera.User, sess *tessera.Session, changing bool) (*CodeSent, error) {
	if err := s.Authorize(ctx, u, sess, policy.ChangeAntiPhishing); err != nil {
		return nil, err
	}
	if err := antiPhishingState(u, changing); err != nil {
		return nil, err
	}
	return s.sendCode(ctx, u, tessera.MethodEmail, u.Email, purposeAntiPhishing, boolText(changing))
}

func antiPhishingState(u *tessera.User, changing bool) error {
	if changing && u.AntiPhishingSealed == nil {
		return tessera.Errorf(tessera.ECONFLICT, "No anti-phishing code is set: add one")
	}
	if !changing && u.AntiPhishingSealed != nil {
		return tessera.Errorf(tessera.ECONFLICT, "An anti-phishing code is set already: change it")
	}
	return nil
}

func boolText(b bool) string {
	if b {
		return "change"
	}
	return "add"
}

// SetAntiPhishing consumes the token and stores the code, encrypted. Every
// email to the user shows it from then on.
func (s *Service) SetAntiPhishing(ctx context.Context, u *tessera.User, sess *tessera.Session, changing bool, token, code string, meta Meta) (*tessera.User, error) {
	if err := s.Authorize(ctx, u, sess, policy.ChangeAntiPhishing); err != nil {
		return nil, err
	}
	if err := requireToken(token); err != nil {
		return nil, err
	}
	code = strings.TrimSpace(code)
	if n := utf8.RuneCountInString(code); n < 4 || n > 32 || strings.IndexFunc(code, unicode.IsControl) >= 0 {
		return nil, tessera.Invalid(tessera.FieldError{Path: "antiPhishingCode", Error: "must be 4 to 32 printable characters"})
	}
	if err := antiPhishingState(u, changing); err != nil {
		return nil, err
	}
	if err := s.checkCode(ctx, u, tessera.MethodEmail, u.Email, purposeAntiPhishing, boolText(changing), token); err != nil {
		return nil, err
	}
	sealed, err := s.Keys.Seal([]byte(code), antiPhishingAD(u.ID))
	if err != nil {
		return nil, err
	}
	if err := s.Store.SetAntiPhishing(ctx, u.ID, sealed, changing); err != nil {
		return nil, err
	}
	detail := "added"
	if changing {
		detail = "changed"
	}
	s.audit(ctx, tessera.AuditAntiPhishingSet, u, meta, detail)
	return s.Store.User(ctx, u.ID)
}

// ---- user keys: adding, changing, removing ----

// SendKeyAdding sends a token to a new key the user does not have yet: a
// phone number (every account has an email, which is changed instead).
func (s *Service) SendKeyAdding(ctx context.Context, u *tessera.User, sess *tessera.Session, keyType, value string) (*CodeSent, error) {
	if err := s.Authorize(ctx, u, sess, policy.AddKey); err != nil {
		return nil, err
	}
	kt, method, key, err := s.newKey(map[string]string{DestinationEmail: "newEmail", DestinationPhone: "newPhoneNumber"}[keyType], value)
	if err != nil {
		return nil, err
	}
	if kt != keyType {
		return nil, tessera.Invalid(tessera.FieldError{Path: "keyType", Error: "does not match the new key"})
	}
	if err := canAdd(u, kt); err != nil {
		return nil, err
	}
	return s.sendCode(ctx, u, method, key, purposeKeyAdding, kt)
}

func canAdd(u *tessera.User, keyType string) error {
	if keyType == DestinationEmail {
		return tessera.Errorf(tessera.ECONFLICT, "The account has an email already: change it instead")
	}
	if !u.PhoneVerifiedAt.IsZero() {
		return tessera.Errorf(tessera.ECONFLICT, "The account has a phone number already: change it instead")
	}
	return nil
}

// AddKey consumes the token sent to the new key and adds it, verified.
func (s *Service) AddKey(ctx context.Context, u *tessera.User, sess *tessera.Session, value, token string, meta Meta) (*tessera.User, error) {
	if err := s.Authorize(ctx, u, sess, policy.AddKey); err != nil {
		return nil, err
	}
	if err := requireToken(token); err != nil {
		return nil, err
	}
	kt, method, key, err := s.newKey("newKey", value)
	if err != nil {
		return nil, err
	}
	if err := canAdd(u, kt); err != nil {
		return nil, err
	}
	var codeErr error
	err = s.inTx(ctx, func(t *txn) error {
		if codeErr = checkCodeOn(ctx, t.engine, u, method, key, codeSpec{purpose: purposeKeyAdding, extra: kt}, token); codeErr != nil {
			return nil // the wrong attempt must count: commit it
		}
		if err := t.store.ChangePhone(ctx, u.ID, key, verify.RegionOf(key), s.now()); err != nil {
			return err
		}
		if err := s.notifyOn(ctx, t.engine, u, u.Email, "phone_added", "phone", obfuscate(method, key)); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditKeyAdded, u, meta, kt+" "+obfuscate(method, key))
	})
	if err == nil {
		err = codeErr
	}
	if err != nil {
		return nil, err
	}
	return s.Store.User(ctx, u.ID)
}

// keyInMFA refuses to change or remove a key while MFA relies on it: the
// phone while texted codes are a second factor, the email while MFA is on
// (it receives login and recovery codes).
func keyInMFA(u *tessera.User, keyType string) error {
	if on, err := mfaOnFor(u, keyType); err != nil {
		return tessera.Invalid(tessera.FieldError{Path: "keyType", Error: "must be EMAIL or PHONE_NUMBER"})
	} else if on {
		return tessera.Errorf(tessera.ECONFLICT, "MFA is on for %s: disable it first (POST /api/v1/token/mfa/disabling)", keyType)
	}
	return nil
}

// SendKeyChanging starts a key change: a flow, and a token to the
// current key.
func (s *Service) SendKeyChanging(ctx context.Context, u *tessera.User, sess *tessera.Session, keyType string, meta Meta) (*CodeSent, error) {
	if err := s.Authorize(ctx, u, sess, policy.ChangeKey); err != nil {
		return nil, err
	}
	if err := keyInMFA(u, keyType); err != nil {
		return nil, err
	}
	method, to, err := keyAddress(u, keyType)
	if err != nil {
		return nil, err
	}
	f := s.newFlow(tessera.FlowKeyChange, stateCurrentKeySent, u, sess, meta)
	f.Secret = []byte(keyType)
	if err := s.Store.CreateFlow(ctx, f); err != nil {
		return nil, err
	}
	sent, err := s.sendFlowCode(ctx, u, method, to, purposeKeyChanging, f)
	if err != nil {
		return nil, err
	}
	sent.ProcessingID = f.ID
	return sent, nil
}

// SendKeyChangingNewKey checks the first step's token and sends a token
// to the new key; only the holder of both gets this far. The flow then
// remembers the new key: the last step can change the key to no other.
func (s *Service) SendKeyChangingNewKey(ctx context.Context, u *tessera.User, sess *tessera.Session, processingID, firstToken, value string) (*CodeSent, error) {
	if err := s.Authorize(ctx, u, sess, policy.ChangeKey); err != nil {
		return nil, err
	}
	if err := requireToken(firstToken); err != nil {
		return nil, err
	}
	kt, method, key, err := s.newKey("newUserKey", value)
	if err != nil {
		return nil, err
	}
	f, err := s.userFlow(ctx, u, tessera.FlowKeyChange, processingID, stateCurrentKeySent)
	if err != nil {
		return nil, err
	}
	if string(f.Secret) != kt {
		return nil, tessera.Invalid(tessera.FieldError{Path: "newUserKey", Error: "must be of the type being changed (" + string(f.Secret) + ")"})
	}
	if err := keyInMFA(u, kt); err != nil {
		return nil, err
	}
	curMethod, cur, err := keyAddress(u, kt)
	if err != nil {
		return nil, err
	}
	if cur == key {
		return nil, tessera.Invalid(tessera.FieldError{Path: "newUserKey", Error: "is the current one"})
	}
	if _, err := s.reserveAttempt(ctx, f.ID); err != nil {
		return nil, err
	}
	if err := s.checkFlowCode(ctx, u, curMethod, cur, purposeKeyChanging, f, firstToken); err != nil {
		return nil, err
	}
	next := *f
	next.State, next.Secret = stateNewKeySent, []byte(kt+"\x00"+key)
	if err := s.Store.AdvanceFlow(ctx, &next, stateCurrentKeySent, s.now()); err != nil {
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			return nil, flowGone()
		}
		return nil, err
	}
	sent, err := s.sendFlowCode(ctx, u, method, key, purposeKeyChangingNew, f)
	if err != nil {
		return nil, err
	}
	sent.ProcessingID = f.ID
	return sent, nil
}

// ChangeKey consumes the token sent to the new key and replaces the key.
// Other sessions end, and the previous email gets a notice.
func (s *Service) ChangeKey(ctx context.Context, u *tessera.User, sess *tessera.Session, processingID, value, token string, meta Meta) (*tessera.User, error) {
	if err := s.Authorize(ctx, u, sess, policy.ChangeKey); err != nil {
		return nil, err
	}
	if err := requireToken(token); err != nil {
		return nil, err
	}
	kt, method, key, err := s.newKey("newUserKey", value)
	if err != nil {
		return nil, err
	}
	f, err := s.userFlow(ctx, u, tessera.FlowKeyChange, processingID, stateNewKeySent)
	if err != nil {
		return nil, err
	}
	if string(f.Secret) != kt+"\x00"+key {
		return nil, tessera.Invalid(tessera.FieldError{Path: "newUserKey", Error: "is not the key this change was started for"})
	}
	if err := keyInMFA(u, kt); err != nil {
		return nil, err
	}
	if _, err := s.reserveAttempt(ctx, f.ID); err != nil {
		return nil, err
	}
	return s.replaceKey(ctx, u, sess.ID, kt, key, "changed", meta, func(t *txn) error {
		if err := checkCodeOn(ctx, t.engine, u, method, key, codeSpec{purpose: purposeKeyChangingNew, flowID: f.ID}, token); err != nil {
			return err
		}
		return t.store.UseFlow(ctx, f.ID, s.now())
	})
}

// replaceKey checks the last token (check, inside the transaction), sets
// a verified new email or phone, ends the sessions (but keep) and tells
// the previous email, all in one transaction.
func (s *Service) replaceKey(ctx context.Context, u *tessera.User, keep, keyType, key, verb string, meta Meta, check func(t *txn) error) (*tessera.User, error) {
	now := s.now()
	kind := tessera.AuditKeyChanged
	if verb == "recovered" {
		kind = tessera.AuditKeyRecovered
	}
	var codeErr error
	err := s.inTx(ctx, func(t *txn) error {
		if codeErr = check(t); codeErr != nil {
			return nil // the wrong attempt must count: commit it
		}
		var err error
		if keyType == DestinationEmail {
			err = t.store.ChangeEmail(ctx, u.ID, key, now)
		} else {
			err = t.store.ChangePhone(ctx, u.ID, key, verify.RegionOf(key), now)
		}
		if err != nil {
			return err
		}
		if _, err := t.store.RevokeSessions(ctx, u.ID, "", keep, "user key "+verb, now); err != nil {
			return err
		}
		if err := s.notifyOn(ctx, t.engine, u, u.Email, "key_"+verb, "what", keyTypeWord(s.lang(ctx, u), keyType), "key", obfuscate(methodOf(keyType), key)); err != nil {
			return err
		}
		return s.auditIn(ctx, t, kind, u, meta, keyType+" "+verb+" to "+obfuscate(methodOf(keyType), key))
	})
	if err == nil {
		err = codeErr
	}
	if err != nil {
		return nil, err
	}
	return s.Store.User(ctx, u.ID)
}

func methodOf(keyType string) tessera.Method {
	if keyType == DestinationPhone {
		return tessera.MethodPhone
	}
	return tessera.MethodEmail
}

// SendKeyRemoving sends a token to the key to remove. The email is the key
// the user logs in with and is never removed; the phone only while texted
// codes are not a second factor.
func (s *Service) SendKeyRemoving(ctx context.Context, u *tessera.User, sess *tessera.Session, keyType string) (*CodeSent, error) {
	if err := s.Authorize(ctx, u, sess, policy.RemoveKey); err != nil {
		return nil, err
	}
	if err := canRemove(u, keyType); err != nil {
		return nil, err
	}
	return s.sendCode(ctx, u, tessera.MethodPhone, u.Phone, purposeKeyRemoving, keyType)
}

func canRemove(u *tessera.User, keyType string) error {
	switch keyType {
	case DestinationEmail:
		return tessera.Errorf(tessera.ECONFLICT, "The email is the key you log in with: it cannot be removed, only changed")
	case DestinationPhone:
		if u.Phone == "" {
			return tessera.Errorf(tessera.ENOTFOUND, "The account has no phone number")
		}
		return keyInMFA(u, keyType)
	}
	return tessera.Invalid(tessera.FieldError{Path: "keyType", Error: "must be EMAIL or PHONE_NUMBER"})
}

// RemoveKey consumes the token and removes the phone number.
func (s *Service) RemoveKey(ctx context.Context, u *tessera.User, sess *tessera.Session, keyType, token string, meta Meta) (*tessera.User, error) {
	if err := s.Authorize(ctx, u, sess, policy.RemoveKey); err != nil {
		return nil, err
	}
	if err := requireToken(token); err != nil {
		return nil, err
	}
	if err := canRemove(u, keyType); err != nil {
		return nil, err
	}
	var codeErr error
	err := s.inTx(ctx, func(t *txn) error {
		if codeErr = checkCodeOn(ctx, t.engine, u, tessera.MethodPhone, u.Phone, codeSpec{purpose: purposeKeyRemoving, extra: keyType}, token); codeErr != nil {
			return nil // the wrong attempt must count: commit it
		}
		if err := t.store.RemovePhone(ctx, u.ID); err != nil {
			return err
		}
		if err := s.notifyOn(ctx, t.engine, u, u.Email, "phone_removed", "phone", ObfuscatePhone(u.Phone)); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditKeyRemoved, u, meta, keyType+" "+ObfuscatePhone(u.Phone))
	})
	if err == nil {
		err = codeErr
	}
	if err != nil {
		return nil, err
	}
	return s.Store.User(ctx, u.ID)
}

// ---- user key recovery ----

// User key recovery is for a user with MFA on who lost the mailbox or the
// phone: the password is proven by the processingId of an MFA login
// (POST /auth/login), the other key by one token, the new key by another,
// and the second factor like a login's: a key recovery never takes fewer
// factors than a login. With MFA off the user simply logs in and changes
// the key.

// SendKeyRecoveryVerification turns a login waiting for its second
// factor into a key recovery for lostKey (from then on it can no longer
// finish the login), and sends a token to the key the user still has.
func (s *Service) SendKeyRecoveryVerification(ctx context.Context, processingID, lostKey, dest string) (*CodeSent, error) {
	f, u, err := s.openFlow(ctx, processingID, tessera.FlowLogin, tessera.FlowKeyRecovery)
	if err != nil {
		return nil, err
	}
	if lostKey != DestinationEmail && lostKey != DestinationPhone {
		return nil, tessera.Invalid(tessera.FieldError{Path: "keyType", Error: "must be the key being recovered: EMAIL or PHONE_NUMBER"})
	}
	if dest == lostKey {
		return nil, tessera.Invalid(tessera.FieldError{Path: "destination", Error: "is the key being recovered: send the token to the other key"})
	}
	method, to, err := keyAddress(u, dest)
	if err != nil {
		return nil, err
	}
	switch {
	case f.Type == tessera.FlowLogin:
		next := *f
		next.Type, next.State, next.Secret = tessera.FlowKeyRecovery, stateRecovering, []byte(lostKey)
		if err := s.Store.AdvanceFlow(ctx, &next, stateSecondFactor, s.now()); err != nil {
			if tessera.ErrorCode(err) == tessera.ENOTFOUND {
				return nil, flowGone()
			}
			return nil, err
		}
	case string(f.Secret) != lostKey:
		return nil, tessera.Invalid(tessera.FieldError{Path: "keyType", Error: "this recovery is for " + string(f.Secret)})
	}
	return s.sendFlowCode(ctx, u, method, to, purposeKeyRecoveryCheck, f)
}

// SendKeyRecoveryNewKey sends a token to the new email or phone.
func (s *Service) SendKeyRecoveryNewKey(ctx context.Context, processingID, value string) (*CodeSent, error) {
	f, u, err := s.openFlow(ctx, processingID, tessera.FlowKeyRecovery)
	if err != nil {
		return nil, err
	}
	kt, method, key, err := s.newKey("destination", value)
	if err != nil {
		return nil, err
	}
	if kt != string(f.Secret) {
		return nil, tessera.Invalid(tessera.FieldError{Path: "destination", Error: "must be of the type being recovered (" + string(f.Secret) + ")"})
	}
	sent, err := s.send(ctx, u, method, key, codeSpec{purpose: purposeKeyRecoveryNew, extra: key, flowID: f.ID})
	if err != nil {
		return nil, err
	}
	sent.Destination = "" // the caller typed it; the flows document answers with the expiration only
	return sent, nil
}

// RecoverKey checks the second factor and both tokens and replaces the
// lost key with the new one. The second factor must be one the policy
// accepts beyond what the verification token proved: a key recovery whose
// token went by SMS cannot use SMS again. The flow is used up and every
// session ends: the user logs in again.
func (s *Service) RecoverKey(ctx context.Context, processingID, lostKey, verificationToken, value, newKeyToken, mfaMethod, mfaCode string, meta Meta) (*tessera.User, error) {
	if strings.TrimSpace(verificationToken) == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "verificationToken", Error: "is required"})
	}
	if strings.TrimSpace(newKeyToken) == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "newKeyToken", Error: "is required"})
	}
	f, u, err := s.openFlow(ctx, processingID, tessera.FlowKeyRecovery)
	if err != nil {
		return nil, err
	}
	kt, method, key, err := s.newKey("newKey", value)
	if err != nil {
		return nil, err
	}
	if kt != lostKey || lostKey != string(f.Secret) {
		return nil, tessera.Invalid(tessera.FieldError{Path: "newKey", Error: "must be of the type being recovered (" + string(f.Secret) + ")"})
	}
	other := DestinationEmail
	if lostKey == DestinationEmail {
		other = DestinationPhone
	}
	otherMethod, otherTo, err := keyAddress(u, other)
	if err != nil {
		return nil, err
	}
	proven := append(slices.Clone(f.Methods), map[string]string{DestinationEmail: policy.Email, DestinationPhone: policy.SMS}[other])
	if strings.TrimSpace(mfaCode) == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "mfaCode", Error: "is required: a key recovery needs your second factor"})
	}
	if err := s.mayComplete(ctx, u, proven, mfaMethod, "mfaMethod"); err != nil {
		return nil, err
	}
	if _, err := s.reserveAttempt(ctx, f.ID); err != nil {
		return nil, err
	}
	if err := s.checkFlowCode(ctx, u, otherMethod, otherTo, purposeKeyRecoveryCheck, f, verificationToken); err != nil {
		return nil, err
	}
	if err := checkCodeOn(ctx, s.Engine, u, method, key, codeSpec{purpose: purposeKeyRecoveryNew, extra: key, flowID: f.ID}, newKeyToken); err != nil {
		return nil, err
	}
	if err := s.factor(amrOfFactor[mfaMethod]).Verify(ctx, u, f, mfaCode); err != nil {
		return nil, err
	}
	return s.replaceKey(ctx, u, "", lostKey, key, "recovered", meta, func(t *txn) error {
		return t.store.UseFlow(ctx, f.ID, s.now())
	})
}

// ---- background work ----

// maxBackground bounds the sends running after their request was answered;
// past it new ones are dropped (and logged) rather than piling up.
const maxBackground = 32

// background runs fn after the request, with its own deadline and the
// request's language (for the messages it sends); Drain waits for every
// such fn (tests, and shutdown).
func (s *Service) background(reqCtx context.Context, fn func(ctx context.Context)) {
	lang := i18n.FromContext(reqCtx)
	s.slotsOnce.Do(func() { s.slots = make(chan struct{}, maxBackground) })
	select {
	case s.slots <- struct{}{}:
	default:
		s.logError("background work dropped", errors.New("too many at once"))
		return
	}
	s.pending.Add(1)
	go func() {
		defer func() { <-s.slots; s.pending.Done() }()
		ctx, cancel := context.WithTimeout(i18n.WithLanguage(context.Background(), lang), 30*time.Second)
		defer cancel()
		fn(ctx)
	}()
}

// Drain waits for the work started after requests were answered.
func (s *Service) Drain() { s.pending.Wait() }

func (s *Service) logError(msg string, err error) {
	if s.Log != nil {
		s.Log.Error(msg, "err", err)
	}
}
