package account

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
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

// newKey parses a new email address or E.164 phone number.
func newKey(path, value string) (keyType string, method tessera.Method, normalized string, err error) {
	value = strings.TrimSpace(value)
	if strings.HasPrefix(value, "+") {
		p, err := verify.NormalizePhone(value)
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

// SendPasswordRecovery sends a password-recovery token for the account of
// email to its EMAIL or PHONE_NUMBER. Its answer and its timing are the
// same whether or not the account (or its phone) exists: the lookup and
// the send happen after the answer.
func (s *Service) SendPasswordRecovery(ctx context.Context, email, dest, processingID string) (*CodeSent, error) {
	addr, err := verify.NormalizeEmail(strings.TrimSpace(email))
	if err != nil {
		return nil, tessera.Invalid(tessera.FieldError{Path: "email", Error: err.Error()})
	}
	if _, err := uuid.Parse(processingID); err != nil {
		return nil, tessera.Invalid(tessera.FieldError{Path: "processingId", Error: "must be a UUID the client chooses for this recovery"})
	}
	shown := ObfuscateEmail(addr)
	switch dest {
	case DestinationEmail:
	case DestinationPhone:
		shown = "the phone number of the account"
	default:
		return nil, tessera.Invalid(tessera.FieldError{Path: "destination", Error: "must be EMAIL or PHONE_NUMBER"})
	}
	s.background(func(ctx context.Context) {
		u, err := s.Store.UserByEmail(ctx, addr)
		if err != nil {
			return // no account: nothing to send, and nobody told
		}
		method, to, err := keyAddress(u, dest)
		if err != nil {
			return
		}
		if _, err := s.sendCode(ctx, u, method, to, purposePasswordRecovery, processingID); err != nil && tessera.ErrorCode(err) != tessera.ETOOMANY {
			s.logError("password recovery: send", err)
		}
	})
	return &CodeSent{Destination: shown, Expiration: ttlText(s.CodeTTL) + ".", ExpiresAt: s.now().Add(s.CodeTTL)}, nil
}

// ResetPassword consumes a password-recovery token: the password changes
// and every session ends.
// Every failure that depends on the account answers "Invalid code", so
// the answer never tells whether the account (or its phone) exists.
func (s *Service) ResetPassword(ctx context.Context, email, dest, processingID, token, newPassword string, meta Meta) error {
	if err := requireToken(token); err != nil {
		return err
	}
	if dest != DestinationEmail && dest != DestinationPhone {
		return tessera.Invalid(tessera.FieldError{Path: "destination", Error: "must be EMAIL or PHONE_NUMBER"})
	}
	if err := checkPassword(newPassword, strings.TrimSpace(email)); err != nil {
		return tessera.Invalid(tessera.FieldError{Path: "newPassword", Error: err.Error()})
	}
	invalid := tessera.Errorf(tessera.EINVALIDCODE, "Invalid code")
	u, err := s.userByEmail(ctx, email)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return invalid
	}
	if err != nil {
		return err
	}
	method, to, err := keyAddress(u, dest)
	if err != nil {
		return invalid
	}
	if err := s.checkCode(ctx, u, method, to, purposePasswordRecovery, processingID, token); err != nil {
		return err
	}
	hash, err := s.Passwords.Hash(ctx, newPassword)
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.Store.SetPassword(ctx, u.ID, hash, now); err != nil {
		return err
	}
	if _, err := s.Store.RevokeSessions(ctx, u.ID, "", "", "password reset", now); err != nil {
		return err
	}
	s.audit(ctx, tessera.AuditPasswordReset, u, meta, "token sent to "+dest+"; every session ended")
	return s.notify(ctx, u, u.Email, "your password was reset", "The password of your account was reset and every session was ended.")
}

// ---- disabling MFA ----

// mfaOnFor says whether MFA is on for a destination. EMAIL stands for MFA
// as a whole (the email is where the account is recovered to); PHONE_NUMBER
// for texted codes as a second factor.
func mfaOnFor(u *tessera.User, dest string) (bool, error) {
	switch dest {
	case DestinationEmail:
		return u.MFAEnabled(), nil
	case DestinationPhone:
		return !u.SMSMFAAt.IsZero(), nil
	}
	return false, tessera.Invalid(tessera.FieldError{Path: "destination", Error: "must be EMAIL or PHONE_NUMBER"})
}

// SendMFADisabling sends the token that turns MFA off for a destination;
// refused when it is off already.
func (s *Service) SendMFADisabling(ctx context.Context, u *tessera.User, dest string) (*CodeSent, error) {
	if on, err := mfaOnFor(u, dest); err != nil {
		return nil, err
	} else if !on {
		return nil, tessera.Errorf(tessera.ECONFLICT, "MFA is off for %s already", dest)
	}
	method, to, err := keyAddress(u, dest)
	if err != nil {
		return nil, err
	}
	return s.sendCode(ctx, u, method, to, purposeMFADisabling, dest)
}

// DisableMFA consumes the token: PHONE_NUMBER turns texted codes off as a
// second factor; EMAIL turns MFA off altogether (authenticator app removed
// too). Other sessions end and a notice goes to the email.
func (s *Service) DisableMFA(ctx context.Context, u *tessera.User, sess *tessera.Session, dest, token string, meta Meta) (*tessera.User, error) {
	if err := requireToken(token); err != nil {
		return nil, err
	}
	if on, err := mfaOnFor(u, dest); err != nil {
		return nil, err
	} else if !on {
		return nil, tessera.Errorf(tessera.ECONFLICT, "MFA is off for %s already", dest)
	}
	method, to, err := keyAddress(u, dest)
	if err != nil {
		return nil, err
	}
	if err := s.checkCode(ctx, u, method, to, purposeMFADisabling, dest, token); err != nil {
		return nil, err
	}
	if err := s.Store.SetSMSMFA(ctx, u.ID, zeroTime); err != nil {
		return nil, err
	}
	what, off := "Texted codes are no longer a second factor for your account.", ChannelSMS
	if dest == DestinationEmail {
		off = "all"
		if err := s.Engine.Store.DeleteTOTPSecret(ctx, Owner, u.ID); err != nil && tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return nil, err
		}
		if err := s.Store.SetTOTPVerified(ctx, u.ID, zeroTime); err != nil {
			return nil, err
		}
		what = "Two-step verification (MFA) was turned off for your account."
	}
	s.audit(ctx, tessera.AuditMFADisabled, u, meta, off)
	if _, err := s.Store.RevokeSessions(ctx, u.ID, "", sess.ID, "MFA changed", s.now()); err != nil {
		return nil, err
	}
	if err := s.notify(ctx, u, u.Email, "MFA was turned off", what); err != nil {
		return nil, err
	}
	return s.Store.User(ctx, u.ID)
}

