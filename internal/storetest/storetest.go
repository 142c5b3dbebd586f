// Package storetest is the conformance suite every tessera.Store passes.
// SQLite and PostgreSQL run the same tests, so the two stores cannot drift
// apart in what they promise, above all under parallel requests.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// Run runs the suite. open returns a fresh, empty store for each test.
func Run(t *testing.T, open func(t *testing.T) tessera.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s tessera.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"DuplicateID", testDuplicateID},
		{"OwnersAreSeparate", testOwnersAreSeparate},
		{"AttemptStates", testAttemptStates},
		{"ParallelAttemptsHoldTheCap", testParallelAttempts},
		{"ConsumeOnceAndRaceAtTheCap", testConsumeOnce},
		{"CheckSeesTheStoredVerification", testCheckSeesTheStoredVerification},
		{"CheckCodeWithCallback", testCheckCodeWithCallback},
		{"CheckCodeHashUnderManyKeys", testCheckCodeHashUnderManyKeys},
		{"ParallelCreatesWithConflicts", testParallelCreatesWithConflicts},
		{"RenewVerificationOnlyOverAnUnusableOne", testRenewVerification},
		{"ParallelRenewalsHoldTheCap", testParallelRenewals},
		{"Delete", testDelete},
		{"TOTPSecrets", testTOTPSecrets},
		{"TOTPStepParallel", testTOTPStepParallel},
		{"Clients", testClients},
		{"Templates", testTemplates},
		{"SendingPolicies", testSendingPolicies},
		{"OutboxClaimLeaseAndSend", testOutbox},
		{"OutboxParallelClaimsNeverOverlap", testOutboxParallelClaims},
		{"OutboxLeaseOnDatabaseClock", testOutboxLeaseOnDatabaseClock},
		{"OutboxWrittenLeased", testOutboxWrittenLeased},
		{"DeleteStale", testDeleteStale},
		{"DeliveryReports", testDeliveryReports},
		{"FailOver", testFailOver},
		{"FallbackTimer", testFallbackTimer},
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

var t0 = time.UnixMilli(1_800_000_000_000).UTC()

func ctx() context.Context { return context.Background() }

