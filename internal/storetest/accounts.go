package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// RunAccounts runs the conformance suite of tessera.AccountStore. open
// returns a fresh, empty store for each test.
func RunAccounts(t *testing.T, open func(t *testing.T) tessera.AccountStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s tessera.AccountStore)
	}{
		{"UserCreateAndGet", testUserCreateAndGet},
		{"UserParallelCreatesSameEmail", testUserParallelCreates},
		{"ReserveLoginLockAndReset", testReserveLogin},
		{"ReserveLoginParallelHoldsTheLock", testReserveLoginParallel},
		{"UserUpdates", testUserUpdates},
		{"UserLocale", testUserLocale},
		{"CredentialsAfterCreate", testCredentialsAfterCreate},
		{"CredentialsFollowUpdates", testCredentialsFollowUpdates},
		{"CredentialsChangeEmail", testCredentialsChangeEmail},
		{"CredentialsChangeEmailParallel", testCredentialsChangeEmailParallel},
		{"CredentialsRecoveryCodes", testCredentialsRecoveryCodes},
		{"Sessions", testSessions},
		{"NoSessionForADisabledUser", testNoSessionForADisabledUser},
		{"RotateRefreshToken", testRotateRefreshToken},
		{"RotateRefreshTokenParallel", testRotateRefreshTokenParallel},
		{"DeleteStaleKeepsSpentRefreshTokens", testDeleteStaleKeepsSpentRefreshTokens},
		{"RecoveryCodes", testRecoveryCodes},
		{"RecoveryCodeParallelUse", testRecoveryCodeParallel},
		{"Flows", testFlows},
		{"FlowsParallel", testFlowsParallel},
		{"PendingRegistrations", testPendingRegistrations},
		{"SessionAuth", testSessionAuth},
		{"InTx", testInTx},
		{"Passkeys", testPasskeys},
		{"SigningKeys", testSigningKeys},
		{"AuditAppendAndList", testAuditAppendAndList},
		{"AuditFilters", testAuditFilters},
		{"AuditParallelAppends", testAuditParallel},
		{"AuditPrune", testAuditPrune},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Each case has a store of its own; side by side, one waits
			// on the database while another runs.
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func newUser(id, email string) *tessera.User {
	return &tessera.User{ID: id, Email: email, PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		PasswordChanged: t0, Status: tessera.UserUnverified, CreatedAt: t0}
}

func createUser(t *testing.T, s tessera.AccountStore, id, email string) *tessera.User {
	t.Helper()
	u := newUser(id, email)
	must(t, s.CreateUser(ctx(), u))
	return u
}

func getUser(t *testing.T, s tessera.AccountStore, id string) *tessera.User {
	t.Helper()
	u, err := s.User(ctx(), id)
	must(t, err)
	return u
}

// lockAt locks for d from the n-th failure on.
func lockAt(n int, d time.Duration) func(int) time.Duration {
	return func(failures int) time.Duration {
		if failures >= n {
			return d
		}
		return 0
	}
}

func sameUser(t *testing.T, got, want *tessera.User) {
	t.Helper()
	if got.ID != want.ID || got.Email != want.Email || !got.EmailVerifiedAt.Equal(want.EmailVerifiedAt) ||
		got.Phone != want.Phone || got.PhoneCountry != want.PhoneCountry || !got.PhoneVerifiedAt.Equal(want.PhoneVerifiedAt) ||
		got.PasswordHash != want.PasswordHash || !got.PasswordChanged.Equal(want.PasswordChanged) || got.Status != want.Status ||
		!got.TOTPVerifiedAt.Equal(want.TOTPVerifiedAt) || !got.LastLoginAt.Equal(want.LastLoginAt) ||
		got.LastLoginDevice != want.LastLoginDevice || got.FailedLogins != want.FailedLogins ||
		!got.LockedUntil.Equal(want.LockedUntil) || !got.CreatedAt.Equal(want.CreatedAt) || got.Locale != want.Locale {
		t.Fatalf("read back %+v\nwrote %+v", got, want)
	}
}

func testUserCreateAndGet(t *testing.T, s tessera.AccountStore) {
	full := &tessera.User{
		ID: "u1", Email: "Alice@example.com", EmailVerifiedAt: t0.Add(time.Minute),
		Phone: "+41791234567", PhoneCountry: "CH", PhoneVerifiedAt: t0.Add(2 * time.Minute),
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", PasswordChanged: t0.Add(3 * time.Minute),
		Status: tessera.UserActive, TOTPVerifiedAt: t0.Add(4 * time.Minute),
		LastLoginAt: t0.Add(5 * time.Minute), LastLoginDevice: "Mozilla/5.0", FailedLogins: 2,
		LockedUntil: t0.Add(6 * time.Minute), CreatedAt: t0,
	}
	must(t, s.CreateUser(ctx(), full))
	got, err := s.User(ctx(), "u1")
	must(t, err)
	sameUser(t, got, full)
	if !(got.TOTPEnrolled() || got.SMSFactorOn()) {
		t.Fatal("a user with TOTP and a verified phone reports no MFA")
	}

	// The zero times of a fresh account stay zero.
	bare := newUser("u2", "bob@example.com")
	must(t, s.CreateUser(ctx(), bare))
	got, err = s.User(ctx(), "u2")
	must(t, err)
	sameUser(t, got, bare)
	if got.TOTPEnrolled() || got.SMSFactorOn() {
		t.Fatal("a fresh user reports MFA")
	}

	// Lookup by email ignores case.
	for _, e := range []string{"Alice@example.com", "alice@example.com", "ALICE@EXAMPLE.COM"} {
		got, err := s.UserByEmail(ctx(), e)
		must(t, err)
		if got.ID != "u1" || got.Email != "Alice@example.com" {
			t.Fatalf("UserByEmail(%q) = %+v", e, got)
		}
	}
	// So does uniqueness.
	wantCode(t, s.CreateUser(ctx(), newUser("u3", "alice@EXAMPLE.com")), tessera.ECONFLICT)
	wantCode(t, s.CreateUser(ctx(), newUser("u4", "Bob@Example.Com")), tessera.ECONFLICT)
	_, err = s.User(ctx(), "u3")
	wantCode(t, err, tessera.ENOTFOUND)
	got, err = s.UserByEmail(ctx(), "alice@example.com")
	must(t, err)
	sameUser(t, got, full) // the rejected create changed nothing

	_, err = s.User(ctx(), "nobody")
	wantCode(t, err, tessera.ENOTFOUND)
	_, err = s.UserByEmail(ctx(), "nobody@example.com")
	wantCode(t, err, tessera.ENOTFOUND)
}

// testUserParallelCreates registers one address 30 times at once, in
// different cases: one account, 29 conflicts.
// testUserLocale: the language chosen for a user's messages is kept at
// creation, changed and cleared, and touches nothing else.
func testUserLocale(t *testing.T, s tessera.AccountStore) {
	u := newUser("u1", "erika@example.com")
	u.Locale = "de"
	must(t, s.CreateUser(ctx(), u))
	sameUser(t, getUser(t, s, "u1"), u)
	createUser(t, s, "u2", "other@example.com")
	must(t, s.SetLocale(ctx(), "u2", "de"))
	must(t, s.SetLocale(ctx(), "u1", "en"))
	must(t, s.SetLocale(ctx(), "u1", "en")) // the same again is no error
	if got := getUser(t, s, "u1"); got.Locale != "en" || got.Email != "erika@example.com" {
		t.Fatalf("after SetLocale en: %+v", got)
	}
	must(t, s.SetLocale(ctx(), "u1", ""))
	if got := getUser(t, s, "u1"); got.Locale != "" {
		t.Fatalf("after clearing: locale %q", got.Locale)
	}
	if got := getUser(t, s, "u2"); got.Locale != "de" {
		t.Fatalf("another user's locale changed: %q", got.Locale)
	}
	wantCode(t, s.SetLocale(ctx(), "nobody", "de"), tessera.ENOTFOUND)
}

func testUserParallelCreates(t *testing.T, s tessera.AccountStore) {
	var ok, conflict atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			email := "carol@example.com"
			if i%2 == 1 {
				email = strings.ToUpper(email)
			}
			err := s.CreateUser(ctx(), newUser(fmt.Sprint("u", i), email))
			switch tessera.ErrorCode(err) {
			case "":
				ok.Add(1)
			case tessera.ECONFLICT:
				conflict.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if ok.Load() != 1 || conflict.Load() != 29 {
		t.Fatalf("%d creates succeeded and %d conflicted, want 1 and 29", ok.Load(), conflict.Load())
	}
	if _, err := s.UserByEmail(ctx(), "Carol@Example.com"); err != nil {
		t.Fatal(err)
	}
}

func testReserveLogin(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	var seen []int
	lockFor := func(f int) time.Duration {
		seen = append(seen, f)
		return lockAt(3, 10*time.Minute)(f)
	}
	for i := 1; i <= 2; i++ {
		u, err := s.ReserveLogin(ctx(), "u1", t0, lockFor)
		must(t, err)
		if u == nil || u.ID != "u1" || u.PasswordHash == "" {
			t.Fatalf("reserve %d returned %+v", i, u)
		}
		if got := getUser(t, s, "u1"); got.FailedLogins != i || !got.LockedUntil.IsZero() {
			t.Fatalf("after %d attempts stored failures %d, locked until %v", i, got.FailedLogins, got.LockedUntil)
		}
	}
	// The third attempt still counts, and earns the lock.
	_, err := s.ReserveLogin(ctx(), "u1", t0, lockFor)
	must(t, err)
	if got := getUser(t, s, "u1"); got.FailedLogins != 3 || !got.LockedUntil.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("after 3 attempts stored failures %d, locked until %v", got.FailedLogins, got.LockedUntil)
	}
	if !slices.Equal(seen, []int{1, 2, 3}) {
		t.Fatalf("lockFor called with %v, want [1 2 3]", seen)
	}
	// Locked: refused with the user, and not counted.
	u, err := s.ReserveLogin(ctx(), "u1", t0.Add(9*time.Minute), lockFor)
	wantCode(t, err, tessera.ELOCKED)
	if u == nil || u.ID != "u1" || !u.LockedUntil.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("locked login returned %+v", u)
	}
	if got := getUser(t, s, "u1"); got.FailedLogins != 3 {
		t.Fatalf("a locked attempt was counted: failures %d", got.FailedLogins)
	}
	// Once the lock ends, attempts count again.
	_, err = s.ReserveLogin(ctx(), "u1", t0.Add(10*time.Minute), lockFor)
	must(t, err)
	if got := getUser(t, s, "u1"); got.FailedLogins != 4 || !got.LockedUntil.Equal(t0.Add(20*time.Minute)) {
		t.Fatalf("after the lock: failures %d, locked until %v", got.FailedLogins, got.LockedUntil)
	}

	// ClearLoginFailures resets the count and the lock.
	must(t, s.ClearLoginFailures(ctx(), "u1"))
	if got := getUser(t, s, "u1"); got.FailedLogins != 0 || !got.LockedUntil.IsZero() || !got.LastLoginAt.IsZero() {
		t.Fatalf("after ClearLoginFailures: %+v", got)
	}
	_, err = s.ReserveLogin(ctx(), "u1", t0.Add(11*time.Minute), lockFor)
	must(t, err)

	// So does LoginSucceeded, which also records the login: here it
	// clears a lock.
	for i := 0; i < 2; i++ {
		_, err = s.ReserveLogin(ctx(), "u1", t0.Add(11*time.Minute), lockFor)
		must(t, err)
	}
	if got := getUser(t, s, "u1"); got.FailedLogins != 3 || got.LockedUntil.IsZero() {
		t.Fatalf("before LoginSucceeded: failures %d, locked until %v", got.FailedLogins, got.LockedUntil)
	}
	at := t0.Add(12 * time.Minute)
	must(t, s.LoginSucceeded(ctx(), "u1", at, "curl/8.0"))
	got := getUser(t, s, "u1")
	if got.FailedLogins != 0 || !got.LockedUntil.IsZero() || !got.LastLoginAt.Equal(at) || got.LastLoginDevice != "curl/8.0" {
		t.Fatalf("after LoginSucceeded: %+v", got)
	}
	_, err = s.ReserveLogin(ctx(), "u1", at, lockFor)
	must(t, err)

	_, err = s.ReserveLogin(ctx(), "nobody", t0, lockFor)
	wantCode(t, err, tessera.ENOTFOUND)
	wantCode(t, s.ClearLoginFailures(ctx(), "nobody"), tessera.ENOTFOUND)
	wantCode(t, s.LoginSucceeded(ctx(), "nobody", t0, "x"), tessera.ENOTFOUND)
}

