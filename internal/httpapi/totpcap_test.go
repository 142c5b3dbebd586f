package httpapi_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/app"
)

// TestTOTPCheckCapHoldsUnderParallelWrongCodes is the attack of issue 10:
// a signed-in attacker without the authenticator app fires wrong x-otp
// codes at DELETE /auth/otp/methods/totp all at once. The checks outside
// logins share one verification with five attempts, so however the
// requests interleave, at most five codes may be evaluated; the rest must
// be refused unseen (429, or 422 "locked"). Re-initiating that
// verification in parallel must never reset its attempts.
func TestTOTPCheckCapHoldsUnderParallelWrongCodes(t *testing.T) {
	const parallel, capAttempts, rounds = 40, 5, 3
	for _, store := range stores {
		t.Run(store.name, func(t *testing.T) {
			// The session stays privileged for the whole test, so that
			// only the attempt cap decides what is evaluated.
			e := newEnvWith(t, store.open(t), func(o *app.Options) { o.PrivilegedMaxAge = 24 * time.Hour })
			totpCapAttack(t, e, parallel, capAttempts, rounds)
		})
	}
}

func totpCapAttack(t *testing.T, e *env, parallel, capAttempts, rounds int) {
	u := register(t, e, "mallory-target@example.com")
	enrol := u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200)
	secret := totpSecret(t, enrol.str("totpUri"), u.email)
	u.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)

	// Round 1 finds no verification, later rounds an expired (locked)
	// one: both are where parallel requests re-initiate it.
	for round := 1; round <= rounds; round++ {
		if round > 1 {
			e.clock.Advance(31 * time.Minute) // past CodeTTL: the lock has expired
			u.take(e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 200))
		}
		evaluated, answers := attack(u, wrongTOTPCodes(secret, e.clock.Now(), parallel))
		t.Logf("round %d: %d parallel wrong codes, %d evaluated; answers %v", round, parallel, evaluated, answers)
		if evaluated != capAttempts {
			t.Fatalf("round %d: %d of %d parallel wrong codes were evaluated; the cap is %d", round, evaluated, parallel, capAttempts)
		}
	}

	// Locked: even the right code is refused until the lock expires.
	e.clock.Advance(30 * time.Second)
	if r := u.call("DELETE", "/auth/otp/methods/totp", nil, "x-otp", totpCode(secret, e.clock.Now())).want(t, 429); r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After on a locked TOTP check")
	}

	// Once it expires, the checks open again with a fresh allowance.
	e.clock.Advance(31 * time.Minute)
	u.take(e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 200))
	u.call("DELETE", "/auth/otp/methods/totp", nil, "x-otp", wrongTOTPCodes(secret, e.clock.Now(), 1)[0]).want(t, 422)
	off := u.call("DELETE", "/auth/otp/methods/totp", nil, "x-otp", totpCode(secret, e.clock.Now())).want(t, 200)
	if off.body["hasValidatedSecret"] != false || off.body["mfaEnabled"] != false {
		t.Fatalf("after DELETE totp: %s", off.raw)
	}
}

// attack sends every code at once as the x-otp of DELETE
// /auth/otp/methods/totp and returns how many were evaluated (422
// invalid_code) and the answers by status and code. Any answer but that or
// a refusal (429 too_many, 422 locked) fails the test.
func attack(u *user, codes []string) (int, map[string]int) {
	t := u.e.t
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	start := make(chan struct{})
	for _, code := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := u.call("DELETE", "/auth/otp/methods/totp", nil, "x-otp", code)
			mu.Lock()
			answers[fmt.Sprintf("%d %s", r.status, r.str("code"))]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	evaluated := answers["422 invalid_code"]
	if refused := answers["429 too_many"] + answers["422 locked"]; evaluated+refused != len(codes) {
		t.Fatalf("unexpected answers %v: each wrong code must be evaluated (422 invalid_code) or refused (429 too_many, 422 locked)", answers)
	}
	return evaluated, answers
}

// wrongTOTPCodes returns n distinct codes, none of which is right for any
// time step near now.
func wrongTOTPCodes(secret string, now time.Time, n int) []string {
	right := map[string]bool{}
	for d := -3; d <= 3; d++ {
		right[totpCode(secret, now.Add(time.Duration(d)*30*time.Second))] = true
	}
	var codes []string
	for i := 1; len(codes) < n; i++ {
		if c := fmt.Sprintf("%06d", i*104729%1_000_000); !right[c] {
			codes = append(codes, c)
		}
	}
	return codes
}
