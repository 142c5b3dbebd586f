package account

import (
	"context"
	"strconv"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/i18n"
	"github.com/tessera-id/tessera/internal/verify"
)

// The texts of every message the account flows send are in the i18n
// catalogues (msg.code.<kind>.* for codes, msg.notice.<kind>.* for
// security notices), in the language of the user's setting, else of the
// request that caused the message, else English.

// codeMessages names the message of each code purpose: what the code is
// for, in the words the user reads. A purpose without an entry is a bug
// the tests catch (TestEveryCodeSaysWhatItIsFor).
var codeMessages = map[string]string{
	purposeRegister:         "signup",
	"login":                 "login", // the texted second factor of a login (a step-up says so: codeSpec.message)
	"otp:email":             "verify_email",
	"otp:sms":               "verify_phone",
	purposePasswordRecovery: "password_reset",
	purposeKeyRecoveryCheck: "key_recovery",
	purposeKeyRecoveryNew:   "key_recovery_new",
	purposeKeyAdding:        "key_adding",
	purposeKeyChanging:      "key_changing",
	purposeKeyChangingNew:   "key_changing_new",
	purposeKeyRemoving:      "key_removing",
	purposeAntiPhishing:     "anti_phishing",
	purposeMFADisabling:     "mfa_disabling",
}

// lang is the language of a message to u caused by the request of ctx.
func (s *Service) lang(ctx context.Context, u *tessera.User) string {
	return i18n.For(ctx, u.Locale)
}

// codeText is the subject and body of the message that carries a code of
// spec c over method; the body holds verify.PlaceholderCode.
func (s *Service) codeText(lang string, method tessera.Method, c codeSpec) (subject, body string) {
	kind := c.message
	if kind == "" {
		kind = codeMessages[c.purpose]
	}
	args := []string{"service", s.ServiceName, "code", verify.PlaceholderCode, "ttl", durationWords(lang, s.CodeTTL),
		"what", keyWord(lang, method)}
	return i18n.T(lang, "msg.code."+kind+".subject", args...), i18n.T(lang, "msg.code."+kind+".body", args...)
}

// keyWord names the kind of user key a method reaches ("email address",
// "phone number") in lang.
func keyWord(lang string, m tessera.Method) string {
	if m == tessera.MethodEmail {
		return i18n.T(lang, "msg.key.email")
	}
	return i18n.T(lang, "msg.key.phone")
}

// keyTypeWord is keyWord for a user key type (DestinationEmail, DestinationPhone).
func keyTypeWord(lang, keyType string) string { return keyWord(lang, methodOf(keyType)) }

func durationWords(lang string, d time.Duration) string {
	if d%time.Minute == 0 {
		return i18n.T(lang, "msg.minutes", "n", strconv.Itoa(int(d.Minutes())))
	}
	return d.String()
}

// notify emails u the security notice kind (msg.notice.<kind>), its
// placeholders filled from args (name, value pairs), at address (the
// user's email, or the previous one after a change).
func (s *Service) notify(ctx context.Context, u *tessera.User, address, kind string, args ...string) error {
	return s.notifyOn(ctx, s.Engine, u, address, kind, args...)
}

// notifyOn is notify with eng: the service's engine, or one bound to a
// transaction (see inTx), so the notice commits with the change it tells.
func (s *Service) notifyOn(ctx context.Context, eng *verify.Engine, u *tessera.User, address, kind string, args ...string) error {
	lang := s.lang(ctx, u)
	args = append([]string{"service", s.ServiceName}, args...)
	return eng.Notice(ctx, Owner, tessera.MethodEmail, address, tessera.MessageContent{
		Subject: s.ServiceName + ": " + i18n.T(lang, "msg.notice."+kind+".subject", args...),
		Body:    s.antiPhishingLine(u, lang) + i18n.T(lang, "msg.notice."+kind+".body", args...) + "\n\n" + i18n.T(lang, "msg.notice.footer"),
		// A notice may quote what someone else typed (a new device's user
		// agent): it must never become markup in a genuine email.
		PlainText: true,
	})
}

// antiPhishingLine is the first line of every email to u when u has set
// an anti-phishing code: phishing mail cannot show it.
func (s *Service) antiPhishingLine(u *tessera.User, lang string) string {
	if u.AntiPhishingSealed == nil {
		return ""
	}
	code, err := s.Keys.Open(u.AntiPhishingSealed, antiPhishingAD(u.ID))
	if err != nil {
		return ""
	}
	return i18n.T(lang, "msg.anti_phishing", "code", string(code)) + "\n\n"
}
