package account

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image/png"
	"slices"
	"sort"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"github.com/pquerna/otp"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/policy"
	"github.com/tessera-id/tessera/internal/verify"
)

// The channels of the accounts API ("method" of GET /auth/otp/code,
// "channel" of POST /auth/otp/code).
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"
	ChannelTOTP  = "totp"
)

// Countries lists the ISO 3166-1 alpha-2 codes a phone may be entered with:
// every region libphonenumber knows.
func Countries() []string {
	var out []string
	for r := range phonenumbers.GetSupportedRegions() {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// AddPhone sets the user's phone (unverified) and texts a code to verify
// it with POST /auth/otp/code {"channel":"sms"}. A verified phone is
// changed through the user key flows instead.
func (s *Service) AddPhone(ctx context.Context, u *tessera.User, sess *tessera.Session, phone, country string) (*tessera.User, error) {
	if err := s.Authorize(ctx, u, sess, policy.EnrolFactor); err != nil {
		return nil, err
	}
	country = strings.ToUpper(strings.TrimSpace(country))
	if _, ok := phonenumbers.GetSupportedRegions()[country]; !ok {
		return nil, tessera.Invalid(tessera.FieldError{Path: "country", Error: "must be an ISO 3166-1 alpha-2 country code, such as US or GB"})
	}
	num, err := phonenumbers.Parse(strings.TrimSpace(phone), country)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return nil, tessera.Invalid(tessera.FieldError{Path: "phone", Error: "is not a valid phone number for " + country})
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// Checked before the phone is stored, and on the field the user filled
	// (the engine checks every SMS too, but names its "consumer").
	if err := s.Engine.CheckSMSNumber(e164); err != nil {
		return nil, tessera.Invalid(tessera.FieldError{Path: "phone", Error: err.Error()})
	}
	if !u.SMSMFAAt.IsZero() {
		return nil, tessera.Errorf(tessera.ECONFLICT, "Texted codes are a second factor already: change the phone with the user key flows")
	}
	// A phone verified as a user key becomes a second factor by verifying a
	// code again; any other phone replaces the unverified one.
	if u.Phone != e164 || u.PhoneVerifiedAt.IsZero() {
		if err := s.Store.SetPhone(ctx, u.ID, e164, country); err != nil {
			return nil, err
		}
	}
	if _, err := s.sendCode(ctx, u, tessera.MethodPhone, e164, "otp:sms", ""); err != nil {
		return nil, err
	}
	return s.Store.User(ctx, u.ID)
}

// TOTPEnrolment is a new authenticator secret to show the user.
type TOTPEnrolment struct {
	URI    string // otpauth://
	QRCode string // a PNG of the URI, as a data: URL
}

// CreateTOTP creates a (temporary) authenticator secret; the user confirms
// it with POST /auth/otp/code {"channel":"totp"} and a first code.
func (s *Service) CreateTOTP(ctx context.Context, u *tessera.User, sess *tessera.Session) (*TOTPEnrolment, error) {
	if err := s.Authorize(ctx, u, sess, policy.EnrolFactor); err != nil {
		return nil, err
	}
	if !u.TOTPVerifiedAt.IsZero() {
		return nil, tessera.Errorf(tessera.ECONFLICT, "An authenticator app is enrolled already: delete it first")
	}
	out, err := s.Engine.Initiate(ctx, Owner, tessera.MethodGoogleAuth, &verify.InitiateRequest{
		Consumer: u.ID, TOTPAccount: u.Email, Issuer: s.ServiceName,
		Policy:  verify.Policy{ExpiredOn: hms(s.CodeTTL), MaxAttempts: codeMaxAttempts, ForcedVerificationID: verificationID(u.ID, "totp-enrol")},
		Replace: true,
	})
	if err != nil {
		return nil, err
	}
	if out.TOTPURI == "" {
		return nil, tessera.Errorf(tessera.ECONFLICT, "An authenticator app is enrolled already: delete it first")
	}
	key, err := otp.NewKeyFromURL(out.TOTPURI)
	if err != nil {
		return nil, err
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return &TOTPEnrolment{URI: out.TOTPURI, QRCode: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// checkTOTP checks a code from the user's enrolled authenticator app. The
// checks share one verification until it is used or expires, so its
// attempt cap holds: five wrong codes lock these checks for CodeTTL. A
// new one is started with Renew, never Replace: parallel requests that
// all find none (or an expired one) try at once, one of them wins, and
// the others check their code against the one it made, so no request can
// reset the attempts counted meanwhile.
func (s *Service) checkTOTP(ctx context.Context, u *tessera.User, code string, removeSecret bool) error {
	id := verificationID(u.ID, "totp-check")
	v, err := s.Engine.Get(ctx, Owner, tessera.MethodGoogleAuth, id)
	switch {
	case err == nil && v.Locked() && !v.Expired(s.now()):
		return &tessera.Error{Code: tessera.ETOOMANY, Message: "Too many wrong codes: try again later", RetryAfter: int(v.ExpiresAt.Sub(s.now()).Seconds()) + 1}
	case err == nil && !v.Expired(s.now()):
		// still usable: reuse it
	case err == nil || tessera.ErrorCode(err) == tessera.ENOTFOUND:
		_, err := s.Engine.Initiate(ctx, Owner, tessera.MethodGoogleAuth, &verify.InitiateRequest{
			Consumer: u.ID, Issuer: s.ServiceName,
			Policy: verify.Policy{ExpiredOn: hms(s.CodeTTL), MaxAttempts: codeMaxAttempts, ForcedVerificationID: id},
			Renew:  true,
		})
		if err != nil && tessera.ErrorCode(err) != tessera.ECONFLICT {
			return err
		}
	default:
		return err
	}
	_, err = s.Engine.Validate(ctx, Owner, tessera.MethodGoogleAuth, id, strings.TrimSpace(code), removeSecret)
	return codeError(err)
}

// DeleteTOTP removes the authenticator app after a valid code from it, and
// ends the user's other sessions.
func (s *Service) DeleteTOTP(ctx context.Context, u *tessera.User, sess *tessera.Session, code string, meta Meta) (*tessera.User, error) {
	if err := s.Authorize(ctx, u, sess, policy.RemoveFactor); err != nil {
		return nil, err
	}
	if u.TOTPVerifiedAt.IsZero() {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "No authenticator app is enrolled")
	}
	if code == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "x-otp", Error: "header is required: a code from the authenticator app"})
	}
	if err := s.checkTOTP(ctx, u, code, true); err != nil {
		return nil, err
	}
	err := s.inTx(ctx, func(t *txn) error {
		if err := t.store.SetTOTPVerified(ctx, u.ID, zeroTime); err != nil {
			return err
		}
		if _, err := t.store.RevokeSessions(ctx, u.ID, "", sess.ID, "MFA changed", s.now()); err != nil {
			return err
		}
		if err := s.notifyOn(ctx, t.engine, u, u.Email, "totp_removed"); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditMFADisabled, u, meta, ChannelTOTP)
	})
	if err != nil {
		return nil, err
	}
	return s.Store.User(ctx, u.ID)
}