func newVerification(owner, id string) *tessera.Verification {
	return &tessera.Verification{
		ID: id, Owner: owner, Method: tessera.MethodEmail, Consumer: "a@example.com", Issuer: "Acme",
		CodeHash: []byte("hash-of-code"), MaxAttempts: 3, Payload: []byte(`{"k":"v"}`),
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
}

func newMessage(owner, vid, id string) *tessera.Message {
	return &tessera.Message{ID: id, Owner: owner, VerificationID: vid, Channel: tessera.ChannelEmail, To: "a@example.com",
		Sealed: []byte("sealed-body"), Status: tessera.MessagePending, NextAttemptAt: t0, CreatedAt: t0}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := tessera.ErrorCode(err); err == nil || got != code {
		t.Fatalf("got error %v (code %q), want code %q", err, got, code)
	}
}

func testCreateAndGet(t *testing.T, s tessera.Store) {
	v := newVerification("c1", "11111111-1111-4111-8111-111111111111")
	must(t, s.CreateVerification(ctx(), v, newMessage("c1", v.ID, "m1")))
	got, err := s.Verification(ctx(), "c1", v.ID)
	must(t, err)
	if got.Consumer != v.Consumer || got.Method != v.Method || !bytes.Equal(got.CodeHash, v.CodeHash) ||
		!got.ExpiresAt.Equal(v.ExpiresAt) || !got.CreatedAt.Equal(v.CreatedAt) || string(got.Payload) != string(v.Payload) ||
		got.MaxAttempts != 3 || got.Attempts != 0 || !got.ConsumedAt.IsZero() || got.Issuer != "Acme" {
		t.Fatalf("read back %+v, wrote %+v", got, v)
	}
	m, err := s.MessageForVerification(ctx(), "c1", v.ID)
	must(t, err)
	if m.ID != "m1" || m.Status != tessera.MessagePending || string(m.Sealed) != "sealed-body" || m.To != "a@example.com" {
		t.Fatalf("message read back %+v", m)
	}
	_, err = s.Verification(ctx(), "c1", "22222222-2222-4222-8222-222222222222")
	wantCode(t, err, tessera.ENOTFOUND)
}

func testDuplicateID(t *testing.T, s tessera.Store) {
	v := newVerification("c1", "id-1")
	must(t, s.CreateVerification(ctx(), v, newMessage("c1", v.ID, "m1")))
	wantCode(t, s.CreateVerification(ctx(), v, newMessage("c1", v.ID, "m2")), tessera.ECONFLICT)
	// The conflicting message must not have been written either.
	m, err := s.MessageForVerification(ctx(), "c1", v.ID)
	must(t, err)
	if m.ID != "m1" {
		t.Fatalf("a rejected create left message %s behind", m.ID)
	}
}

func testOwnersAreSeparate(t *testing.T, s tessera.Store) {
	must(t, s.CreateVerification(ctx(), newVerification("c1", "same"), nil))
	must(t, s.CreateVerification(ctx(), newVerification("c2", "same"), nil))
	_, err := failAttempt(s, "c3", tessera.MethodEmail, "same", t0)
	wantCode(t, err, tessera.ENOTFOUND)
	_, err = consume(s, "c3", tessera.MethodEmail, "same", t0)
	wantCode(t, err, tessera.ENOTFOUND)
	wantCode(t, s.DeleteVerification(ctx(), "c3", tessera.MethodEmail, "same"), tessera.ENOTFOUND)
	must(t, s.DeleteVerification(ctx(), "c1", tessera.MethodEmail, "same"))
	if _, err := s.Verification(ctx(), "c2", "same"); err != nil {
		t.Fatalf("deleting c1's verification touched c2's: %v", err)
	}
}

func testAttemptStates(t *testing.T, s tessera.Store) {
	v := newVerification("c1", "v")
	must(t, s.CreateVerification(ctx(), v, nil))

	_, err := failAttempt(s, "c1", tessera.MethodPhone, "v", t0)
	wantCode(t, err, tessera.ENOTFOUND) // wrong method
	for i := 1; i <= 3; i++ {
		got, err := failAttempt(s, "c1", tessera.MethodEmail, "v", t0)
		must(t, err)
		if got.Attempts != i {
			t.Fatalf("wrong code %d: attempts %d after it", i, got.Attempts)
		}
	}
	got, err := failAttempt(s, "c1", tessera.MethodEmail, "v", t0)
	wantCode(t, err, tessera.ELOCKED)
	if got == nil || got.Attempts != 3 {
		t.Fatalf("locked verification reported as %+v", got)
	}
	// Locked means locked: not even a correct code consumes it.
	_, err = consume(s, "c1", tessera.MethodEmail, "v", t0)
	wantCode(t, err, tessera.ELOCKED)

	e := newVerification("c1", "e")
	must(t, s.CreateVerification(ctx(), e, nil))
	got, err = failAttempt(s, "c1", tessera.MethodEmail, "e", e.ExpiresAt)
	wantCode(t, err, tessera.EEXPIRED)
	if got == nil || got.Attempts != 0 {
		t.Fatalf("expired verification reported as %+v", got)
	}
	_, err = consume(s, "c1", tessera.MethodEmail, "e", e.ExpiresAt)
	wantCode(t, err, tessera.EEXPIRED)
}

// testParallelAttempts fires 100 wrong codes at once at a verification that
// allows 5: exactly 5 may be counted.
func testParallelAttempts(t *testing.T, s tessera.Store) {
	v := newVerification("c1", "p")
	v.MaxAttempts = 5
	must(t, s.CreateVerification(ctx(), v, nil))
	var ok, locked atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := failAttempt(s, "c1", tessera.MethodEmail, "p", t0)
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
	wg.Wait()
	if ok.Load() != 5 || locked.Load() != 95 {
		t.Fatalf("%d attempts counted and %d locked out, want 5 and 95", ok.Load(), locked.Load())
	}
	got, err := s.Verification(ctx(), "c1", "p")
	must(t, err)
	if got.Attempts != 5 {
		t.Fatalf("stored attempts %d, want 5", got.Attempts)
	}
}

// testConsumeOnce races 20 consumes, and wrong codes against a consume at
// the last attempt: one consume wins, and none after the cap.
func testConsumeOnce(t *testing.T, s tessera.Store) {
	must(t, s.CreateVerification(ctx(), newVerification("c1", "v"), nil))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := consume(s, "c1", tessera.MethodEmail, "v", t0); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d parallel consumes succeeded, want 1", wins.Load())
	}
	got, err := s.Verification(ctx(), "c1", "v")
	must(t, err)
	if got.ConsumedAt.IsZero() || got.Attempts != 0 {
		t.Fatalf("consumed verification stored as %+v", got)
	}
	_, err = failAttempt(s, "c1", tessera.MethodEmail, "v", t0)
	wantCode(t, err, tessera.ENOTFOUND)
	_, err = consume(s, "c1", tessera.MethodEmail, "v", t0)
	wantCode(t, err, tessera.ENOTFOUND)
	wantCode(t, s.DeleteVerification(ctx(), "c1", tessera.MethodEmail, "v"), tessera.ENOTFOUND)

	// At the last attempt, wrong codes and the right one race: either the
	// right one wins (and the wrong ones find it consumed) or a wrong one
	// takes the last attempt (and the right one finds it locked).
	for round := 0; round < 10; round++ {
		id := fmt.Sprint("race", round)
		v := newVerification("c1", id)
		v.Attempts = v.MaxAttempts - 1
		must(t, s.CreateVerification(ctx(), v, nil))
		var consumed, counted atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				var err error
				if i == 0 {
					if _, err = consume(s, "c1", tessera.MethodEmail, id, t0); err == nil {
						consumed.Add(1)
					}
				} else if _, err = failAttempt(s, "c1", tessera.MethodEmail, id, t0); err == nil {
					counted.Add(1)
				}
			}(i)
		}
		wg.Wait()
		if consumed.Load()+counted.Load() != 1 {
			t.Fatalf("round %d: %d consumed and %d wrong codes counted at the last attempt, want 1 in all", round, consumed.Load(), counted.Load())
		}
	}
}