// ---- anti-phishing code ----

// SendAntiPhishing sends, by email only, the token to add (changing false,
// only when none is set) or change (only when one is set) the code.
func (s *Service) SendAntiPhishing(ctx context.Context, u *tessera.User, changing bool) (*CodeSent, error) {
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
func (s *Service) SetAntiPhishing(ctx context.Context, u *tessera.User, changing bool, token, code string, meta Meta) (*tessera.User, error) {
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
func (s *Service) SendKeyAdding(ctx context.Context, u *tessera.User, keyType, value string) (*CodeSent, error) {
	kt, method, key, err := newKey(map[string]string{DestinationEmail: "newEmail", DestinationPhone: "newPhoneNumber"}[keyType], value)
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
func (s *Service) AddKey(ctx context.Context, u *tessera.User, value, token string, meta Meta) (*tessera.User, error) {
	if err := requireToken(token); err != nil {
		return nil, err
	}
	kt, method, key, err := newKey("newKey", value)
	if err != nil {
		return nil, err
	}
	if err := canAdd(u, kt); err != nil {
		return nil, err
	}
	if err := s.checkCode(ctx, u, method, key, purposeKeyAdding, kt, token); err != nil {
		return nil, err
	}
	if err := s.Store.ChangePhone(ctx, u.ID, key, verify.RegionOf(key), s.now()); err != nil {
		return nil, err
	}
	s.audit(ctx, tessera.AuditKeyAdded, u, meta, kt+" "+obfuscate(method, key))
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

// SendKeyChanging sends a token to the current key, first step of
// changing it.
func (s *Service) SendKeyChanging(ctx context.Context, u *tessera.User, keyType string) (*CodeSent, error) {
	if err := keyInMFA(u, keyType); err != nil {
		return nil, err
	}
	method, to, err := keyAddress(u, keyType)
	if err != nil {
		return nil, err
	}
	return s.sendCode(ctx, u, method, to, purposeKeyChanging, keyType)
}

// SendKeyChangingNewKey consumes the first step's token and sends a token
// to the new key; only the holder of both gets this far.
func (s *Service) SendKeyChangingNewKey(ctx context.Context, u *tessera.User, firstToken, value string) (*CodeSent, error) {
	if err := requireToken(firstToken); err != nil {
		return nil, err
	}
	kt, method, key, err := newKey("newUserKey", value)
	if err != nil {
		return nil, err
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
	if err := s.checkCode(ctx, u, curMethod, cur, purposeKeyChanging, kt, firstToken); err != nil {
		return nil, err
	}
	return s.sendCode(ctx, u, method, key, purposeKeyChangingNew, key)
}

// ChangeKey consumes the token sent to the new key and replaces the key.
// Other sessions end, and the previous email gets a notice.
func (s *Service) ChangeKey(ctx context.Context, u *tessera.User, sess *tessera.Session, value, token string, meta Meta) (*tessera.User, error) {
	if err := requireToken(token); err != nil {
		return nil, err
	}
	kt, method, key, err := newKey("newUserKey", value)
	if err != nil {
		return nil, err
	}
	if err := keyInMFA(u, kt); err != nil {
		return nil, err
	}
	if err := s.checkCode(ctx, u, method, key, purposeKeyChangingNew, key, token); err != nil {
		return nil, err
	}
	return s.replaceKey(ctx, u, sess.ID, kt, key, "changed", meta)
}

// replaceKey sets a verified new email or phone, ends the sessions (but
// keep) and tells the previous email.
func (s *Service) replaceKey(ctx context.Context, u *tessera.User, keep, keyType, key, verb string, meta Meta) (*tessera.User, error) {
	now := s.now()
	var err error
	what := "phone number"
	if keyType == DestinationEmail {
		what = "email address"
		err = s.Store.ChangeEmail(ctx, u.ID, key, now)
	} else {
		err = s.Store.ChangePhone(ctx, u.ID, key, verify.RegionOf(key), now)
	}
	if err != nil {
		return nil, err
	}
	kind := tessera.AuditKeyChanged
	if verb == "recovered" {
		kind = tessera.AuditKeyRecovered
	}
	s.audit(ctx, kind, u, meta, keyType+" "+verb+" to "+obfuscate(methodOf(keyType), key))
	if _, err := s.Store.RevokeSessions(ctx, u.ID, "", keep, "user key "+verb, now); err != nil {
		return nil, err
	}
	if err := s.notify(ctx, u, u.Email, "your "+what+" was "+verb, "The "+what+" of your account was "+verb+" to "+obfuscate(methodOf(keyType), key)+"."); err != nil {
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
func (s *Service) SendKeyRemoving(ctx context.Context, u *tessera.User, keyType string) (*CodeSent, error) {
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
func (s *Service) RemoveKey(ctx context.Context, u *tessera.User, keyType, token string, meta Meta) (*tessera.User, error) {
	if err := requireToken(token); err != nil {
		return nil, err
	}
	if err := canRemove(u, keyType); err != nil {
		return nil, err
	}
	if err := s.checkCode(ctx, u, tessera.MethodPhone, u.Phone, purposeKeyRemoving, keyType, token); err != nil {
		return nil, err
	}
	if err := s.Store.RemovePhone(ctx, u.ID); err != nil {
		return nil, err
	}
	s.audit(ctx, tessera.AuditKeyRemoved, u, meta, keyType+" "+ObfuscatePhone(u.Phone))
	if err := s.notify(ctx, u, u.Email, "your phone number was removed", "The phone number "+ObfuscatePhone(u.Phone)+" was removed from your account."); err != nil {
		return nil, err
	}
	return s.Store.User(ctx, u.ID)
}

// ---- user key recovery ----

// User key recovery is for a user with MFA on who lost the mailbox or the
// phone: the password is proven by the processingId of an MFA login
// (POST /auth/login), the other key by one token, the new key by another.
// With MFA off the user simply logs in and changes the key.

// SendKeyRecoveryVerification sends a token to the key the user still has;
// refused for the key being recovered.
func (s *Service) SendKeyRecoveryVerification(ctx context.Context, processingID, lostKey, dest string) (*CodeSent, error) {
	c, u, err := s.openChallenge(ctx, processingID)
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
	return s.sendCode(ctx, u, method, to, purposeKeyRecoveryCheck, c.ID+"\x00"+lostKey)
}

// SendKeyRecoveryNewKey sends a token to the new email or phone.
func (s *Service) SendKeyRecoveryNewKey(ctx context.Context, processingID, value string) (*CodeSent, error) {
	c, u, err := s.openChallenge(ctx, processingID)
	if err != nil {
		return nil, err
	}
	_, method, key, err := newKey("destination", value)
	if err != nil {
		return nil, err
	}
	sent, err := s.sendCode(ctx, u, method, key, purposeKeyRecoveryNew, c.ID+"\x00"+key)
	if err != nil {
		return nil, err
	}
	sent.Destination = "" // the caller typed it; the flows document answers with the expiration only
	return sent, nil
}

// RecoverKey consumes both tokens and replaces the lost key with the new
// one. The login it started from is used up and every session ends: the
// user logs in again.
func (s *Service) RecoverKey(ctx context.Context, processingID, lostKey, verificationToken, value, newKeyToken string, meta Meta) (*tessera.User, error) {
	if strings.TrimSpace(verificationToken) == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "verificationToken", Error: "is required"})
	}
	if strings.TrimSpace(newKeyToken) == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "newKeyToken", Error: "is required"})
	}
	c, u, err := s.openChallenge(ctx, processingID)
	if err != nil {
		return nil, err
	}
	kt, method, key, err := newKey("newKey", value)
	if err != nil {
		return nil, err
	}
	if kt != lostKey {
		return nil, tessera.Invalid(tessera.FieldError{Path: "newKey", Error: "must be of the type being recovered (" + lostKey + ")"})
	}
	other := DestinationEmail
	if lostKey == DestinationEmail {
		other = DestinationPhone
	}
	otherMethod, otherTo, err := keyAddress(u, other)
	if err != nil {
		return nil, err
	}
	if err := s.checkCode(ctx, u, otherMethod, otherTo, purposeKeyRecoveryCheck, c.ID+"\x00"+lostKey, verificationToken); err != nil {
		return nil, err
	}
	if err := s.checkCode(ctx, u, method, key, purposeKeyRecoveryNew, c.ID+"\x00"+key, newKeyToken); err != nil {
		return nil, err
	}
	if err := s.Store.UseLoginChallenge(ctx, c.ID, s.now()); err != nil {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "Unknown, used or expired processingId: log in again")
	}
	return s.replaceKey(ctx, u, "", lostKey, key, "recovered", meta)
}

// ---- background work ----

// maxBackground bounds the sends running after their request was answered;
// past it new ones are dropped (and logged) rather than piling up.
const maxBackground = 32

// background runs fn after the request, with its own deadline; Drain waits
// for every such fn (tests, and shutdown).
func (s *Service) background(fn func(ctx context.Context)) {
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
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