// SendChannelCode sends a code to the user's email or phone
// (GET /auth/otp/code?method=…), to verify that channel.
func (s *Service) SendChannelCode(ctx context.Context, u *tessera.User, sess *tessera.Session, method string) (*CodeSent, error) {
	if err := s.Authorize(ctx, u, sess, policy.EnrolFactor); err != nil {
		return nil, err
	}
	switch method {
	case ChannelEmail:
		return s.sendCode(ctx, u, tessera.MethodEmail, u.Email, "otp:email", "")
	case ChannelSMS:
		if u.Phone == "" {
			return nil, tessera.Invalid(tessera.FieldError{Path: "method", Error: "no phone number is set: add one with POST /auth/otp/methods/sms"})
		}
		return s.sendCode(ctx, u, tessera.MethodPhone, u.Phone, "otp:sms", "")
	}
	return nil, tessera.Invalid(tessera.FieldError{Path: "method", Error: "must be email or sms"})
}

// ChannelVerified is VerifyChannel's result.
type ChannelVerified struct {
	User *tessera.User
	// RecoveryCodes is set when this verification turned MFA on for the
	// first time: ten single-use codes, shown this once.
	RecoveryCodes []string
}

// VerifyChannel verifies a configured, not yet verified channel with a code
// (POST /auth/otp/code with x-otp).
// Turning a second factor on ends the user's other sessions: one of them
// may be whoever the user is locking out.
func (s *Service) VerifyChannel(ctx context.Context, u *tessera.User, sess *tessera.Session, channel, code string, meta Meta) (*ChannelVerified, error) {
	if err := s.Authorize(ctx, u, sess, policy.EnrolFactor); err != nil {
		return nil, err
	}
	if code == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "x-otp", Error: "header is required"})
	}
	now := s.now()
	mfaBefore := policy.Of(u, 0).MFA()
	var enrol func(store tessera.AccountStore) error // turns the factor on
	switch channel {
	case ChannelEmail:
		if !u.EmailVerifiedAt.IsZero() {
			return nil, tessera.Errorf(tessera.ECONFLICT, "The email address is verified already")
		}
		if err := s.checkCode(ctx, u, tessera.MethodEmail, u.Email, "otp:email", "", code); err != nil {
			return nil, err
		}
		if err := s.Store.SetEmailVerified(ctx, u.ID, u.Email, now); err != nil {
			return nil, err
		}
	case ChannelSMS:
		if u.Phone == "" {
			return nil, tessera.Errorf(tessera.ENOTFOUND, "No phone number is set: add one with POST /auth/otp/methods/sms")
		}
		if !u.SMSMFAAt.IsZero() {
			return nil, tessera.Errorf(tessera.ECONFLICT, "The phone number is verified already")
		}
		if err := s.checkCode(ctx, u, tessera.MethodPhone, u.Phone, "otp:sms", "", code); err != nil {
			return nil, err
		}
		enrol = func(store tessera.AccountStore) error { return store.SetPhoneVerified(ctx, u.ID, u.Phone, now) }
	case ChannelTOTP:
		if !u.TOTPVerifiedAt.IsZero() {
			return nil, tessera.Errorf(tessera.ECONFLICT, "The authenticator app is verified already")
		}
		_, err := s.Engine.Validate(ctx, Owner, tessera.MethodGoogleAuth, verificationID(u.ID, "totp-enrol"), strings.TrimSpace(code), false)
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			return nil, tessera.Errorf(tessera.ENOTFOUND, "No authenticator app to verify: create one with POST /auth/otp/methods/totp")
		}
		if err := codeError(err); err != nil {
			return nil, err
		}
		enrol = func(store tessera.AccountStore) error { return store.SetTOTPVerified(ctx, u.ID, now) }
	default:
		return nil, tessera.Invalid(tessera.FieldError{Path: "channel", Error: "must be email, sms or totp"})
	}
	if enrol != nil {
		notice := map[string]string{ChannelSMS: "sms_factor_added", ChannelTOTP: "totp_added"}[channel]
		detail := channel
		if !mfaBefore {
			detail += "; MFA on, recovery codes issued"
		}
		err := s.inTx(ctx, func(t *txn) error {
			if err := enrol(t.store); err != nil {
				return err
			}
			if _, err := t.store.RevokeSessions(ctx, u.ID, "", sess.ID, "MFA changed", now); err != nil {
				return err
			}
			// The user just proved the new factor on this session: it
			// reaches AAL 2 (its auth time stays that of the password).
			aal, amr := assurance(append(slices.Clone(sess.AMR), map[string]string{ChannelSMS: policy.SMS, ChannelTOTP: policy.TOTP}[channel]))
			if err := t.store.SetSessionAuth(ctx, sess.ID, aal, amr, sess.AuthTime, now); err != nil {
				return err
			}
			if err := s.notifyOn(ctx, t.engine, u, u.Email, notice); err != nil {
				return err
			}
			return s.auditIn(ctx, t, tessera.AuditMFAEnabled, u, meta, detail)
		})
		if err != nil {
			return nil, err
		}
	}
	u, err := s.Store.User(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	out := &ChannelVerified{User: u}
	if !mfaBefore && policy.Of(u, 0).MFA() {
		if out.RecoveryCodes, err = s.NewRecoveryCodes(ctx, u); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RegenerateRecoveryCodes issues a new set. The session is privileged
// already (the policy checked it); with an authenticator app enrolled a
// fresh code from it is asked as well (x-otp), as the reference does.
// A texted code is not asked: the one that verified the phone must not
// serve a second action, and the step-up proved the phone already.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, u *tessera.User, sess *tessera.Session, code string, meta Meta) ([]string, error) {
	if err := s.Authorize(ctx, u, sess, policy.RegenerateRecoveryCodes); err != nil {
		return nil, err
	}
	if !policy.Of(u, 0).MFA() {
		return nil, tessera.Errorf(tessera.ECONFLICT, "MFA is off: recovery codes come with the first second factor")
	}
	if u.TOTPEnrolled() {
		if code == "" {
			return nil, tessera.Invalid(tessera.FieldError{Path: "x-otp", Error: "header is required: a code from the authenticator app"})
		}
		if err := s.checkTOTP(ctx, u, code, false); err != nil {
			return nil, err
		}
	}
	codes, err := s.NewRecoveryCodes(ctx, u)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, tessera.AuditRecoveryCodesRegen, u, meta, fmt.Sprintf("%d new codes; the old set is void", len(codes)))
	return codes, s.notify(ctx, u, u.Email, "recovery_codes")
}