func testDelete(t *testing.T, s tessera.Store) {
	must(t, s.CreateVerification(ctx(), newVerification("c1", "v"), nil))
	wantCode(t, s.DeleteVerification(ctx(), "c1", tessera.MethodPhone, "v"), tessera.ENOTFOUND)
	must(t, s.DeleteVerification(ctx(), "c1", tessera.MethodEmail, "v"))
	wantCode(t, s.DeleteVerification(ctx(), "c1", tessera.MethodEmail, "v"), tessera.ENOTFOUND)
	_, err := consume(s, "c1", tessera.MethodEmail, "v", t0)
	wantCode(t, err, tessera.ENOTFOUND)
}

func testTOTPSecrets(t *testing.T, s tessera.Store) {
	_, err := s.TOTPSecret(ctx(), "c1", "alice")
	wantCode(t, err, tessera.ENOTFOUND)
	must(t, s.PutTemporaryTOTPSecret(ctx(), &tessera.TOTPSecret{Owner: "c1", Consumer: "alice", Sealed: []byte("s1"), CreatedAt: t0}))
	must(t, s.PutTemporaryTOTPSecret(ctx(), &tessera.TOTPSecret{Owner: "c1", Consumer: "alice", Sealed: []byte("s2"), CreatedAt: t0}))
	got, err := s.TOTPSecret(ctx(), "c1", "alice")
	must(t, err)
	if string(got.Sealed) != "s2" || !got.VerifiedAt.IsZero() {
		t.Fatalf("a temporary secret must be replaced by the next one: %+v", got)
	}
	must(t, s.AcceptTOTPStep(ctx(), "c1", "alice", 100, t0))
	wantCode(t, s.AcceptTOTPStep(ctx(), "c1", "alice", 100, t0), tessera.ECONFLICT) // replay
	wantCode(t, s.AcceptTOTPStep(ctx(), "c1", "alice", 99, t0), tessera.ECONFLICT)  // older step
	must(t, s.AcceptTOTPStep(ctx(), "c1", "alice", 101, t0))
	wantCode(t, s.AcceptTOTPStep(ctx(), "c1", "bob", 1, t0), tessera.ENOTFOUND)

	wantCode(t, s.PutTemporaryTOTPSecret(ctx(), &tessera.TOTPSecret{Owner: "c1", Consumer: "alice", Sealed: []byte("s3"), CreatedAt: t0}), tessera.ECONFLICT)
	got, err = s.TOTPSecret(ctx(), "c1", "alice")
	must(t, err)
	if string(got.Sealed) != "s2" || got.VerifiedAt.IsZero() || got.LastStep != 101 {
		t.Fatalf("verified secret changed: %+v", got)
	}
	_, err = s.TOTPSecret(ctx(), "c2", "alice")
	wantCode(t, err, tessera.ENOTFOUND)
	must(t, s.DeleteTOTPSecret(ctx(), "c1", "alice"))
	wantCode(t, s.DeleteTOTPSecret(ctx(), "c1", "alice"), tessera.ENOTFOUND)
}

func testTOTPStepParallel(t *testing.T, s tessera.Store) {
	must(t, s.PutTemporaryTOTPSecret(ctx(), &tessera.TOTPSecret{Owner: "c1", Consumer: "alice", Sealed: []byte("s"), CreatedAt: t0}))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.AcceptTOTPStep(ctx(), "c1", "alice", 7, t0) == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("the same TOTP step was accepted %d times", wins.Load())
	}
}

func testClients(t *testing.T, s tessera.Store) {
	must(t, s.CreateClient(ctx(), &tessera.Client{ID: "id1", Name: "shop", TokenHash: []byte("h1"), CreatedAt: t0}))
	wantCode(t, s.CreateClient(ctx(), &tessera.Client{ID: "id2", Name: "shop", TokenHash: []byte("h2"), CreatedAt: t0}), tessera.ECONFLICT)
	must(t, s.CreateClient(ctx(), &tessera.Client{ID: "id3", Name: "blog", TokenHash: []byte("h3"), CreatedAt: t0.Add(time.Second)}))
	c, err := s.ClientByTokenHash(ctx(), []byte("h1"))
	must(t, err)
	if c.ID != "id1" || c.Name != "shop" {
		t.Fatalf("got client %+v", c)
	}
	must(t, s.RevokeClient(ctx(), "shop", t0))
	_, err = s.ClientByTokenHash(ctx(), []byte("h1"))
	wantCode(t, err, tessera.ENOTFOUND)
	wantCode(t, s.RevokeClient(ctx(), "nobody", t0), tessera.ENOTFOUND)
	all, err := s.Clients(ctx())
	must(t, err)
	if len(all) != 2 || all[0].Name != "shop" || all[0].RevokedAt.IsZero() || all[1].Name != "blog" {
		t.Fatalf("clients listed as %+v", all)
	}
}