// testReserveLoginParallel fires 30 logins at once at an account that locks
// at the 5th failure: exactly 5 are counted, the rest find it locked.
func testReserveLoginParallel(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	var ok, locked atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := s.ReserveLogin(ctx(), "u1", t0, lockAt(5, time.Hour))
			switch tessera.ErrorCode(err) {
			case "":
				ok.Add(1)
			case tessera.ELOCKED:
				locked.Add(1)
				if u == nil || u.ID != "u1" || !u.LockedUntil.Equal(t0.Add(time.Hour)) {
					t.Errorf("locked login returned %+v", u)
				}
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 5 || locked.Load() != 25 {
		t.Fatalf("%d logins counted and %d locked out, want 5 and 25", ok.Load(), locked.Load())
	}
	if got := getUser(t, s, "u1"); got.FailedLogins != 5 || !got.LockedUntil.Equal(t0.Add(time.Hour)) {
		t.Fatalf("stored failures %d, locked until %v; want 5 and %v", got.FailedLogins, got.LockedUntil, t0.Add(time.Hour))
	}
}

func testUserUpdates(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "dave@example.com")
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)

	// Email: only the user's current address.
	wantCode(t, s.SetEmailVerified(ctx(), "u1", "other@example.com", t1), tessera.ENOTFOUND)
	if got := getUser(t, s, "u1"); !got.EmailVerifiedAt.IsZero() || got.Status != tessera.UserUnverified {
		t.Fatalf("verifying another address changed the user: %+v", got)
	}
	wantCode(t, s.SetEmailVerified(ctx(), "nobody", "dave@example.com", t1), tessera.ENOTFOUND)
	must(t, s.SetEmailVerified(ctx(), "u1", "dave@example.com", t1))
	if got := getUser(t, s, "u1"); !got.EmailVerifiedAt.Equal(t1) || got.Status != tessera.UserActive {
		t.Fatalf("after SetEmailVerified: %+v", got)
	}
	// A disabled account stays disabled when its address is confirmed.
	createUser(t, s, "u2", "erin@example.com")
	must(t, s.SetUserStatus(ctx(), "u2", tessera.UserDisabled))
	must(t, s.SetEmailVerified(ctx(), "u2", "erin@example.com", t1))
	if got := getUser(t, s, "u2"); got.Status != tessera.UserDisabled || !got.EmailVerifiedAt.Equal(t1) {
		t.Fatalf("confirming a disabled user's email: %+v", got)
	}

	// Phone: unverified ones can be replaced, a verified one cannot.
	must(t, s.SetPhone(ctx(), "u1", "+15551230001", "US"))
	if got := getUser(t, s, "u1"); got.Phone != "+15551230001" || got.PhoneCountry != "US" || !got.PhoneVerifiedAt.IsZero() || (got.TOTPEnrolled() || got.SMSFactorOn()) {
		t.Fatalf("after SetPhone: %+v", got)
	}
	must(t, s.SetPhone(ctx(), "u1", "+41791234567", "CH"))
	wantCode(t, s.SetPhoneVerified(ctx(), "u1", "+15551230001", t2), tessera.ENOTFOUND) // no longer the user's
	if got := getUser(t, s, "u1"); !got.PhoneVerifiedAt.IsZero() {
		t.Fatalf("verifying a replaced phone verified %+v", got)
	}
	must(t, s.SetPhoneVerified(ctx(), "u1", "+41791234567", t2))
	got := getUser(t, s, "u1")
	if got.Phone != "+41791234567" || got.PhoneCountry != "CH" || !got.PhoneVerifiedAt.Equal(t2) || !(got.TOTPEnrolled() || got.SMSFactorOn()) {
		t.Fatalf("after SetPhoneVerified: %+v", got)
	}
	wantCode(t, s.SetPhone(ctx(), "u1", "+15551230002", "US"), tessera.ECONFLICT)
	if got := getUser(t, s, "u1"); got.Phone != "+41791234567" || !got.PhoneVerifiedAt.Equal(t2) {
		t.Fatalf("a refused SetPhone changed the phone: %+v", got)
	}
	wantCode(t, s.SetPhoneVerified(ctx(), "u2", "", t2), tessera.ENOTFOUND) // u2 has no phone
	wantCode(t, s.SetPhone(ctx(), "nobody", "+15551230003", "US"), tessera.ENOTFOUND)
	wantCode(t, s.SetPhoneVerified(ctx(), "nobody", "+15551230003", t2), tessera.ENOTFOUND)

	// TOTP: set and clear.
	must(t, s.SetTOTPVerified(ctx(), "u2", t2))
	if got := getUser(t, s, "u2"); !got.TOTPVerifiedAt.Equal(t2) || !(got.TOTPEnrolled() || got.SMSFactorOn()) {
		t.Fatalf("after SetTOTPVerified: %+v", got)
	}
	must(t, s.SetTOTPVerified(ctx(), "u2", time.Time{}))
	if got := getUser(t, s, "u2"); !got.TOTPVerifiedAt.IsZero() || (got.TOTPEnrolled() || got.SMSFactorOn()) {
		t.Fatalf("after clearing TOTP: %+v", got)
	}
	wantCode(t, s.SetTOTPVerified(ctx(), "nobody", t2), tessera.ENOTFOUND)

	// Password: replaced, and the failures and lock forgotten.
	for i := 0; i < 3; i++ {
		_, err := s.ReserveLogin(ctx(), "u1", t0, lockAt(3, time.Hour))
		must(t, err)
	}
	must(t, s.SetPassword(ctx(), "u1", "$argon2id$new", "", t2))
	got = getUser(t, s, "u1")
	if got.PasswordHash != "$argon2id$new" || !got.PasswordChanged.Equal(t2) || got.FailedLogins != 0 || !got.LockedUntil.IsZero() {
		t.Fatalf("after SetPassword: %+v", got)
	}
	_, err := s.ReserveLogin(ctx(), "u1", t2, lockAt(3, time.Hour))
	must(t, err)
	wantCode(t, s.SetPassword(ctx(), "nobody", "h", "", t2), tessera.ENOTFOUND)

	// Status.
	must(t, s.SetUserStatus(ctx(), "u1", tessera.UserDisabled))
	if got := getUser(t, s, "u1"); got.Status != tessera.UserDisabled {
		t.Fatalf("status %q, want disabled", got.Status)
	}
	must(t, s.SetUserStatus(ctx(), "u1", tessera.UserActive))
	if got := getUser(t, s, "u1"); got.Status != tessera.UserActive || got.Email != "dave@example.com" || got.Phone != "+41791234567" {
		t.Fatalf("after SetUserStatus: %+v", got)
	}
	wantCode(t, s.SetUserStatus(ctx(), "nobody", tessera.UserActive), tessera.ENOTFOUND)
}

// ---- credentials: the rows User's factor fields are a view of ----

// cred is what a credential row should say; a zero created is not checked.
type cred struct {
	kind       tessera.CredentialKind
	identifier string
	verified   time.Time
	factor     bool
	created    time.Time
	used       time.Time
}

