package httpapi_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
)

// crashingStore is a real store whose transactions can be made to fail at
// their last step, queueing the notice: as if the process died before the
// commit.
type crashingStore struct {
	app.Storage
	crash atomic.Bool
}

func (c *crashingStore) InTx(ctx context.Context, fn func(tx tessera.TxStore) error) error {
	return c.Storage.InTx(ctx, func(tx tessera.TxStore) error {
		if c.crash.Load() {
			return fn(crashingTx{tx})
		}
		return fn(tx)
	})
}

type crashingTx struct{ tessera.TxStore }

func (crashingTx) QueueMessage(context.Context, *tessera.Message) error {
	return errors.New("the power went out")
}

// TestAResetIsOneTransaction: a password reset that fails at its last step
// (the notice) leaves nothing behind: the old password still works, the
// sessions live, the token is not used up, no notice went out. Then the
// same token resets the password, notice included.
func TestAResetIsOneTransaction(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			store := &crashingStore{Storage: s.open(t)}
			e := newEnv(t, store)
			u := register(t, e, "tx@example.com")
			e.deliver()
			flow := e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": u.email, "destination": "EMAIL"}, nil).want(t, 200).str("processingId")
			token := e.codeFor(u.email)
			reset := func() *response {
				return e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": flow, "oneTimeToken": token, "newPassword": "the new password"}, nil)
			}

			store.crash.Store(true)
			reset().want(t, 500)
			store.crash.Store(false)
			u.call("GET", "/auth/me", nil).want(t, 200) // the session was not ended
			u.login(t).want(t, 200)                     // the password did not change
			if got := e.deliver(); len(got) != 0 {
				t.Fatalf("a rolled-back reset sent %v", got)
			}

			reset().want(t, 200) // the token was not used up
			u.call("GET", "/auth/me", nil).want(t, 401)
			noticeTo(t, e, u.email, "password was reset")
			u.password = "the new password"
			u.login(t).want(t, 200)
		})
	}
}

// TestRecoveryAnswersDoNotTellAccountsApart: five wrong tokens lock a
// recovery flow whether or not the account exists, with the same answers,
// and a stranger's flows for the same address neither void nor burn the
// owner's token; past 20 tries an hour per address, every flow of it
// answers 429.
func TestRecoveryAnswersDoNotTellAccountsApart(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	owner := register(t, e, "own@example.com")
	e.deliver()
	start := func(email string) string {
		return e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": email, "destination": "EMAIL"}, nil).want(t, 200).str("processingId")
	}
	reset := func(flow, token string) *response {
		return e.doWith("POST", "/api/v1/password/recovery", map[string]any{"processingId": flow, "oneTimeToken": token, "newPassword": "a new long password"}, nil)
	}
	ownersFlow := start(owner.email)
	ownersToken := e.codeFor(owner.email)

	answers := func(flow string) []string {
		var out []string
		for i := 0; i < 6; i++ {
			r := reset(flow, "000000")
			out = append(out, r.str("code"))
		}
		return out
	}
	e.clock.Advance(31 * time.Second)
	known, unknown := answers(start(owner.email)), answers(start("nobody@example.com"))
	if strings.Join(known, ",") != strings.Join(unknown, ",") || known[5] != "locked" {
		t.Fatalf("wrong tokens on a real account answered %v, on an unknown one %v", known, unknown)
	}
	// The stranger's flow burnt its own token, not the owner's.
	e.deliver()
	reset(ownersFlow, ownersToken).want(t, 200)

	// The per-address throttle: 6 tries so far on this address (5 on the
	// stranger's flow until it locked, 1 by the owner), 20 allowed.
	for tries := 6; tries < 20; {
		flow := start(owner.email)
		for i := 0; i < 4 && tries < 20; i++ {
			reset(flow, "000000").want(t, 422)
			tries++
		}
	}
	if r := reset(start(owner.email), "000000"); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("the 21st recovery try of the hour answered %d %s", r.status, r.raw)
	}
	if r := reset(start("nobody@example.com"), "000000"); r.status != 422 {
		t.Fatalf("another address is throttled too: %d %s", r.status, r.raw)
	}
}

// TestNewDeviceNotice: a login from a user agent the account has not used
// tells the user, once; a known one does not; the switch turns it off.
func TestNewDeviceNotice(t *testing.T) {
	for _, on := range []bool{true, false} {
		e := newEnvWith(t, stores[0].open(t), func(o *app.Options) { o.NoNewDeviceNotices = !on })
		u := register(t, e, "dev@example.com") // the first login: no notice
		e.deliver()
		login := func(ua string) {
			e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": u.password}, map[string]string{"User-Agent": ua}).want(t, 200)
		}
		login("Go-http-client/1.1") // the registration's device
		login("NewPhone/2.0")
		login("NewPhone/2.0") // known by now
		var notices int
		for _, m := range e.deliver() {
			if m.To == u.email && strings.Contains(m.Subject, "new sign-in") {
				notices++
				if !strings.Contains(m.Body, "NewPhone/2.0") {
					t.Fatalf("the notice does not name the device: %q", m.Body)
				}
			}
		}
		if want := map[bool]int{true: 1, false: 0}[on]; notices != want {
			t.Fatalf("notices on=%v: %d, want %d", on, notices, want)
		}
	}
}

// TestSecurityNotices: each change to how the account is proven is told
// to the account's email.
func TestSecurityNotices(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "note@example.com")
	e.deliver()
	u.call("POST", "/auth/password", map[string]any{"oldPassword": u.password, "newPassword": "another long secret"}).want(t, 200)
	u.password = "another long secret"
	noticeTo(t, e, u.email, "password was changed")

	enrol := u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200)
	secret := totpSecret(t, enrol.str("totpUri"), u.email)
	u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
	noticeTo(t, e, u.email, "second factor was added")

	e.clock.Advance(31 * time.Second)
	u.call("POST", "/auth/mfa/recovery-codes", nil, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
	noticeTo(t, e, u.email, "new recovery codes")

	u.call("POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber=%2B14155550188", nil).want(t, 200)
	u.call("POST", "/api/v1/userKeys/adding", map[string]any{"newKey": "+14155550188", "oneTimeToken": e.codeFor("+14155550188")}).want(t, 200)
	noticeTo(t, e, u.email, "phone number was added")

	e.clock.Advance(31 * time.Second)
	u.call("DELETE", "/auth/otp/methods/totp", nil, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
	noticeTo(t, e, u.email, "authenticator app was removed")
}

// TestATextedCodeServesOneAction: the code that verified the phone as a
// factor cannot also regenerate recovery codes (it is no x-otp there), and
// regenerating needs a privileged session.
func TestATextedCodeServesOneAction(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "one@example.com")
	u.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "4155550142", "country": "US"}).want(t, 200)
	code := e.codeFor("+14155550142")
	first := u.call("POST", "/auth/otp/code", map[string]any{"channel": "sms"}, "x-otp", code).want(t, 200).body["recoveryCodes"].([]any)
	// Eleven minutes later the session is no longer privileged, whatever
	// code comes along.
	e.clock.Advance(11 * time.Minute)
	wantReauth(t, "regenerating recovery codes with the enrolment code", u.call("POST", "/auth/mfa/recovery-codes", nil, "x-otp", code))
	// The first set still works: nothing was regenerated.
	pid := u.login(t).want(t, 200).str("processingId")
	e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": "recovery_code", "code": first[0]}, nil).want(t, 200)
}