func testOutbox(t *testing.T, s tessera.Store) {
	email := tessera.ChannelEmail
	for i := 0; i < 3; i++ {
		v := newVerification("c1", fmt.Sprint("v", i))
		m := newMessage("c1", v.ID, fmt.Sprint("m", i))
		m.NextAttemptAt = t0.Add(time.Duration(i) * time.Second)
		must(t, s.CreateVerification(ctx(), v, m))
	}
	sms := newVerification("c1", "v-sms")
	smsMsg := newMessage("c1", sms.ID, "m-sms")
	smsMsg.Channel = tessera.ChannelSMS
	must(t, s.CreateVerification(ctx(), sms, smsMsg))
	// m2 is not due yet at t0+1s; m-sms is on another channel.
	got, err := s.ClaimMessages(ctx(), email, "w1", t0.Add(time.Second), time.Minute, 10)
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("claimed %v, want the 2 email messages that are due", ids(got))
	}
	// Held: nobody else gets them while the lease lasts, and renewals by
	// another worker fail.
	again, err := s.ClaimMessages(ctx(), email, "w2", t0.Add(2*time.Second), time.Minute, 10)
	must(t, err)
	if len(again) != 1 || again[0].ID != "m2" {
		t.Fatalf("claimed %v while m0 and m1 were leased", ids(again))
	}
	_, err = s.ClaimMessage(ctx(), "m0", "w2", t0.Add(time.Hour), time.Minute)
	wantCode(t, err, tessera.ENOTFOUND)
	wantCode(t, s.RenewLease(ctx(), "m0", "w2", time.Minute), tessera.ENOTFOUND)
	must(t, s.RenewLease(ctx(), "m0", "w1", time.Minute))
	smsGot, err := s.ClaimMessage(ctx(), "m-sms", "w1", t0, time.Minute)
	must(t, err)
	if smsGot.ID != "m-sms" || smsGot.Channel != tessera.ChannelSMS {
		t.Fatalf("claimed by id %+v", smsGot)
	}

	must(t, s.MarkMessagesSent(ctx(), []string{"m0", "m1"}, t0))
	wantCode(t, s.RetryMessage(ctx(), "m2", "w1", 1, t0.Add(time.Hour), "x"), tessera.ENOTFOUND) // w2 holds it
	must(t, s.RetryMessage(ctx(), "m2", "w2", 1, t0.Add(time.Hour), "smtp: 451 try later"))
	m, err := s.MessageForVerification(ctx(), "c1", "v0")
	must(t, err)
	if m.Status != tessera.MessageSent || m.Sealed != nil || m.SentAt.IsZero() {
		t.Fatalf("a sent message must have its body erased: %+v", m)
	}
	m, err = s.MessageForVerification(ctx(), "c1", "v2")
	must(t, err)
	if m.Status != tessera.MessagePending || m.Attempts != 1 || m.LastError != "smtp: 451 try later" || !m.NextAttemptAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("retried message stored as %+v", m)
	}
	none, err := s.ClaimMessages(ctx(), email, "w1", t0.Add(30*time.Minute), time.Minute, 10)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("claimed %v before they were due", ids(none))
	}
	// Released by the retry, claimable by anyone once due.
	m2, err := s.ClaimMessage(ctx(), "m2", "w1", t0.Add(time.Hour), time.Minute)
	must(t, err)
	if m2.Attempts != 1 {
		t.Fatalf("claimed %+v, want attempts 1", m2)
	}
	must(t, s.FailMessage(ctx(), "m2", "w1", 2, "550 no such user"))
	m, err = s.MessageForVerification(ctx(), "c1", "v2")
	must(t, err)
	if m.Status != tessera.MessageFailed || m.Sealed != nil || m.LastError != "550 no such user" {
		t.Fatalf("failed message stored as %+v", m)
	}
	wantCode(t, s.RetryMessage(ctx(), "m2", "w1", 3, t0, "x"), tessera.ENOTFOUND)
	wantCode(t, s.RenewLease(ctx(), "m2", "w1", time.Minute), tessera.ENOTFOUND)
}