// wantCredentials checks a user's credentials: one of each wanted kind,
// none other, listed oldest first.
func wantCredentials(t *testing.T, s tessera.AccountStore, userID string, want ...cred) []*tessera.Credential {
	t.Helper()
	got, err := s.Credentials(ctx(), userID)
	must(t, err)
	var kinds []string
	byKind := map[tessera.CredentialKind]*tessera.Credential{}
	ids := map[string]bool{}
	for i, c := range got {
		kinds = append(kinds, string(c.Kind))
		if c.ID == "" || ids[c.ID] || c.UserID != userID {
			t.Fatalf("credential %d of %s: id %q, user %q (ids so far %v)", i, userID, c.ID, c.UserID, ids)
		}
		ids[c.ID] = true
		if byKind[c.Kind] != nil {
			t.Fatalf("%s has two %s credentials", userID, c.Kind)
		}
		byKind[c.Kind] = c
		if i > 0 && c.CreatedAt.Before(got[i-1].CreatedAt) {
			t.Fatalf("credentials of %s are not listed oldest first: %v before %v", userID, got[i-1].CreatedAt, c.CreatedAt)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s has credentials %v, want %d", userID, kinds, len(want))
	}
	for _, w := range want {
		c := byKind[w.kind]
		if c == nil {
			t.Fatalf("%s has credentials %v, no %s", userID, kinds, w.kind)
		}
		if c.Identifier != w.identifier || !c.VerifiedAt.Equal(w.verified) || c.SecondFactor != w.factor ||
			(!w.created.IsZero() && !c.CreatedAt.Equal(w.created)) || !c.LastUsedAt.Equal(w.used) {
			t.Fatalf("%s credential of %s: %+v, want %+v", w.kind, userID, c, w)
		}
	}
	return got
}

// testCredentialsAfterCreate: CreateUser stores one row per way the user
// proves something, and a refused one stores none.
func testCredentialsAfterCreate(t *testing.T, s tessera.AccountStore) {
	full := &tessera.User{
		ID: "u1", Email: "Alice@example.com", EmailVerifiedAt: t0.Add(time.Minute),
		Phone: "+41791234567", PhoneCountry: "CH", PhoneVerifiedAt: t0.Add(2 * time.Minute), SMSMFAAt: t0.Add(2 * time.Minute),
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", PasswordChanged: t0.Add(3 * time.Minute),
		Status: tessera.UserActive, TOTPVerifiedAt: t0.Add(4 * time.Minute), CreatedAt: t0,
	}
	must(t, s.CreateUser(ctx(), full))
	got := wantCredentials(t, s, "u1",
		cred{kind: tessera.CredentialEmail, identifier: "Alice@example.com", verified: t0.Add(time.Minute), created: t0},
		cred{kind: tessera.CredentialPhone, identifier: "+41791234567", verified: t0.Add(2 * time.Minute), factor: true, created: t0},
		cred{kind: tessera.CredentialPassword, verified: t0.Add(3 * time.Minute), created: t0.Add(3 * time.Minute)},
		cred{kind: tessera.CredentialTOTP, verified: t0.Add(4 * time.Minute), factor: true, created: t0.Add(4 * time.Minute)})
	var order []tessera.CredentialKind
	for _, c := range got {
		order = append(order, c.Kind)
	}
	if !slices.Equal(order, []tessera.CredentialKind{tessera.CredentialEmail, tessera.CredentialPhone, tessera.CredentialPassword, tessera.CredentialTOTP}) {
		t.Fatalf("credentials listed as %v, want oldest first", order)
	}
	u := getUser(t, s, "u1")
	sameUser(t, u, full)
	if !u.SMSMFAAt.Equal(full.SMSMFAAt) || !u.TOTPEnrolled() || !u.SMSFactorOn() {
		t.Fatalf("the view of u1's factors: %+v", u)
	}

	// A phone that is only a user key is no second factor.
	keyOnly := newUser("u2", "bob@example.com")
	keyOnly.Phone, keyOnly.PhoneCountry, keyOnly.PhoneVerifiedAt = "+15551230001", "US", t0.Add(time.Minute)
	must(t, s.CreateUser(ctx(), keyOnly))
	wantCredentials(t, s, "u2",
		cred{kind: tessera.CredentialEmail, identifier: "bob@example.com", created: t0},
		cred{kind: tessera.CredentialPassword, verified: t0, created: t0},
		cred{kind: tessera.CredentialPhone, identifier: "+15551230001", verified: t0.Add(time.Minute), created: t0})
	if u := getUser(t, s, "u2"); u.SMSFactorOn() || u.TOTPEnrolled() || u.Phone != "+15551230001" || u.PhoneCountry != "US" {
		t.Fatalf("the view of u2's factors: %+v", u)
	}

	// A refused account leaves no credential behind, even inside a
	// transaction that goes on after the refusal.
	wantCode(t, s.CreateUser(ctx(), newUser("u3", "ALICE@example.com")), tessera.ECONFLICT)
	wantCredentials(t, s, "u3")
	must(t, s.InTx(ctx(), func(tx tessera.TxStore) error {
		wantCode(t, tx.CreateUser(ctx(), newUser("u4", "bob@EXAMPLE.com")), tessera.ECONFLICT)
		return tx.CreateUser(ctx(), newUser("u5", "carol@example.com"))
	}))
	_, err := s.User(ctx(), "u4")
	wantCode(t, err, tessera.ENOTFOUND)
	wantCredentials(t, s, "u4")
	wantCredentials(t, s, "u5", cred{kind: tessera.CredentialEmail, identifier: "carol@example.com", created: t0},
		cred{kind: tessera.CredentialPassword, verified: t0, created: t0})
	wantCredentials(t, s, "u1", credsOf(got)...) // untouched
	wantCredentials(t, s, "nobody")
}

// credsOf turns listed credentials back into what wantCredentials checks.
func credsOf(cs []*tessera.Credential) []cred {
	var out []cred
	for _, c := range cs {
		out = append(out, cred{kind: c.Kind, identifier: c.Identifier, verified: c.VerifiedAt, factor: c.SecondFactor, created: c.CreatedAt, used: c.LastUsedAt})
	}
	return out
}

// testCredentialsFollowUpdates: each mutating method writes the rows, and
// the User view follows.
func testCredentialsFollowUpdates(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "Dave@example.com")
	t1, t2, t3, t4 := t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(3*time.Minute), t0.Add(4*time.Minute)
	email := cred{kind: tessera.CredentialEmail, identifier: "Dave@example.com", created: t0}
	password := cred{kind: tessera.CredentialPassword, verified: t0, created: t0}
	wantCredentials(t, s, "u1", email, password)

	must(t, s.SetEmailVerified(ctx(), "u1", "dave@EXAMPLE.com", t1))
	email.verified = t1
	wantCredentials(t, s, "u1", email, password)
	must(t, s.SetEmailVerified(ctx(), "u1", "dave@example.com", t2)) // the first confirmation stays
	wantCredentials(t, s, "u1", email, password)

	// Phone: an unverified one is a row, not a factor, and is replaced.
	must(t, s.SetPhone(ctx(), "u1", "+15551230001", "US"))
	phone := cred{kind: tessera.CredentialPhone, identifier: "+15551230001"}
	wantCredentials(t, s, "u1", email, password, phone)
	must(t, s.SetPhone(ctx(), "u1", "+41791234567", "CH"))
	phone.identifier = "+41791234567"
	wantCredentials(t, s, "u1", email, password, phone)
	must(t, s.SetPhoneVerified(ctx(), "u1", "+41791234567", t2))
	phone.verified, phone.factor = t2, true
	wantCredentials(t, s, "u1", email, password, phone)
	if u := getUser(t, s, "u1"); !u.SMSFactorOn() || !u.SMSMFAAt.Equal(t2) || u.PhoneCountry != "CH" {
		t.Fatalf("after SetPhoneVerified: %+v", u)
	}

	// SMS as a factor: off keeps the phone as a key; on again.
	must(t, s.SetSMSMFA(ctx(), "u1", time.Time{}))
	phone.factor = false
	wantCredentials(t, s, "u1", email, password, phone)
	if u := getUser(t, s, "u1"); u.SMSFactorOn() || u.Phone != "+41791234567" || !u.PhoneVerifiedAt.Equal(t2) {
		t.Fatalf("after SetSMSMFA off: %+v", u)
	}
	must(t, s.SetSMSMFA(ctx(), "u1", t3))
	phone.factor = true
	wantCredentials(t, s, "u1", email, password, phone)
	if u := getUser(t, s, "u1"); !u.SMSMFAAt.Equal(t3) {
		t.Fatalf("after SetSMSMFA on: %+v", u)
	}

	// ChangePhone: a new verified number; SMS stays a factor.
	must(t, s.ChangePhone(ctx(), "u1", "+15551230002", "US", t3))
	phone.identifier, phone.verified, phone.created = "+15551230002", t3, t3
	wantCredentials(t, s, "u1", email, password, phone)
	if u := getUser(t, s, "u1"); u.Phone != "+15551230002" || u.PhoneCountry != "US" || !u.PhoneVerifiedAt.Equal(t3) || !u.SMSFactorOn() {
		t.Fatalf("after ChangePhone: %+v", u)
	}

	// TOTP: a row while enrolled, always a second factor.
	must(t, s.SetTOTPVerified(ctx(), "u1", t3))
	totp := cred{kind: tessera.CredentialTOTP, verified: t3, factor: true, created: t3}
	wantCredentials(t, s, "u1", email, password, phone, totp)
	if u := getUser(t, s, "u1"); !u.TOTPVerifiedAt.Equal(t3) || !u.TOTPEnrolled() {
		t.Fatalf("after SetTOTPVerified: %+v", u)
	}

	// RemovePhone: the row goes, and SMS as a factor with it.
	must(t, s.RemovePhone(ctx(), "u1"))
	wantCredentials(t, s, "u1", email, password, totp)
	if u := getUser(t, s, "u1"); u.Phone != "" || u.PhoneCountry != "" || !u.PhoneVerifiedAt.IsZero() || u.SMSFactorOn() || !u.SMSMFAAt.IsZero() {
		t.Fatalf("after RemovePhone: %+v", u)
	}
	must(t, s.RemovePhone(ctx(), "u1"))                          // no phone: nothing to do
	must(t, s.SetSMSMFA(ctx(), "u1", time.Time{}))               // likewise
	wantCode(t, s.SetSMSMFA(ctx(), "u1", t4), tessera.ENOTFOUND) // no phone to text
	wantCode(t, s.RemovePhone(ctx(), "nobody"), tessera.ENOTFOUND)
	wantCode(t, s.SetSMSMFA(ctx(), "nobody", time.Time{}), tessera.ENOTFOUND)
	wantCode(t, s.ChangePhone(ctx(), "nobody", "+15551230003", "US", t4), tessera.ENOTFOUND)
	wantCredentials(t, s, "nobody")

	// An unverified phone is no factor and cannot be made one.
	must(t, s.SetPhone(ctx(), "u1", "+15551230004", "US"))
	wantCode(t, s.SetSMSMFA(ctx(), "u1", t4), tessera.ENOTFOUND)
	if u := getUser(t, s, "u1"); u.SMSFactorOn() || u.Phone != "+15551230004" {
		t.Fatalf("an unverified phone became a factor: %+v", u)
	}
	must(t, s.RemovePhone(ctx(), "u1"))

	// Password: the row is replaced.
	must(t, s.SetPassword(ctx(), "u1", "$argon2id$new", "sms", t4))
	password.verified, password.created, password.identifier = t4, t4, "sms"
	wantCredentials(t, s, "u1", email, password, totp)
	if u := getUser(t, s, "u1"); u.PasswordHash != "$argon2id$new" || !u.PasswordChanged.Equal(t4) || u.PasswordRecoveredVia != "sms" {
		t.Fatalf("after SetPassword: %+v", u)
	}

	// TOTP cleared: the row goes; clearing again is harmless.
	must(t, s.SetTOTPVerified(ctx(), "u1", time.Time{}))
	wantCredentials(t, s, "u1", email, password)
	must(t, s.SetTOTPVerified(ctx(), "u1", time.Time{}))
	if u := getUser(t, s, "u1"); u.TOTPEnrolled() || !u.TOTPVerifiedAt.IsZero() {
		t.Fatalf("after clearing TOTP: %+v", u)
	}
	wantCode(t, s.SetTOTPVerified(ctx(), "nobody", time.Time{}), tessera.ENOTFOUND)
	wantCredentials(t, s, "nobody")

	// Methods that change the account only leave the credentials alone.
	before, err := s.Credentials(ctx(), "u1")
	must(t, err)
	must(t, s.SetUserStatus(ctx(), "u1", tessera.UserDisabled))
	must(t, s.LoginSucceeded(ctx(), "u1", t4, "curl/8.0"))
	must(t, s.SetAntiPhishing(ctx(), "u1", []byte("sealed"), false))
	wantCredentials(t, s, "u1", credsOf(before)...)
}

