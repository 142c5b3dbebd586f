// Package policy is the one place that decides who may do what with an
// account: which factors complete a login, which actions need a privileged
// session, and what a recovery grants. It looks only at what the user has
// enrolled (Factors) and at how the session was authenticated (its AAL,
// AMR and auth time), never at the shape of a request. The README's table
// "What each action needs" is this file in prose.
package policy

import (
	"fmt"
	"slices"
	"time"

	"github.com/tessera-id/tessera"
)

// Methods a user proves something with, as sessions and ID tokens name
// them in amr (RFC 8176 where it has a name).
const (
	Password     = "pwd"
	TOTP         = "otp" // a code from an authenticator app
	SMS          = "sms"
	Email        = "email"
	RecoveryCode = "recovery_code"
	// Passkey is a WebAuthn passkey ("hwk": a key held in hardware or a
	// synced keychain); UserVerified ("user") goes with it, since Tessera
	// always asks the authenticator to verify the user (PIN, biometrics).
	// The two together are two factors: something held and something
	// known or been.
	Passkey      = "hwk"
	UserVerified = "user"
	// MFA is added to amr when two distinct factors were used (AAL 2).
	MFA = "mfa"
)

// DefaultPrivilegedMaxAge is how long after the user last proved their
// factors a session may still do privileged actions.
const DefaultPrivilegedMaxAge = 10 * time.Minute

// Factors is what a user has enrolled, as the policy sees it. Of builds it
// from the account; nothing else decides whether MFA is on.
type Factors struct {
	// Passkeys: the user has passkeys (MFA is on); Passkey: one of them is
	// usable (not marked as cloned), so it can complete a login.
	Passkeys      bool
	Passkey       bool
	TOTP          bool // an authenticator app is enrolled
	SMS           bool // the user turned texted codes on as a second factor
	RecoveryCodes bool // unused recovery codes are left
}

// Of returns the factors of u, who has recoveryCodesLeft unused codes.
func Of(u *tessera.User, recoveryCodesLeft int) Factors {
	return Factors{Passkeys: u.HasPasskeys(), Passkey: u.PasskeyUsable, TOTP: u.TOTPEnrolled(), SMS: u.SMSFactorOn(), RecoveryCodes: recoveryCodesLeft > 0}
}

// MFA reports whether logging in takes a second factor.
func (f Factors) MFA() bool { return f.Passkeys || f.Passkey || f.TOTP || f.SMS }

// FullAAL is the assurance level the user set up: 2 with MFA on, else 1.
// Privileged actions need it.
func (f Factors) FullAAL() int {
	if f.MFA() {
		return 2
	}
	return 1
}

// strength orders second factors by what an attacker must hold to pass
// them: a passkey (a device that signs for this site only, so no phishing
// page can relay it) beats an authenticator app (a device and its secret,
// whose codes can be relayed), which beats a phone number (a SIM swap),
// which beats a mailbox. A recovery code stands in for any of them: it is
// what the owner printed when enrolling.
func strength(method string) int {
	switch method {
	case Passkey, RecoveryCode:
		return 4
	case TOTP:
		return 3
	case SMS:
		return 2
	case Email:
		return 1
	}
	return 0
}

// SecondFactors lists the methods that may complete a login (or a step-up,
// or a key recovery) of a user with f, given the methods this flow has
// proven already ("highest available"):
//   - a passkey, for a user who has one;
//   - the authenticator app and texted codes, each only if enrolled as a
//     factor; a phone that is merely a user key is never one; and once the
//     user has a passkey, texted codes no longer (a SIM swap must not
//     undercut it), while the app still does;
//   - never an emailed code: the mailbox is where passwords are recovered
//     to, so accepting it would make the mailbox alone enough for a
//     session;
//   - a recovery code, while any are left;
//   - never a method the flow proved already: a factor does not count
//     twice (a key recovery verified by SMS cannot use SMS again).
func SecondFactors(f Factors, proven []string) []string {
	var out []string
	for _, m := range []struct {
		method string
		has    bool
	}{{Passkey, f.Passkey}, {TOTP, f.TOTP}, {SMS, f.SMS && !f.Passkeys && !f.Passkey}, {RecoveryCode, f.RecoveryCodes}} {
		if m.has && !slices.Contains(proven, m.method) {
			out = append(out, m.method)
		}
	}
	return out
}