// testOutboxLeaseOnDatabaseClock: a held lease runs out on the database's
// clock, whatever time the caller passes, and then another worker takes
// the message and the first one's renewal and failure no longer count.
func testOutboxLeaseOnDatabaseClock(t *testing.T, s tessera.Store) {
	v := newVerification("c1", "v")
	must(t, s.CreateVerification(ctx(), v, newMessage("c1", v.ID, "m")))
	const lease = 300 * time.Millisecond
	start := time.Now()
	got, err := s.ClaimMessages(ctx(), tessera.ChannelEmail, "w1", t0, lease, 10)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("claimed %v", ids(got))
	}
	// A caller's clock far ahead does not end the lease.
	if again, err := s.ClaimMessages(ctx(), tessera.ChannelEmail, "w2", t0.Add(24*time.Hour), lease, 10); err != nil || len(again) != 0 {
		t.Fatalf("claimed %v (%v) while the lease held", ids(again), err)
	}
	if time.Since(start) >= lease {
		t.Skip("too slow to test a lease of", lease)
	}
	time.Sleep(lease + 100*time.Millisecond)
	taken, err := s.ClaimMessages(ctx(), tessera.ChannelEmail, "w2", t0, time.Minute, 10)
	must(t, err)
	if len(taken) != 1 {
		t.Fatalf("after the lease ran out claimed %v, want m", ids(taken))
	}
	wantCode(t, s.RenewLease(ctx(), "m", "w1", time.Minute), tessera.ENOTFOUND)
	wantCode(t, s.FailMessage(ctx(), "m", "w1", 1, "x"), tessera.ENOTFOUND)
	must(t, s.RenewLease(ctx(), "m", "w2", time.Minute))
}

// testOutboxWrittenLeased: a message written leased to a worker (the
// engine's hand-over in memory) is that worker's from the write on, as if
// it had claimed it: nobody else claims it, on any of the ways a message
// is written, until the holder lets it go or the lease runs out.
func testOutboxWrittenLeased(t *testing.T, s tessera.Store) {
	leased := func(m *tessera.Message) *tessera.Message {
		m.LeaseHolder, m.Lease, m.LeasedFrom = "w1", time.Hour, time.Now()
		return m
	}
	v := newVerification("c1", "v-leased")
	must(t, s.CreateVerification(ctx(), v, leased(newMessage("c1", v.ID, "m-leased"))))
	w := newVerification("c1", "v-leased-renewed")
	must(t, s.ReplaceVerification(ctx(), w, leased(newMessage("c1", w.ID, "m-leased-renewed"))))
	must(t, s.QueueMessage(ctx(), leased(newMessage("c1", "", "m-leased-notice"))))
	if got, err := s.ClaimMessages(ctx(), tessera.ChannelEmail, "w2", t0.Add(time.Hour), time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("another worker claimed %v (%v) of messages written leased", ids(got), err)
	}
	_, err := s.ClaimMessage(ctx(), "m-leased", "w2", t0, time.Minute)
	wantCode(t, err, tessera.ENOTFOUND)
	wantCode(t, s.RenewLease(ctx(), "m-leased", "w2", time.Minute), tessera.ENOTFOUND)
	must(t, s.RenewLease(ctx(), "m-leased", "w1", time.Minute))
	// The holder gives them back untried (a worker that stops with
	// messages still queued): then anyone may claim them.
	for _, id := range []string{"m-leased", "m-leased-renewed", "m-leased-notice"} {
		must(t, s.RetryMessage(ctx(), id, "w1", 0, t0, ""))
	}
	got, err := s.ClaimMessages(ctx(), tessera.ChannelEmail, "w2", t0, time.Minute, 10)
	must(t, err)
	if len(got) != 3 {
		t.Fatalf("after their release claimed %v, want all three", ids(got))
	}
}

// testOutboxParallelClaims has several workers claim at once: each message
// goes to exactly one of them.
func testOutboxParallelClaims(t *testing.T, s tessera.Store) {
	const n = 60
	for i := 0; i < n; i++ {
		v := newVerification("c1", fmt.Sprint("v", i))
		must(t, s.CreateVerification(ctx(), v, newMessage("c1", v.ID, fmt.Sprint("m", i))))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.ClaimMessages(ctx(), tessera.ChannelEmail, fmt.Sprint("w", w), t0, time.Minute, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct messages, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("message %s claimed %d times", id, c)
		}
	}
}