// testCredentialsChangeEmail: the email credential moves to the new
// address, which must be free; the old one is free afterwards.
func testCredentialsChangeEmail(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "ana@example.com")
	createUser(t, s, "u2", "bo@example.com")
	must(t, s.SetEmailVerified(ctx(), "u1", "ana@example.com", t0))
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	password := cred{kind: tessera.CredentialPassword, verified: t0, created: t0}

	wantCode(t, s.ChangeEmail(ctx(), "u1", "BO@example.com", t1), tessera.ECONFLICT)
	wantCredentials(t, s, "u1", cred{kind: tessera.CredentialEmail, identifier: "ana@example.com", verified: t0, created: t0}, password)
	wantCode(t, s.ChangeEmail(ctx(), "nobody", "new@example.com", t1), tessera.ENOTFOUND)

	must(t, s.ChangeEmail(ctx(), "u1", "Ana.New@example.com", t1))
	wantCredentials(t, s, "u1", password, cred{kind: tessera.CredentialEmail, identifier: "Ana.New@example.com", verified: t1, created: t1})
	if u, err := s.UserByEmail(ctx(), "ana.new@EXAMPLE.com"); err != nil || u.ID != "u1" || u.Email != "Ana.New@example.com" || !u.EmailVerifiedAt.Equal(t1) {
		t.Fatalf("UserByEmail after ChangeEmail: %+v, %v", u, err)
	}
	_, err := s.UserByEmail(ctx(), "ana@example.com")
	wantCode(t, err, tessera.ENOTFOUND)
	createUser(t, s, "u3", "ANA@example.com") // the old address is free

	// The same address in another case is the user's own: no conflict.
	must(t, s.ChangeEmail(ctx(), "u1", "ana.new@example.com", t2))
	if u := getUser(t, s, "u1"); u.Email != "ana.new@example.com" {
		t.Fatalf("after a change of case: %+v", u)
	}

	// Confirming a new address activates an unconfirmed account, and only
	// that: a disabled one stays disabled.
	must(t, s.ChangeEmail(ctx(), "u2", "bo.new@example.com", t2))
	if u := getUser(t, s, "u2"); u.Status != tessera.UserActive || !u.EmailVerifiedAt.Equal(t2) {
		t.Fatalf("after ChangeEmail of an unconfirmed account: %+v", u)
	}
	must(t, s.SetUserStatus(ctx(), "u3", tessera.UserDisabled))
	must(t, s.ChangeEmail(ctx(), "u3", "ana.3@example.com", t2))
	if u := getUser(t, s, "u3"); u.Status != tessera.UserDisabled {
		t.Fatalf("ChangeEmail enabled a disabled account: %+v", u)
	}
}