// PasswordProves lists what a password proves in a login: the password,
// and, when a recovery set it (recoveredVia: the channel of its token),
// that channel too. Whoever holds only the phone can reset the password by
// SMS; the phone must then not pass as the second factor as well.
func PasswordProves(recoveredVia string) []string {
	if recoveredVia == "" {
		return []string{Password}
	}
	return []string{Password, recoveredVia}
}

// MayCompleteWith reports whether method completes the second factor.
func MayCompleteWith(f Factors, proven []string, method string) bool {
	return slices.Contains(SecondFactors(f, proven), method)
}

// Session is how a session was authenticated.
type Session struct {
	AAL      int
	AMR      []string
	AuthTime time.Time
}

// Action is something only a privileged session may do.
type Action string

// The privileged actions.
const (
	ChangePassword          Action = "change_password"
	AddKey                  Action = "add_key"    // a phone number as a user key
	ChangeKey               Action = "change_key" // the email or the phone
	RemoveKey               Action = "remove_key"
	EnrolFactor             Action = "enrol_factor" // authenticator app, SMS as a factor
	RemoveFactor            Action = "remove_factor"
	RegenerateRecoveryCodes Action = "regenerate_recovery_codes"
	ChangeAntiPhishing      Action = "change_anti_phishing"
	DisableMFA              Action = "disable_mfa"
)

// Privileged returns nil if a session authenticated as s may do action at
// now: it reached the user's full assurance level and its auth time is at
// most maxAge old. Otherwise it returns EREAUTH, and the user steps up
// with POST /auth/reauthenticate. Every Action has the same rule today;
// the action is named so the refusal can say what it was for.
func Privileged(f Factors, s Session, action Action, now time.Time, maxAge time.Duration) error {
	if s.AAL < f.FullAAL() {
		return reauth(action, "this session did not use your second factor")
	}
	if now.Sub(s.AuthTime) > maxAge {
		return reauth(action, fmt.Sprintf("you last proved your password more than %s ago", maxAge))
	}
	return nil
}

// MayContinue reports whether a session authenticated as s may sign its
// user in to an app without a new login (single sign-on on the hosted
// pages): only when it reached what a login would reach now, the user's
// full assurance level. A session begun before the user turned MFA on
// does not: the user logs in again, second factor included. The app's
// session keeps s's methods and auth time, so single sign-on never makes
// a proof look fresher or stronger than it was.
func MayContinue(f Factors, s Session) bool { return s.AAL >= f.FullAAL() }

// MayRemove reports whether a session authenticated with amr may remove a
// factor of the given method: it must have used a factor at least as
// strong (or a recovery code). The mailbox alone never removes an
// authenticator app, and a texted code never removes one either.
func MayRemove(s Session, method string) error {
	for _, used := range s.AMR {
		if used != Password && strength(used) >= strength(method) {
			return nil
		}
	}
	return &tessera.Error{Code: tessera.EREAUTH,
		Message: fmt.Sprintf("Removing this factor needs a session that used it (or a recovery code): step up with POST /auth/reauthenticate and method %s or %s", method, RecoveryCode)}
}

// Strongest returns the strongest second factor of f ("" with MFA off):
// what turning MFA off removes, so what the session must match.
func Strongest(f Factors) string {
	switch {
	case f.Passkeys || f.Passkey:
		return Passkey
	case f.TOTP:
		return TOTP
	case f.SMS:
		return SMS
	}
	return ""
}

// What a recovery grants: nothing but the change. Password recovery and
// key recovery prove the mailbox or the phone, not the second factor, so
// neither hands out a session (account.ResetPassword and RecoverKey
// return no tokens): a user with MFA on logs in afterwards and passes
// SecondFactors like anyone else, and PasswordProves keeps the channel
// that recovered the password from passing as the second factor.

// AAL is the assurance level reached by the methods in amr: 2 once a
// second factor joined the password. An emailed code is never one (see
// SecondFactors): it proves the address, as at registration.
func AAL(amr []string) int {
	for _, m := range amr {
		if m == TOTP || m == SMS || m == RecoveryCode || m == Passkey {
			return 2
		}
	}
	return 1
}

func reauth(action Action, why string) error {
	return &tessera.Error{Code: tessera.EREAUTH,
		Message: fmt.Sprintf("This action (%s) needs a recent login: %s. Step up with POST /auth/reauthenticate", action, why)}
}