func testDeleteStale(t *testing.T, s tessera.Store) {
	old := newVerification("c1", "old")
	old.ExpiresAt = t0.Add(-time.Hour)
	must(t, s.CreateVerification(ctx(), old, newMessage("c1", "old", "m-old")))
	must(t, s.MarkMessagesSent(ctx(), []string{"m-old"}, t0))
	must(t, s.CreateVerification(ctx(), newVerification("c1", "fresh"), newMessage("c1", "fresh", "m-fresh")))
	n, err := s.DeleteStale(ctx(), t0.Add(time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("deleted %d rows, want the expired verification and its sent message", n)
	}
	_, err = s.Verification(ctx(), "c1", "old")
	wantCode(t, err, tessera.ENOTFOUND)
	if _, err := s.Verification(ctx(), "c1", "fresh"); err != nil {
		t.Fatalf("fresh verification deleted: %v", err)
	}
	if m, err := s.MessageForVerification(ctx(), "c1", "fresh"); err != nil || m.Status != tessera.MessagePending {
		t.Fatalf("pending message deleted: %v", err)
	}
}

// failAttempt gives a wrong code, as the engine checks codes it hashed
// (CheckCodeHash): two hash forms, as during a key rotation, neither the
// stored one.
func failAttempt(s tessera.Store, owner string, m tessera.Method, id string, now time.Time) (*tessera.Verification, error) {
	v, ok, err := s.CheckCodeHash(ctx(), owner, m, id, now, [][]byte{[]byte("hash-of-another"), []byte("hash-of-a-third")})
	if ok {
		return nil, fmt.Errorf("CheckCodeHash reported a right code for hashes that differ")
	}
	return v, err
}

// consume gives a right code: the stored hash is the second of two forms.
func consume(s tessera.Store, owner string, m tessera.Method, id string, now time.Time) (*tessera.Verification, error) {
	v, ok, err := s.CheckCodeHash(ctx(), owner, m, id, now, [][]byte{[]byte("hash-of-another"), []byte("hash-of-code")})
	if err == nil && !ok {
		return nil, fmt.Errorf("CheckCodeHash reported a wrong code for the stored hash")
	}
	return v, err
}

// testCheckCodeHashUnderManyKeys: an operator may configure any number
// of HMAC keys (TESSERA_HMAC_KEY); a code hashed under the oldest of
// twelve is still right, and a wrong one under twelve still counts.
func testCheckCodeHashUnderManyKeys(t *testing.T, s tessera.Store) {
	must(t, s.CreateVerification(ctx(), newVerification("c1", "many"), nil))
	var hashes [][]byte
	for i := range 11 {
		hashes = append(hashes, []byte(fmt.Sprint("hash-under-key-", i)))
	}
	got, ok, err := s.CheckCodeHash(ctx(), "c1", tessera.MethodEmail, "many", t0, hashes)
	must(t, err)
	if ok || got.Attempts != 1 {
		t.Fatalf("wrong code under 11 keys: ok %v, attempts %d", ok, got.Attempts)
	}
	got, ok, err = s.CheckCodeHash(ctx(), "c1", tessera.MethodEmail, "many", t0, append(hashes, []byte("hash-of-code")))
	must(t, err)
	if !ok || got.ConsumedAt.IsZero() {
		t.Fatalf("right code under the 12th key: ok %v, %+v", ok, got)
	}
}

// testCheckCodeWithCallback: CheckCode (which google_auth codes take)
// counts what check refuses, locks at the cap and consumes what it
// accepts; check gets the stored row.
func testCheckCodeWithCallback(t *testing.T, s tessera.Store) {
	v := newVerification("c1", "cb")
	must(t, s.CreateVerification(ctx(), v, nil))
	for i := 1; i < v.MaxAttempts; i++ {
		got, ok, err := s.CheckCode(ctx(), "c1", tessera.MethodEmail, "cb", t0, func(*tessera.Verification) bool { return false })
		must(t, err)
		if ok || got.Attempts != i {
			t.Fatalf("wrong code %d: ok %v, attempts %d", i, ok, got.Attempts)
		}
	}
	got, ok, err := s.CheckCode(ctx(), "c1", tessera.MethodEmail, "cb", t0, func(*tessera.Verification) bool { return true })
	must(t, err)
	if !ok || got.ConsumedAt.IsZero() || got.SealedContent != nil {
		t.Fatalf("right code: ok %v, %+v", ok, got)
	}
	_, _, err = s.CheckCode(ctx(), "c1", tessera.MethodEmail, "cb", t0, func(*tessera.Verification) bool { return true })
	wantCode(t, err, tessera.ENOTFOUND)
	w := newVerification("c1", "cb-locked")
	must(t, s.CreateVerification(ctx(), w, nil))
	for range w.MaxAttempts {
		_, _, err := s.CheckCode(ctx(), "c1", tessera.MethodEmail, "cb-locked", t0, func(*tessera.Verification) bool { return false })
		must(t, err)
	}
	_, _, err = s.CheckCode(ctx(), "c1", tessera.MethodEmail, "cb-locked", t0, func(*tessera.Verification) bool { return true })
	wantCode(t, err, tessera.ELOCKED)
}

// testCheckSeesTheStoredVerification: check gets the stored row, so it
// can compare the code hash.
func testCheckSeesTheStoredVerification(t *testing.T, s tessera.Store) {
	must(t, s.CreateVerification(ctx(), newVerification("c1", "v"), nil))
	var seen *tessera.Verification
	v, ok, err := s.CheckCode(ctx(), "c1", tessera.MethodEmail, "v", t0, func(v *tessera.Verification) bool {
		seen = v
		return bytes.Equal(v.CodeHash, []byte("hash-of-code"))
	})
	must(t, err)
	if !ok || seen == nil || seen.Consumer != "a@example.com" || v.ConsumedAt.IsZero() {
		t.Fatalf("check saw %+v; result %+v, %v", seen, v, ok)
	}
}

// testParallelCreatesWithConflicts creates 40 verifications at once, half
// of them with ids already taken: each conflict fails alone, every other
// create succeeds with its message.
func testParallelCreatesWithConflicts(t *testing.T, s tessera.Store) {
	for i := 0; i < 20; i++ {
		must(t, s.CreateVerification(ctx(), newVerification("c1", fmt.Sprint("taken", i)), nil))
	}
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprint("new", i)
			if i%2 == 0 {
				id = fmt.Sprint("taken", i/2)
			}
			errs[i] = s.CreateVerification(ctx(), newVerification("c1", id), newMessage("c1", id, fmt.Sprint("msg", i)))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 {
			wantCode(t, err, tessera.ECONFLICT)
			if _, err := s.MessageForVerification(ctx(), "c1", fmt.Sprint("taken", i/2)); tessera.ErrorCode(err) != tessera.ENOTFOUND {
				t.Fatalf("a conflicting create left its message behind (%v)", err)
			}
			continue
		}
		must(t, err)
		m, err := s.MessageForVerification(ctx(), "c1", fmt.Sprint("new", i))
		must(t, err)
		if m.ID != fmt.Sprint("msg", i) {
			t.Fatalf("create %d stored message %s", i, m.ID)
		}
	}
}