// testCredentialsChangeEmailParallel: ten accounts move to one address
// while ten sign-ups take it, all at once: exactly one wins.
func testCredentialsChangeEmailParallel(t *testing.T, s tessera.AccountStore) {
	const n = 10
	for i := range n {
		createUser(t, s, fmt.Sprint("old", i), fmt.Sprintf("user%d@example.com", i))
	}
	var ok, conflict atomic.Int32
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := "taken@example.com"
			if i%3 == 1 {
				addr = "Taken@Example.com"
			}
			var err error
			if i < n {
				err = s.ChangeEmail(ctx(), fmt.Sprint("old", i), addr, t0)
			} else {
				err = s.CreateUser(ctx(), newUser(fmt.Sprint("new", i), addr))
			}
			switch tessera.ErrorCode(err) {
			case "":
				ok.Add(1)
			case tessera.ECONFLICT:
				conflict.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || conflict.Load() != 2*n-1 {
		t.Fatalf("%d took the address and %d conflicted, want 1 and %d", ok.Load(), conflict.Load(), 2*n-1)
	}
	winner, err := s.UserByEmail(ctx(), "TAKEN@example.com")
	must(t, err)
	for i := range n {
		id := fmt.Sprint("old", i)
		u := getUser(t, s, id)
		if id != winner.ID && u.Email != fmt.Sprintf("user%d@example.com", i) {
			t.Fatalf("%s lost the race but its email is %q", id, u.Email)
		}
	}
}

// testCredentialsRecoveryCodes: a row says a set is issued, and when a
// code of it was last used; it is no second factor.
func testCredentialsRecoveryCodes(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	email := cred{kind: tessera.CredentialEmail, identifier: "a@example.com", created: t0}
	password := cred{kind: tessera.CredentialPassword, verified: t0, created: t0}
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	must(t, s.ReplaceRecoveryCodes(ctx(), "u1", hashes("a", "b"), t1))
	codes := cred{kind: tessera.CredentialRecoveryCodes, verified: t1, created: t1}
	wantCredentials(t, s, "u1", email, password, codes)
	must(t, s.UseRecoveryCode(ctx(), "u1", []byte("a"), t2))
	codes.used = t2
	wantCredentials(t, s, "u1", email, password, codes)
	wantCode(t, s.UseRecoveryCode(ctx(), "u1", []byte("a"), t2.Add(time.Minute)), tessera.ENOTFOUND)
	wantCredentials(t, s, "u1", email, password, codes) // a refused code is no use
	if u := getUser(t, s, "u1"); u.TOTPEnrolled() || u.SMSFactorOn() {
		t.Fatalf("recovery codes turned a factor on: %+v", u)
	}

	must(t, s.ReplaceRecoveryCodes(ctx(), "u1", hashes("c"), t2))
	codes = cred{kind: tessera.CredentialRecoveryCodes, verified: t2, created: t2}
	wantCredentials(t, s, "u1", email, password, codes)
	must(t, s.ReplaceRecoveryCodes(ctx(), "u1", nil, t2))
	wantCredentials(t, s, "u1", email, password)
}

func newSession(id, userID string, created time.Time) *tessera.Session {
	return &tessera.Session{ID: id, UserID: userID, AMR: []string{"pwd", "otp"}, UserAgent: "Mozilla/5.0 " + id, IP: "192.0.2.7",
		CreatedAt: created, LastUsedAt: created, ExpiresAt: created.Add(24 * time.Hour)}
}

func firstToken(hash string, created time.Time) *tessera.RefreshToken {
	return &tessera.RefreshToken{Hash: []byte(hash), CreatedAt: created}
}

func sessionIDs(ss []*tessera.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func wantSessions(t *testing.T, s tessera.AccountStore, userID string, now time.Time, want ...string) {
	t.Helper()
	got, err := s.Sessions(ctx(), userID, now)
	must(t, err)
	if ids := sessionIDs(got); !slices.Equal(ids, want) {
		t.Fatalf("active sessions of %s: %v, want %v", userID, ids, want)
	}
}

func testSessions(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	createUser(t, s, "u2", "b@example.com")
	now := t0.Add(10 * time.Minute)
	// Stored out of order, to see they are listed by age.
	s2 := newSession("s2", "u1", t0.Add(time.Minute))
	s1 := newSession("s1", "u1", t0)
	s3 := newSession("s3", "u1", t0.Add(2*time.Minute))
	s3.AMR = []string{"pwd"}
	old := newSession("old", "u1", t0.Add(3*time.Minute))
	old.ExpiresAt = t0.Add(5 * time.Minute) // expired at now
	other := newSession("other", "u2", t0)
	for i, sess := range []*tessera.Session{s2, s1, s3, old, other} {
		must(t, s.CreateSession(ctx(), sess, firstToken(fmt.Sprint("rt", i), sess.CreatedAt)))
	}

	got, err := s.Session(ctx(), "s1")
	must(t, err)
	if got.ID != "s1" || got.UserID != "u1" || !slices.Equal(got.AMR, []string{"pwd", "otp"}) || got.UserAgent != s1.UserAgent ||
		got.IP != "192.0.2.7" || !got.CreatedAt.Equal(t0) || !got.LastUsedAt.Equal(t0) || !got.ExpiresAt.Equal(s1.ExpiresAt) ||
		!got.RevokedAt.IsZero() || got.RevokeReason != "" || !got.Active(now) {
		t.Fatalf("read back %+v, wrote %+v", got, s1)
	}
	if got, err := s.Session(ctx(), "s3"); err != nil || !slices.Equal(got.AMR, []string{"pwd"}) {
		t.Fatalf("s3 read back %+v, %v", got, err)
	}
	_, err = s.Session(ctx(), "nope")
	wantCode(t, err, tessera.ENOTFOUND)

	wantSessions(t, s, "u1", now, "s3", "s2", "s1")
	wantSessions(t, s, "u1", t0.Add(4*time.Minute), "old", "s3", "s2", "s1")
	wantSessions(t, s, "u2", now, "other")
	wantSessions(t, s, "nobody", now)

	// One session.
	n, err := s.RevokeSessions(ctx(), "u1", "s2", "", "logout", now)
	must(t, err)
	if n != 1 {
		t.Fatalf("revoking s2 revoked %d sessions", n)
	}
	got, err = s.Session(ctx(), "s2")
	must(t, err)
	if !got.RevokedAt.Equal(now) || got.RevokeReason != "logout" || got.Active(now) {
		t.Fatalf("revoked session stored as %+v", got)
	}
	wantSessions(t, s, "u1", now, "s3", "s1")
	for _, id := range []string{"s2", "other", "old", "nope"} {
		// Already revoked, another user's, expired, unknown: none is
		// an active session of u1.
		n, err := s.RevokeSessions(ctx(), "u1", id, "", "again", now)
		must(t, err)
		if n != 0 {
			t.Fatalf("revoking %s for u1 revoked %d sessions, want 0", id, n)
		}
	}
	if got, _ := s.Session(ctx(), "s2"); got.RevokeReason != "logout" || !got.RevokedAt.Equal(now) {
		t.Fatalf("revoking a revoked session again changed it: %+v", got)
	}
	wantSessions(t, s, "u2", now, "other")

	// All but one: s1 goes, s3 stays, the expired one does not count.
	n, err = s.RevokeSessions(ctx(), "u1", "", "s3", "password changed", now)
	must(t, err)
	if n != 1 {
		t.Fatalf("revoking all but s3 revoked %d sessions, want 1", n)
	}
	wantSessions(t, s, "u1", now, "s3")
	if got, _ := s.Session(ctx(), "s1"); got.RevokeReason != "password changed" {
		t.Fatalf("s1 after revoking all but s3: %+v", got)
	}

	// All.
	must(t, s.CreateSession(ctx(), newSession("s4", "u1", now), firstToken("rt-s4", now)))
	n, err = s.RevokeSessions(ctx(), "u1", "", "", "all", now)
	must(t, err)
	if n != 2 {
		t.Fatalf("revoking all revoked %d sessions, want 2", n)
	}
	wantSessions(t, s, "u1", now)
	wantSessions(t, s, "u2", now, "other")
	n, err = s.RevokeSessions(ctx(), "u1", "", "", "all", now)
	must(t, err)
	if n != 0 {
		t.Fatalf("revoking all again revoked %d sessions", n)
	}
}

func testRotateRefreshToken(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	sess := newSession("s1", "u1", t0)
	must(t, s.CreateSession(ctx(), sess, firstToken("h0", t0)))
	t1, t2, t3 := t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(3*time.Minute)

	got, _, err := s.RotateRefreshToken(ctx(), []byte("h0"), firstToken("h1", t1), []byte("sealed-h1"), t1)
	must(t, err)
	if got == nil || got.ID != "s1" || got.UserID != "u1" || !slices.Equal(got.AMR, sess.AMR) {
		t.Fatalf("rotation returned session %+v", got)
	}
	// The successor rotates in turn.
	got, _, err = s.RotateRefreshToken(ctx(), []byte("h1"), firstToken("h2", t2), []byte("sealed-h2"), t2)
	must(t, err)
	if got == nil || got.ID != "s1" {
		t.Fatalf("second rotation returned session %+v", got)
	}

	// A second use of h0 is a conflict that hands back what the first use stored.
	_, old, err := s.RotateRefreshToken(ctx(), []byte("h0"), firstToken("hx", t3), []byte("sealed-hx"), t3)
	wantCode(t, err, tessera.ECONFLICT)
	if old == nil || !bytes.Equal(old.Hash, []byte("h0")) || old.SessionID != "s1" || !old.CreatedAt.Equal(t0) ||
		!old.UsedAt.Equal(t1) || string(old.SuccessorSealed) != "sealed-h1" {
		t.Fatalf("reused token returned as %+v", old)
	}
	// ... and stores nothing.
	_, _, err = s.RotateRefreshToken(ctx(), []byte("hx"), firstToken("hy", t3), []byte("sealed-hy"), t3)
	wantCode(t, err, tessera.ENOTFOUND)
	_, old, err = s.RotateRefreshToken(ctx(), []byte("h0"), firstToken("hz", t3), []byte("sealed-hz"), t3)
	wantCode(t, err, tessera.ECONFLICT)
	if old == nil || !old.UsedAt.Equal(t1) || string(old.SuccessorSealed) != "sealed-h1" {
		t.Fatalf("a refused reuse changed the stored token: %+v", old)
	}

	_, _, err = s.RotateRefreshToken(ctx(), []byte("unknown"), firstToken("hu", t3), []byte("sealed-hu"), t3)
	wantCode(t, err, tessera.ENOTFOUND)

	// At the session's end h2 is refused, and the refusal leaves it unused.
	_, _, err = s.RotateRefreshToken(ctx(), []byte("h2"), firstToken("h3", sess.ExpiresAt), []byte("sealed-h3"), sess.ExpiresAt)
	wantCode(t, err, tessera.ENOTFOUND)
	_, _, err = s.RotateRefreshToken(ctx(), []byte("h3"), firstToken("h4", t3), []byte("sealed-h4"), t3)
	wantCode(t, err, tessera.ENOTFOUND)
	_, _, err = s.RotateRefreshToken(ctx(), []byte("h2"), firstToken("h3", t3), []byte("sealed-h3"), t3)
	must(t, err)

	// A revoked session's tokens are unknown, used or not.
	n, err := s.RevokeSessions(ctx(), "u1", "s1", "", "logout", t3)
	must(t, err)
	if n != 1 {
		t.Fatalf("revoked %d sessions, want 1", n)
	}
	_, _, err = s.RotateRefreshToken(ctx(), []byte("h3"), firstToken("h4", t3), []byte("sealed-h4"), t3)
	wantCode(t, err, tessera.ENOTFOUND)
	_, _, err = s.RotateRefreshToken(ctx(), []byte("h0"), firstToken("h4", t3), []byte("sealed-h4"), t3)
	wantCode(t, err, tessera.ENOTFOUND)
}

// testRotateRefreshTokenParallel uses one refresh token 20 times at once:
// one rotation wins, the others see its successor, and only the winner's
// successor exists.
func testRotateRefreshTokenParallel(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	must(t, s.CreateSession(ctx(), newSession("s1", "u1", t0), firstToken("h0", t0)))
	now := t0.Add(time.Minute)
	const n = 20
	type result struct {
		sess *tessera.Session
		old  *tessera.RefreshToken
		err  error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sess, old, err := s.RotateRefreshToken(ctx(), []byte("h0"), firstToken(fmt.Sprint("next", i), now), []byte(fmt.Sprint("sealed", i)), now)
			results[i] = result{sess, old, err}
		}(i)
	}
	wg.Wait()
	winner := -1
	for i, r := range results {
		switch tessera.ErrorCode(r.err) {
		case "":
			if winner >= 0 {
				t.Fatalf("rotations %d and %d both succeeded", winner, i)
			}
			winner = i
			if r.sess == nil || r.sess.ID != "s1" {
				t.Fatalf("winning rotation returned session %+v", r.sess)
			}
		case tessera.ECONFLICT:
		default:
			t.Fatalf("rotation %d: unexpected error %v", i, r.err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation succeeded")
	}
	for i, r := range results {
		if i == winner {
			continue
		}
		if r.old == nil || !r.old.UsedAt.Equal(now) || string(r.old.SuccessorSealed) != fmt.Sprint("sealed", winner) {
			t.Fatalf("losing rotation %d saw %+v, want the successor of rotation %d", i, r.old, winner)
		}
	}
	later := now.Add(time.Minute)
	for i := 0; i < n; i++ {
		_, _, err := s.RotateRefreshToken(ctx(), []byte(fmt.Sprint("next", i)), firstToken(fmt.Sprint("after", i), later), []byte("x"), later)
		if i == winner {
			must(t, err)
		} else {
			wantCode(t, err, tessera.ENOTFOUND)
		}
	}
}

// testDeleteStaleKeepsSpentRefreshTokens: the janitor keeps a spent
// refresh token as long as its session lives, so a reuse days later is
// still a reuse (ECONFLICT, which revokes the session), not an unknown
// token. It erases the token's sealed successor once the token is older
// than the cutoff, and deletes ended sessions with all their tokens.
func testDeleteStaleKeepsSpentRefreshTokens(t *testing.T, s tessera.AccountStore) {
	d, ok := s.(interface {
		DeleteStale(ctx context.Context, before time.Time) (int64, error)
	})
	if !ok {
		t.Fatalf("%T has no DeleteStale: the janitor could not clean it", s)
	}
	createUser(t, s, "u1", "a@example.com")
	live := newSession("live", "u1", t0)
	live.ExpiresAt = t0.Add(30 * 24 * time.Hour)
	ended := newSession("ended", "u1", t0)
	ended.ExpiresAt = t0.Add(time.Hour)
	revoked := newSession("revoked", "u1", t0)
	must(t, s.CreateSession(ctx(), live, firstToken("h0", t0)))
	must(t, s.CreateSession(ctx(), ended, firstToken("e0", t0)))
	must(t, s.CreateSession(ctx(), revoked, firstToken("r0", t0)))
	t1 := t0.Add(time.Minute)
	for _, h := range []string{"h", "e"} {
		_, _, err := s.RotateRefreshToken(ctx(), []byte(h+"0"), firstToken(h+"1", t1), []byte("sealed-"+h+"1"), t1)
		must(t, err)
	}
	n, err := s.RevokeSessions(ctx(), "u1", "revoked", "", "logout", t1)
	must(t, err)
	if n != 1 {
		t.Fatalf("revoked %d sessions, want 1", n)
	}

	// Two days on, with a retention of one day.
	before := t0.Add(48 * time.Hour)
	now := before.Add(24 * time.Hour)
	deleted, err := d.DeleteStale(ctx(), before)
	must(t, err)
	if deleted != 5 {
		t.Fatalf("deleted %d rows, want 5: the ended and the revoked session and their 3 tokens", deleted)
	}
	for _, id := range []string{"ended", "revoked"} {
		_, err := s.Session(ctx(), id)
		wantCode(t, err, tessera.ENOTFOUND)
	}
	if got, err := s.Session(ctx(), "live"); err != nil || !got.Active(now) {
		t.Fatalf("the live session after DeleteStale: %+v, %v", got, err)
	}

	// h0, spent two days ago, is still known as spent; its successor is erased.
	_, old, err := s.RotateRefreshToken(ctx(), []byte("h0"), firstToken("hx", now), []byte("sealed-hx"), now)
	wantCode(t, err, tessera.ECONFLICT)
	if old == nil || !bytes.Equal(old.Hash, []byte("h0")) || old.SessionID != "live" || !old.UsedAt.Equal(t1) || old.SuccessorSealed != nil {
		t.Fatalf("a spent token of a live session after DeleteStale: %+v, want it used at %v with its successor erased", old, t1)
	}
	// The live token still rotates.
	_, _, err = s.RotateRefreshToken(ctx(), []byte("h1"), firstToken("h2", now), []byte("sealed-h2"), now)
	must(t, err)

	// A token spent after the cutoff keeps its sealed successor, and
	// nothing is counted as deleted.
	deleted, err = d.DeleteStale(ctx(), before)
	must(t, err)
	if deleted != 0 {
		t.Fatalf("a second DeleteStale deleted %d rows", deleted)
	}
	_, old, err = s.RotateRefreshToken(ctx(), []byte("h1"), firstToken("hy", now), []byte("sealed-hy"), now)
	wantCode(t, err, tessera.ECONFLICT)
	if old == nil || !old.UsedAt.Equal(now) || string(old.SuccessorSealed) != "sealed-h2" {
		t.Fatalf("a token spent after the cutoff: %+v, want its sealed successor kept", old)
	}
}

func hashes(hs ...string) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = []byte(h)
	}
	return out
}

func wantCodesLeft(t *testing.T, s tessera.AccountStore, userID string, want int) {
	t.Helper()
	n, err := s.RecoveryCodesLeft(ctx(), userID)
	must(t, err)
	if n != want {
		t.Fatalf("%s has %d recovery codes left, want %d", userID, n, want)
	}
}

func testRecoveryCodes(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	createUser(t, s, "u2", "b@example.com")
	wantCodesLeft(t, s, "u1", 0)
	must(t, s.ReplaceRecoveryCodes(ctx(), "u1", hashes("a", "b", "c"), t0))
	wantCodesLeft(t, s, "u1", 3)
	must(t, s.UseRecoveryCode(ctx(), "u1", []byte("a"), t0))
	wantCodesLeft(t, s, "u1", 2)

	// A new set voids the old one, used codes included.
	must(t, s.ReplaceRecoveryCodes(ctx(), "u1", hashes("a", "d", "e", "f"), t0))
	wantCodesLeft(t, s, "u1", 4)
	for _, h := range []string{"b", "c"} {
		wantCode(t, s.UseRecoveryCode(ctx(), "u1", []byte(h), t0), tessera.ENOTFOUND)
	}
	must(t, s.UseRecoveryCode(ctx(), "u1", []byte("a"), t0))
	must(t, s.UseRecoveryCode(ctx(), "u1", []byte("d"), t0))
	wantCode(t, s.UseRecoveryCode(ctx(), "u1", []byte("d"), t0), tessera.ENOTFOUND)
	wantCodesLeft(t, s, "u1", 2)

	// Codes belong to one user.
	must(t, s.ReplaceRecoveryCodes(ctx(), "u2", hashes("e", "x"), t0))
	wantCode(t, s.UseRecoveryCode(ctx(), "u1", []byte("x"), t0), tessera.ENOTFOUND)
	wantCode(t, s.UseRecoveryCode(ctx(), "nobody", []byte("e"), t0), tessera.ENOTFOUND)
	must(t, s.UseRecoveryCode(ctx(), "u2", []byte("e"), t0))
	wantCodesLeft(t, s, "u1", 2)
	wantCodesLeft(t, s, "u2", 1)
	must(t, s.UseRecoveryCode(ctx(), "u1", []byte("e"), t0))
	wantCodesLeft(t, s, "u1", 1)

	// Replacing with none voids them all.
	must(t, s.ReplaceRecoveryCodes(ctx(), "u1", nil, t0))
	wantCodesLeft(t, s, "u1", 0)
	wantCode(t, s.UseRecoveryCode(ctx(), "u1", []byte("f"), t0), tessera.ENOTFOUND)
	wantCodesLeft(t, s, "u2", 1)
	wantCodesLeft(t, s, "nobody", 0)
}

func testRecoveryCodeParallel(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	must(t, s.ReplaceRecoveryCodes(ctx(), "u1", hashes("p", "q"), t0))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.UseRecoveryCode(ctx(), "u1", []byte("p"), t0)
			switch tessera.ErrorCode(err) {
			case "":
				wins.Add(1)
			case tessera.ENOTFOUND:
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("one recovery code was used %d times", wins.Load())
	}
	wantCodesLeft(t, s, "u1", 1)
}

func newFlow(id string) *tessera.Flow {
	return &tessera.Flow{ID: id, Type: tessera.FlowLogin, UserID: "u1", AAL: 1, Methods: []string{"pwd"}, CSRFSecret: []byte("csrf"),
		MaxAttempts: 3, CreatedAt: t0, ExpiresAt: t0.Add(5 * time.Minute), UserAgent: "Mozilla/5.0", IP: "198.51.100.4"}
}

func testFlows(t *testing.T, s tessera.AccountStore) {
	c := newFlow("c1")
	must(t, s.CreateFlow(ctx(), c))
	got, err := s.Flow(ctx(), "c1")
	must(t, err)
	if got.ID != "c1" || got.Type != tessera.FlowLogin || got.UserID != "u1" || got.Attempts != 0 || got.MaxAttempts != 3 || !got.CreatedAt.Equal(t0) ||
		!got.ExpiresAt.Equal(c.ExpiresAt) || !got.UsedAt.IsZero() || got.UserAgent != "Mozilla/5.0" || got.IP != "198.51.100.4" ||
		got.AAL != 1 || !slices.Equal(got.Methods, []string{"pwd"}) || string(got.CSRFSecret) != "csrf" || got.Secret != nil {
		t.Fatalf("read back %+v, wrote %+v", got, c)
	}
	// Every field of a registration flow comes back.
	reg := &tessera.Flow{ID: "r1", Type: tessera.FlowRegistration, Email: "New@Example.com", SessionID: "s9", Label: "client-label",
		Secret: []byte("$argon2id$..."), CSRFSecret: []byte("x"), MaxAttempts: 5, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateFlow(ctx(), reg))
	if got, err := s.Flow(ctx(), "r1"); err != nil || got.Type != tessera.FlowRegistration || got.Email != "new@example.com" ||
		got.SessionID != "s9" || got.Label != "client-label" || string(got.Secret) != "$argon2id$..." || len(got.Methods) != 0 {
		t.Fatalf("registration flow read back %+v (%v)", got, err)
	}
	_, err = s.Flow(ctx(), "nope")
	wantCode(t, err, tessera.ENOTFOUND)

	// Attempts count up to the cap.
	for i := 1; i <= 3; i++ {
		got, err := s.ReserveFlowAttempt(ctx(), "c1", t0)
		must(t, err)
		if got == nil || got.ID != "c1" || got.UserID != "u1" || got.Attempts != i {
			t.Fatalf("attempt %d returned %+v", i, got)
		}
	}
	_, err = s.ReserveFlowAttempt(ctx(), "c1", t0)
	wantCode(t, err, tessera.ELOCKED)
	if got, _ := s.Flow(ctx(), "c1"); got.Attempts != 3 {
		t.Fatalf("attempts past the cap were counted: %d", got.Attempts)
	}

	// Expired.
	must(t, s.CreateFlow(ctx(), newFlow("c2")))
	_, err = s.ReserveFlowAttempt(ctx(), "c2", t0.Add(5*time.Minute))
	wantCode(t, err, tessera.EEXPIRED)
	if got, _ := s.Flow(ctx(), "c2"); got.Attempts != 0 {
		t.Fatalf("an attempt on an expired challenge was counted: %d", got.Attempts)
	}
	wantCode(t, s.UseFlow(ctx(), "c2", t0.Add(5*time.Minute)), tessera.ENOTFOUND)

	// Used once.
	must(t, s.CreateFlow(ctx(), newFlow("c3")))
	_, err = s.ReserveFlowAttempt(ctx(), "c3", t0)
	must(t, err)
	at := t0.Add(time.Minute)
	must(t, s.UseFlow(ctx(), "c3", at))
	wantCode(t, s.UseFlow(ctx(), "c3", at), tessera.ENOTFOUND)
	_, err = s.ReserveFlowAttempt(ctx(), "c3", at)
	wantCode(t, err, tessera.ENOTFOUND)
	got, err = s.Flow(ctx(), "c3")
	must(t, err)
	if !got.UsedAt.Equal(at) || got.Attempts != 1 {
		t.Fatalf("used challenge stored as %+v", got)
	}

	_, err = s.ReserveFlowAttempt(ctx(), "nope", t0)
	wantCode(t, err, tessera.ENOTFOUND)
	wantCode(t, s.UseFlow(ctx(), "nope", t0), tessera.ENOTFOUND)
}

// testPendingRegistrations: live, unused registrations of an address,
// newest first, whatever the case of the address.
func testPendingRegistrations(t *testing.T, s tessera.AccountStore) {
	reg := func(id, email string, created time.Time) *tessera.Flow {
		return &tessera.Flow{ID: id, Type: tessera.FlowRegistration, Email: email, CSRFSecret: []byte("x"), MaxAttempts: 5,
			CreatedAt: created, ExpiresAt: created.Add(30 * time.Minute)}
	}
	must(t, s.CreateFlow(ctx(), reg("r1", "a@example.com", t0)))
	must(t, s.CreateFlow(ctx(), reg("r2", "A@example.com", t0.Add(time.Minute))))
	must(t, s.CreateFlow(ctx(), reg("r3", "a@example.com", t0.Add(2*time.Minute))))
	must(t, s.CreateFlow(ctx(), reg("other", "b@example.com", t0)))
	login := newFlow("l1") // not a registration
	must(t, s.CreateFlow(ctx(), login))
	must(t, s.UseFlow(ctx(), "r3", t0.Add(3*time.Minute)))
	got, err := s.PendingRegistrations(ctx(), "a@EXAMPLE.com", t0.Add(3*time.Minute), 5)
	must(t, err)
	var ids []string
	for _, f := range got {
		ids = append(ids, f.ID)
	}
	if !slices.Equal(ids, []string{"r2", "r1"}) {
		t.Fatalf("pending registrations %v, want [r2 r1] (r3 is used)", ids)
	}
	if got, _ := s.PendingRegistrations(ctx(), "a@example.com", t0.Add(30*time.Minute), 5); len(got) != 1 || got[0].ID != "r2" {
		t.Fatalf("at r1's expiry: %v, want only r2", got)
	}
	if got, _ := s.PendingRegistrations(ctx(), "a@example.com", t0, 1); len(got) != 1 || got[0].ID != "r2" {
		t.Fatalf("limit 1: %v", got)
	}
}

// testSessionAuth: a step-up rewrites the assurance of an active session
// only.
func testSessionAuth(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	sess := &tessera.Session{ID: "s1", UserID: "u1", AAL: 1, AMR: []string{"pwd"}, AuthTime: t0, CreatedAt: t0, LastUsedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateSession(ctx(), sess, &tessera.RefreshToken{Hash: []byte("h1"), SessionID: "s1", CreatedAt: t0}))
	got, err := s.Session(ctx(), "s1")
	must(t, err)
	if got.AAL != 1 || !got.AuthTime.Equal(t0) {
		t.Fatalf("session read back with aal %d, auth_time %v", got.AAL, got.AuthTime)
	}
	at := t0.Add(20 * time.Minute)
	must(t, s.SetSessionAuth(ctx(), "s1", 2, []string{"pwd", "otp", "mfa"}, at, at))
	got, err = s.Session(ctx(), "s1")
	must(t, err)
	if got.AAL != 2 || !got.AuthTime.Equal(at) || !slices.Equal(got.AMR, []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("after a step-up: %+v", got)
	}
	wantCode(t, s.SetSessionAuth(ctx(), "s1", 2, nil, at, t0.Add(2*time.Hour)), tessera.ENOTFOUND) // expired
	wantCode(t, s.SetSessionAuth(ctx(), "nope", 2, nil, at, at), tessera.ENOTFOUND)
}

// testInTx: what a transaction writes commits together, or not at all.
func testInTx(t *testing.T, s tessera.AccountStore) {
	boom := errors.New("boom")
	err := s.InTx(ctx(), func(tx tessera.TxStore) error {
		must(t, tx.CreateUser(ctx(), newUser("u1", "a@example.com")))
		must(t, tx.CreateFlow(ctx(), newFlow("f1")))
		if _, err := tx.User(ctx(), "u1"); err != nil { // reads see the transaction's writes
			t.Errorf("read inside the transaction: %v", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	_, err = s.User(ctx(), "u1")
	wantCode(t, err, tessera.ENOTFOUND)
	_, err = s.Flow(ctx(), "f1")
	wantCode(t, err, tessera.ENOTFOUND)

	must(t, s.InTx(ctx(), func(tx tessera.TxStore) error {
		if err := tx.CreateUser(ctx(), newUser("u1", "a@example.com")); err != nil {
			return err
		}
		return tx.InTx(ctx(), func(inner tessera.TxStore) error { return inner.CreateFlow(ctx(), newFlow("f1")) })
	}))
	if _, err := s.User(ctx(), "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Flow(ctx(), "f1"); err != nil {
		t.Fatal(err)
	}
}

// testFlowsParallel: 30 attempts at once on a challenge allowing 5
// count exactly 5; 20 uses at once of one challenge succeed once.
func testFlowsParallel(t *testing.T, s tessera.AccountStore) {
	c := newFlow("c1")
	c.MaxAttempts = 5
	must(t, s.CreateFlow(ctx(), c))
	must(t, s.CreateFlow(ctx(), newFlow("c2")))
	var ok, locked, used atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.ReserveFlowAttempt(ctx(), "c1", t0)
			switch tessera.ErrorCode(err) {
			case "":
				ok.Add(1)
			case tessera.ELOCKED:
				locked.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.UseFlow(ctx(), "c2", t0)
			switch tessera.ErrorCode(err) {
			case "":
				used.Add(1)
			case tessera.ENOTFOUND:
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 5 || locked.Load() != 25 {
		t.Fatalf("%d attempts counted and %d locked out, want 5 and 25", ok.Load(), locked.Load())
	}
	if got, _ := s.Flow(ctx(), "c1"); got.Attempts != 5 {
		t.Fatalf("stored attempts %d, want 5", got.Attempts)
	}
	if used.Load() != 1 {
		t.Fatalf("one login challenge was used %d times", used.Load())
	}
}

func testSigningKeys(t *testing.T, s tessera.AccountStore) {
	keys, err := s.SigningKeys(ctx())
	must(t, err)
	if len(keys) != 0 {
		t.Fatalf("a fresh store has %d signing keys", len(keys))
	}
	key := func(id string, gen int64, created time.Time) *tessera.SigningKey {
		return &tessera.SigningKey{ID: id, Algorithm: "ES256", PublicKey: []byte("pub-" + id), PrivateSealed: []byte("sealed-" + id),
			Generation: gen, CreatedAt: created, ActivatesAt: created.Add(10 * time.Minute)}
	}
	newer, older := key("k2", 2, t0.Add(time.Hour)), key("k1", 1, t0)
	// Stored newest first, to see the order comes from the generations.
	must(t, s.CreateSigningKey(ctx(), newer))
	must(t, s.CreateSigningKey(ctx(), older))
	keys, err = s.SigningKeys(ctx())
	must(t, err)
	if len(keys) != 2 {
		t.Fatalf("got %d signing keys, want 2", len(keys))
	}
	for i, want := range []*tessera.SigningKey{newer, older} {
		got := keys[i]
		if got.ID != want.ID || got.Algorithm != want.Algorithm || !bytes.Equal(got.PublicKey, want.PublicKey) || got.Generation != want.Generation ||
			!bytes.Equal(got.PrivateSealed, want.PrivateSealed) || !got.CreatedAt.Equal(want.CreatedAt) || !got.ActivatesAt.Equal(want.ActivatesAt) {
			t.Fatalf("key %d read back %+v, want %+v", i, got, want)
		}
	}
	// Two instances rotating at once make the same generation: one wins.
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for _, id := range []string{"k3a", "k3b", "k3c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := s.CreateSigningKey(ctx(), key(id, 3, t0.Add(2*time.Hour))); tessera.ErrorCode(err) {
			case "":
				wins.Add(1)
			case tessera.ECONFLICT:
				conflicts.Add(1)
			default:
				t.Errorf("racing rotation: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 2 {
		t.Fatalf("three rotations to one generation: %d stored, %d conflicts", wins.Load(), conflicts.Load())
	}
	keys, err = s.SigningKeys(ctx())
	must(t, err)
	if len(keys) != 3 || keys[0].Generation != 3 || keys[1].ID != "k2" || keys[2].ID != "k1" {
		t.Fatalf("signing keys listed in the wrong order")
	}
	// A retired key leaves; deleting it twice is no error.
	must(t, s.DeleteSigningKey(ctx(), "k1"))
	must(t, s.DeleteSigningKey(ctx(), "k1"))
	keys, err = s.SigningKeys(ctx())
	must(t, err)
	if len(keys) != 2 || keys[1].ID != "k2" {
		t.Fatalf("after deleting k1: %d keys", len(keys))
	}
}

// ---- audit log ----

func auditKinds(es []*tessera.AuditEvent) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Kind)
	}
	return out
}

func listAudit(t *testing.T, s tessera.AccountStore, f tessera.AuditFilter) []*tessera.AuditEvent {
	t.Helper()
	es, err := s.AuditEvents(ctx(), f)
	must(t, err)
	return es
}

func testAuditAppendAndList(t *testing.T, s tessera.AccountStore) {
	if es := listAudit(t, s, tessera.AuditFilter{}); len(es) != 0 {
		t.Fatalf("a new store lists %d events", len(es))
	}
	first := &tessera.AuditEvent{At: t0, Kind: tessera.AuditLoginFailed, UserID: "u1", Email: "Alice@example.com",
		IP: "192.0.2.7", UserAgent: "TestBrowser/1.0 (ü)", Detail: "wrong password"}
	must(t, s.AppendAudit(ctx(), first))
	if first.ID == "" {
		t.Fatal("AppendAudit set no id")
	}
	// Same millisecond: the order of appending decides.
	second := &tessera.AuditEvent{At: t0, Kind: tessera.AuditLoginSuccess, UserID: "u1", Email: "Alice@example.com", IP: "2001:db8::1"}
	must(t, s.AppendAudit(ctx(), second))
	// An earlier time appended later still sorts by time.
	older := &tessera.AuditEvent{At: t0.Add(-time.Hour), Kind: tessera.AuditRegister, UserID: "u1", Email: "alice@example.com"}
	must(t, s.AppendAudit(ctx(), older))
	newer := &tessera.AuditEvent{At: t0.Add(time.Second), Kind: tessera.AuditLogout, UserID: "u1", Email: "alice@example.com"}
	must(t, s.AppendAudit(ctx(), newer))
	if first.ID == second.ID || second.ID == older.ID {
		t.Fatalf("ids are not distinct: %s %s %s", first.ID, second.ID, older.ID)
	}

	es := listAudit(t, s, tessera.AuditFilter{})
	want := []string{tessera.AuditLogout, tessera.AuditLoginSuccess, tessera.AuditLoginFailed, tessera.AuditRegister}
	if got := auditKinds(es); !slices.Equal(got, want) {
		t.Fatalf("listed %v, want newest first %v", got, want)
	}
	got := es[2]
	if got.ID != first.ID || !got.At.Equal(t0) || got.UserID != "u1" || got.Email != "Alice@example.com" || got.IP != "192.0.2.7" ||
		got.UserAgent != "TestBrowser/1.0 (ü)" || got.Detail != "wrong password" {
		t.Fatalf("read back %+v, want %+v", got, first)
	}

	// Limit keeps the newest.
	if got := auditKinds(listAudit(t, s, tessera.AuditFilter{Limit: 2})); !slices.Equal(got, want[:2]) {
		t.Fatalf("limit 2: %v", got)
	}
}

func testAuditFilters(t *testing.T, s tessera.AccountStore) {
	add := func(at time.Time, kind, userID, email string) {
		t.Helper()
		must(t, s.AppendAudit(ctx(), &tessera.AuditEvent{At: at, Kind: kind, UserID: userID, Email: email, IP: "127.0.0.1"}))
	}
	add(t0, tessera.AuditRegister, "u1", "ana@example.com")
	add(t0.Add(1*time.Minute), tessera.AuditLoginFailed, "u1", "ana@example.com")
	add(t0.Add(2*time.Minute), tessera.AuditLoginFailed, "", "ghost@example.com") // unknown account
	add(t0.Add(3*time.Minute), tessera.AuditLoginSuccess, "u2", "bo@example.com")
	add(t0.Add(4*time.Minute), tessera.AuditKeyChanged, "u1", "ana@example.com")
	add(t0.Add(5*time.Minute), tessera.AuditLoginSuccess, "u1", "ana.new@example.com") // after an email change

	cases := []struct {
		name string
		f    tessera.AuditFilter
		want []string // emails, newest first
	}{
		{"user", tessera.AuditFilter{UserID: "u1"}, []string{"ana.new@example.com", "ana@example.com", "ana@example.com", "ana@example.com"}},
		{"email, case-insensitively", tessera.AuditFilter{Email: "GHOST@Example.com"}, []string{"ghost@example.com"}},
		{"kind", tessera.AuditFilter{Kind: tessera.AuditLoginFailed}, []string{"ghost@example.com", "ana@example.com"}},
		{"since", tessera.AuditFilter{Since: t0.Add(3 * time.Minute)}, []string{"ana.new@example.com", "ana@example.com", "bo@example.com"}},
		{"user and kind", tessera.AuditFilter{UserID: "u1", Kind: tessera.AuditLoginSuccess}, []string{"ana.new@example.com"}},
		{"user, kind, since", tessera.AuditFilter{UserID: "u1", Kind: tessera.AuditLoginFailed, Since: t0.Add(2 * time.Minute)}, nil},
		{"user and limit", tessera.AuditFilter{UserID: "u1", Limit: 1}, []string{"ana.new@example.com"}},
		{"unknown user", tessera.AuditFilter{UserID: "nobody"}, nil},
	}
	for _, c := range cases {
		var got []string
		for _, e := range listAudit(t, s, c.f) {
			got = append(got, e.Email)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func testAuditParallel(t *testing.T, s tessera.AccountStore) {
	const n = 40
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := &tessera.AuditEvent{At: t0, Kind: tessera.AuditLoginFailed, UserID: fmt.Sprint("u", i%4), Detail: fmt.Sprint(i)}
			errs[i] = s.AppendAudit(ctx(), e)
			ids[i] = e.ID
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			t.Fatalf("parallel appends got ids %v", ids)
		}
		seen[id] = true
	}
	if es := listAudit(t, s, tessera.AuditFilter{Limit: 1000}); len(es) != n {
		t.Fatalf("%d events listed after %d appends", len(es), n)
	}
	if es := listAudit(t, s, tessera.AuditFilter{UserID: "u1"}); len(es) != n/4 {
		t.Fatalf("%d events of u1, want %d", len(es), n/4)
	}
}

func testAuditPrune(t *testing.T, s tessera.AccountStore) {
	must(t, s.AppendAudit(ctx(), &tessera.AuditEvent{At: t0.Add(-100 * 24 * time.Hour), Kind: tessera.AuditLoginSuccess, UserID: "u1"}))
	must(t, s.AppendAudit(ctx(), &tessera.AuditEvent{At: t0, Kind: tessera.AuditLogout, UserID: "u1"}))
	n, err := s.PruneAudit(ctx(), t0.Add(-90*24*time.Hour))
	must(t, err)
	es := listAudit(t, s, tessera.AuditFilter{})
	if n != 1 || len(es) != 1 || es[0].Kind != tessera.AuditLogout {
		t.Fatalf("pruned %d, left %+v; want the old event gone and the recent one kept", n, es)
	}
}

// testPasskeys: a user's passkeys change by compare-and-set; the user view
// tells whether any exist and whether one is usable; neither a removal
// nor RemovePassword leaves an account with no way to log in.
func testPasskeys(t *testing.T, s tessera.AccountStore) {
	must(t, s.CreateUser(ctx(), newUser("u1", "pk@example.com")))
	if got, err := s.Passkeys(ctx(), "u1"); err != nil || len(got) != 0 {
		t.Fatalf("passkeys of a new user: %v, %v", got, err)
	}
	a := &tessera.Passkey{ID: []byte("key-a"), Name: "A", PublicKey: []byte{1, 2}, SignCount: 1, Transports: []string{"internal"}, CreatedAt: t0}
	b := &tessera.Passkey{ID: []byte("key-b"), Name: "B", PublicKey: []byte{3}, CreatedAt: t0}
	must(t, s.SavePasskeys(ctx(), "u1", nil, []*tessera.Passkey{a}, t0))
	wantCode(t, s.SavePasskeys(ctx(), "u1", nil, []*tessera.Passkey{b}, t0), tessera.ECONFLICT) // not what is stored
	got, err := s.Passkeys(ctx(), "u1")
	must(t, err)
	if len(got) != 1 || string(got[0].ID) != "key-a" || got[0].SignCount != 1 || !slices.Equal(got[0].Transports, []string{"internal"}) {
		t.Fatalf("read back %+v", got)
	}
	if u := getUser(t, s, "u1"); !u.HasPasskeys() || !u.PasskeyUsable || !u.PasskeysAt.Equal(t0) {
		t.Fatalf("user view after a passkey: %+v", u)
	}
	both := []*tessera.Passkey{a, b}
	must(t, s.SavePasskeys(ctx(), "u1", got, both, t0.Add(time.Minute)))

	// Passwordless: the password goes while a usable passkey stays.
	must(t, s.RemovePassword(ctx(), "u1"))
	if u := getUser(t, s, "u1"); u.PasswordHash != "" {
		t.Fatalf("the password stayed: %+v", u)
	}
	wantCode(t, s.RemovePassword(ctx(), "u1"), tessera.ECONFLICT) // none left to remove
	// One passkey may go, not the last usable one.
	must(t, s.SavePasskeys(ctx(), "u1", both, []*tessera.Passkey{a}, t0))
	wantCode(t, s.SavePasskeys(ctx(), "u1", []*tessera.Passkey{a}, nil, t0), tessera.ECONFLICT)
	// A clone warning keeps the row, but no usable passkey is left.
	cloned := *a
	cloned.CloneWarning = true
	must(t, s.SavePasskeys(ctx(), "u1", []*tessera.Passkey{a}, []*tessera.Passkey{&cloned}, t0))
	if u := getUser(t, s, "u1"); !u.HasPasskeys() || u.PasskeyUsable {
		t.Fatalf("user view after a clone warning: %+v", u)
	}

	// With a password, the last passkey may go.
	must(t, s.CreateUser(ctx(), newUser("u2", "pk2@example.com")))
	must(t, s.SavePasskeys(ctx(), "u2", nil, []*tessera.Passkey{b}, t0))
	wantCode(t, s.RemovePassword(ctx(), "nobody"), tessera.ENOTFOUND)
	must(t, s.SavePasskeys(ctx(), "u2", []*tessera.Passkey{b}, nil, t0))
	if u := getUser(t, s, "u2"); u.HasPasskeys() {
		t.Fatalf("passkeys left: %+v", u)
	}
}

// testNoSessionForADisabledUser: a login that checked the account before
// an operator disabled it must not leave a session behind (one that
// enabling the account would bring back): CreateSession refuses a
// disabled user, also when the two race.
func testNoSessionForADisabledUser(t *testing.T, s tessera.AccountStore) {
	createUser(t, s, "u1", "a@example.com")
	must(t, s.SetUserStatus(ctx(), "u1", tessera.UserActive))
	now := t0.Add(time.Minute)
	disable := func() {
		must(t, s.InTx(ctx(), func(tx tessera.TxStore) error {
			if err := tx.SetUserStatus(ctx(), "u1", tessera.UserDisabled); err != nil {
				return err
			}
			_, err := tx.RevokeSessions(ctx(), "u1", "", "", "account disabled", now)
			return err
		}))
	}
	disable()
	wantCode(t, s.CreateSession(ctx(), newSession("late", "u1", now), firstToken("rt-late", now)), tessera.EFORBIDDEN)
	wantSessions(t, s, "u1", now)

	// Logins racing the disabling: each ends refused or revoked.
	must(t, s.SetUserStatus(ctx(), "u1", tessera.UserActive))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.CreateSession(ctx(), newSession(fmt.Sprint("race", i), "u1", now), firstToken(fmt.Sprint("rt-race", i), now))
			if err != nil && tessera.ErrorCode(err) != tessera.EFORBIDDEN {
				t.Errorf("session %d: %v", i, err)
			}
		}()
	}
	disable()
	wg.Wait()
	must(t, s.SetUserStatus(ctx(), "u1", tessera.UserActive))
	wantSessions(t, s, "u1", now)
}
