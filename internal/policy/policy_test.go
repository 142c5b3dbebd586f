package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

func TestSecondFactors(t *testing.T) {
	for _, c := range []struct {
		name   string
		f      Factors
		proven []string
		want   []string
	}{
		{"MFA off", Factors{}, []string{Password}, nil},
		{"app", Factors{TOTP: true, RecoveryCodes: true}, []string{Password}, []string{TOTP, RecoveryCode}},
		{"app and SMS", Factors{TOTP: true, SMS: true, RecoveryCodes: true}, []string{Password}, []string{TOTP, SMS, RecoveryCode}},
		{"SMS only, codes used up", Factors{SMS: true}, []string{Password}, []string{SMS}},
		{"SMS proved the first step", Factors{SMS: true, RecoveryCodes: true}, []string{Password, SMS}, []string{RecoveryCode}},
		{"email never", Factors{TOTP: true}, []string{Password, Email}, []string{TOTP}},
		{"a passkey drops SMS, keeps the app", Factors{Passkey: true, TOTP: true, SMS: true, RecoveryCodes: true}, []string{Password}, []string{Passkey, TOTP, RecoveryCode}},
		{"SMS recovered the password", Factors{SMS: true, RecoveryCodes: true}, PasswordProves(SMS), []string{RecoveryCode}},
	} {
		if got := SecondFactors(c.f, c.proven); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if MayCompleteWith(c.f, c.proven, Email) {
			t.Errorf("%s: an emailed code completes a second factor", c.name)
		}
	}
}

func TestPrivileged(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	mfa, noMFA := Factors{TOTP: true}, Factors{}
	for _, c := range []struct {
		name string
		f    Factors
		s    Session
		ok   bool
	}{
		{"fresh aal1, MFA off", noMFA, Session{AAL: 1, AuthTime: now.Add(-time.Minute)}, true},
		{"fresh aal1, MFA on", mfa, Session{AAL: 1, AuthTime: now.Add(-time.Minute)}, false},
		{"fresh aal2, MFA on", mfa, Session{AAL: 2, AuthTime: now.Add(-time.Minute)}, true},
		{"exactly the max age", mfa, Session{AAL: 2, AuthTime: now.Add(-DefaultPrivilegedMaxAge)}, true},
		{"older than the max age", mfa, Session{AAL: 2, AuthTime: now.Add(-DefaultPrivilegedMaxAge - time.Second)}, false},
		{"stale aal1, MFA off", noMFA, Session{AAL: 1, AuthTime: now.Add(-time.Hour)}, false},
	} {
		err := Privileged(c.f, c.s, ChangePassword, now, DefaultPrivilegedMaxAge)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && tessera.ErrorCode(err) != tessera.EREAUTH {
			t.Errorf("%s: code %s, want %s", c.name, tessera.ErrorCode(err), tessera.EREAUTH)
		}
	}
}

func TestMayRemove(t *testing.T) {
	for _, c := range []struct {
		amr      []string
		removing string
		ok       bool
	}{
		{[]string{Password, TOTP, MFA}, TOTP, true},
		{[]string{Password, RecoveryCode, MFA}, TOTP, true},
		{[]string{Password, SMS, MFA}, TOTP, false},
		{[]string{Password, Email}, TOTP, false},
		{[]string{Password}, SMS, false},
		{[]string{Password, SMS, MFA}, SMS, true},
		{[]string{Password, TOTP, MFA}, SMS, true},
		{[]string{Password, TOTP, MFA}, Passkey, false},
		{[]string{Passkey, UserVerified, MFA}, Passkey, true},
		{[]string{Password, RecoveryCode, MFA}, Passkey, true},
		{[]string{Passkey, UserVerified, MFA}, TOTP, true},
	} {
		if err := MayRemove(Session{AMR: c.amr}, c.removing); (err == nil) != c.ok {
			t.Errorf("amr %v removing %s: %v, want ok=%v", c.amr, c.removing, err, c.ok)
		}
	}
}

func TestAAL(t *testing.T) {
	for _, c := range []struct {
		amr  []string
		want int
	}{
		{[]string{Password}, 1},
		{[]string{Password, Email}, 1},
		{[]string{Password, TOTP}, 2},
		{[]string{Password, SMS}, 2},
		{[]string{Password, RecoveryCode}, 2},
		{[]string{Passkey, UserVerified}, 2},
	} {
		if got := AAL(c.amr); got != c.want {
			t.Errorf("AAL(%v) = %d, want %d", c.amr, got, c.want)
		}
	}
}

// TestMayContinue: single sign-on only from a session at the assurance a
// login would reach now, however old its proof (the app's session keeps
// that auth time, so its privileged actions still step up).
func TestMayContinue(t *testing.T) {
	for _, c := range []struct {
		f   Factors
		aal int
		ok  bool
	}{
		{Factors{}, 1, true},
		{Factors{TOTP: true}, 1, false},
		{Factors{TOTP: true}, 2, true},
		{Factors{Passkeys: true}, 1, false},
		{Factors{RecoveryCodes: true}, 1, true}, // recovery codes alone are no second factor
	} {
		if got := MayContinue(c.f, Session{AAL: c.aal}); got != c.ok {
			t.Errorf("factors %+v, session AAL %d: %v, want %v", c.f, c.aal, got, c.ok)
		}
	}
}