// testRenewVerification: a renewal creates a missing verification and
// replaces a consumed or expired one, but never one still in use, locked
// or not: that is ECONFLICT and leaves it, and its message, as they were.
func testRenewVerification(t *testing.T, s tessera.Store) {
	v := newVerification("c1", "r")
	must(t, s.RenewVerification(ctx(), v, newMessage("c1", "r", "m1")))
	got, err := s.Verification(ctx(), "c1", "r")
	must(t, err)
	if got.Attempts != 0 || !got.ExpiresAt.Equal(v.ExpiresAt) {
		t.Fatalf("renewal of a missing verification stored %+v", got)
	}

	// In use: a wrong code counted, then a renewal a second before expiry.
	_, err = failAttempt(s, "c1", tessera.MethodEmail, "r", t0)
	must(t, err)
	early := newVerification("c1", "r")
	early.CreatedAt, early.ExpiresAt = v.ExpiresAt.Add(-time.Second), v.ExpiresAt.Add(time.Hour)
	wantCode(t, s.RenewVerification(ctx(), early, newMessage("c1", "r", "m2")), tessera.ECONFLICT)
	// Locked, not expired: still in force.
	for i := 0; i < 2; i++ {
		_, err = failAttempt(s, "c1", tessera.MethodEmail, "r", t0)
		must(t, err)
	}
	wantCode(t, s.RenewVerification(ctx(), early, newMessage("c1", "r", "m3")), tessera.ECONFLICT)
	got, err = s.Verification(ctx(), "c1", "r")
	must(t, err)
	if !got.Locked() || got.Attempts != 3 || !got.ExpiresAt.Equal(v.ExpiresAt) {
		t.Fatalf("a refused renewal changed the verification: %+v", got)
	}
	if m, err := s.MessageForVerification(ctx(), "c1", "r"); err != nil || m.ID != "m1" {
		t.Fatalf("a refused renewal left a message behind: %+v, %v", m, err)
	}

	// Expired (at its expiry, as for CheckCode): replaced, attempts afresh.
	late := newVerification("c1", "r")
	late.CreatedAt, late.ExpiresAt = v.ExpiresAt, v.ExpiresAt.Add(time.Hour)
	must(t, s.RenewVerification(ctx(), late, nil))
	got, err = s.Verification(ctx(), "c1", "r")
	must(t, err)
	if got.Attempts != 0 || !got.CreatedAt.Equal(late.CreatedAt) || !got.ExpiresAt.Equal(late.ExpiresAt) {
		t.Fatalf("renewal of an expired verification stored %+v", got)
	}

	// Consumed: replaced, even before its expiry.
	_, err = consume(s, "c1", tessera.MethodEmail, "r", late.CreatedAt)
	must(t, err)
	again := newVerification("c1", "r")
	again.CreatedAt, again.ExpiresAt = late.CreatedAt.Add(time.Second), late.ExpiresAt.Add(time.Second)
	must(t, s.RenewVerification(ctx(), again, nil))
	got, err = s.Verification(ctx(), "c1", "r")
	must(t, err)
	if !got.ConsumedAt.IsZero() || got.Attempts != 0 || !got.ExpiresAt.Equal(again.ExpiresAt) {
		t.Fatalf("renewal of a consumed verification stored %+v", got)
	}
	_, err = failAttempt(s, "c1", tessera.MethodEmail, "r", again.CreatedAt)
	must(t, err)
}

// testParallelRenewals is the renew-then-check pattern of many requests at
// once, on a missing verification and then on an expired, locked one:
// exactly one renewal wins each time, and no more wrong codes are counted
// than the cap allows.
func testParallelRenewals(t *testing.T, s tessera.Store) {
	for round, now := range []time.Time{t0, t0.Add(time.Hour)} {
		var renewed, counted atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := newVerification("c1", "pr")
				v.CreatedAt, v.ExpiresAt = now, now.Add(time.Hour)
				switch err := s.RenewVerification(ctx(), v, nil); tessera.ErrorCode(err) {
				case "":
					renewed.Add(1)
				case tessera.ECONFLICT:
				default:
					t.Errorf("renew: %v", err)
				}
				switch _, err := failAttempt(s, "c1", tessera.MethodEmail, "pr", now); tessera.ErrorCode(err) {
				case "":
					counted.Add(1)
				case tessera.ELOCKED:
				default:
					t.Errorf("check: %v", err)
				}
			}()
		}
		wg.Wait()
		if renewed.Load() != 1 || counted.Load() != 3 {
			t.Fatalf("round %d: %d of 40 parallel renewals won and %d wrong codes were counted, want 1 and 3 (the cap)", round, renewed.Load(), counted.Load())
		}
	}
}

func ids(ms []*tessera.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// testDeliveryReports: provider reports move a message's delivery state;
// a report for another SID changes nothing, a delivery is never undone, and
// a conversion is recorded once, only after delivery.
func testDeliveryReports(t *testing.T, st tessera.Store) {
	s, ok := st.(tessera.DeliveryStore)
	if !ok {
		t.Skip("not a DeliveryStore")
	}
	v := newVerification("c1", "v-report")
	m := newMessage("c1", v.ID, "m-report")
	m.Channel = tessera.ChannelSMS
	must(t, st.CreateVerification(ctx(), v, m))
	get := func() *tessera.Message {
		t.Helper()
		got, err := st.MessageForVerification(ctx(), "c1", v.ID)
		must(t, err)
		return got
	}
	wantCode(t, s.SetProviderID(ctx(), "nope", "SM1"), tessera.ENOTFOUND)
	_, err := s.RecordConversion(ctx(), "c1", v.ID, t0)
	wantCode(t, err, tessera.ENOTFOUND) // not delivered
	must(t, s.SetProviderID(ctx(), m.ID, "SM1"))
	wantCode(t, s.RecordDelivery(ctx(), m.ID, "SM2", tessera.DeliveryFailed, "30007", t0), tessera.ENOTFOUND)
	wantCode(t, s.RecordDelivery(ctx(), "nope", "SM1", tessera.DeliveryFailed, "30007", t0), tessera.ENOTFOUND)
	if got := get(); got.ProviderID != "SM1" || got.DeliveryStatus != "" || got.ProviderError != "" {
		t.Fatalf("after foreign reports: %+v", got)
	}
	// Only a delivered message marks its verification, which is what
	// makes the engine ask for a conversion.
	delivered := func() bool {
		t.Helper()
		got, err := st.Verification(ctx(), "c1", v.ID)
		must(t, err)
		return got.Delivered
	}
	must(t, s.RecordDelivery(ctx(), m.ID, "SM1", tessera.DeliveryUndelivered, "30003", t0))
	if got := get(); got.DeliveryStatus != tessera.DeliveryUndelivered || got.ProviderError != "30003" || !got.DeliveredAt.IsZero() {
		t.Fatalf("after undelivered: %+v", got)
	}
	if delivered() {
		t.Fatal("an undelivered message marked its verification delivered")
	}
	must(t, s.RecordDelivery(ctx(), m.ID, "SM1", tessera.DeliveryDelivered, "", t0.Add(time.Second)))
	if !delivered() {
		t.Fatal("a delivered message did not mark its verification delivered")
	}
	wantCode(t, s.RecordDelivery(ctx(), m.ID, "SM1", tessera.DeliveryFailed, "30008", t0.Add(2*time.Second)), tessera.ENOTFOUND)
	if got := get(); got.DeliveryStatus != tessera.DeliveryDelivered || got.ProviderError != "" || !got.DeliveredAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("after delivered: %+v", got)
	}
	conv, err := s.RecordConversion(ctx(), "c1", v.ID, t0.Add(time.Minute))
	must(t, err)
	if conv.ID != m.ID || conv.Channel != tessera.ChannelSMS || !conv.ConvertedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("conversion %+v", conv)
	}
	_, err = s.RecordConversion(ctx(), "c1", v.ID, t0.Add(2*time.Minute))
	wantCode(t, err, tessera.ENOTFOUND) // once
	byID, err := s.Message(ctx(), m.ID)
	must(t, err)
	if byID.ID != m.ID || byID.VerificationID != v.ID || byID.DeliveryStatus != tessera.DeliveryDelivered || byID.To != m.To {
		t.Fatalf("Message(%s) = %+v", m.ID, byID)
	}
	_, err = s.Message(ctx(), "nope")
	wantCode(t, err, tessera.ENOTFOUND)

	// A report that arrives before the SID was recorded records it.
	v2 := newVerification("c1", "v-report2")
	m2 := newMessage("c1", v2.ID, "m-report2")
	must(t, st.CreateVerification(ctx(), v2, m2))
	must(t, s.RecordDelivery(ctx(), m2.ID, "SM9", tessera.DeliveryFailed, "30006", t0))
	got, err := st.MessageForVerification(ctx(), "c1", v2.ID)
	must(t, err)
	if got.ProviderID != "SM9" || got.DeliveryStatus != tessera.DeliveryFailed || got.ProviderError != "30006" {
		t.Fatalf("early report: %+v", got)
	}
}
