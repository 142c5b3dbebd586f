package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// IdempotencyStore is what the Idempotency-Key cases need: the records,
// and DeleteStale for the janitor.
type IdempotencyStore interface {
	tessera.Store
	tessera.IdempotencyStore
}

// RunIdempotency runs the Idempotency-Key cases. open returns a fresh,
// empty store for each test.
func RunIdempotency(t *testing.T, open func(t *testing.T) IdempotencyStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s IdempotencyStore)
	}{
		{"ClaimAnswerAndReplay", testIdemClaimAnswer},
		{"ScopesAndRoutesAreSeparate", testIdemScopes},
		{"ExpiredKeyIsForgotten", testIdemExpired},
		{"StaleClaimIsTakenOver", testIdemStaleClaim},
		{"Release", testIdemRelease},
		{"ParallelClaimsOneWins", testIdemParallel},
		{"DeleteStale", testIdemDeleteStale},
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

func idemRecord(scope, key, claim string, at time.Time) *tessera.IdempotencyRecord {
	return &tessera.IdempotencyRecord{Scope: scope, Route: "POST /methods/{method}/actions/initiate", Key: key,
		RequestHash: []byte("hash-of-request"), Claim: claim, CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour)}
}

// claim claims rec and fails the test unless it wins.
func claim(t *testing.T, s IdempotencyStore, rec *tessera.IdempotencyRecord) {
	t.Helper()
	held, err := s.ClaimIdempotencyKey(ctx(), rec, rec.CreatedAt.Add(-time.Minute))
	must(t, err)
	if held != nil {
		t.Fatalf("claim %s of %s/%s lost to %+v", rec.Claim, rec.Scope, rec.Key, held)
	}
}

// held claims rec and fails the test unless another record is in force,
// which it returns.
func held(t *testing.T, s IdempotencyStore, rec *tessera.IdempotencyRecord) *tessera.IdempotencyRecord {
	t.Helper()
	got, err := s.ClaimIdempotencyKey(ctx(), rec, rec.CreatedAt.Add(-time.Minute))
	must(t, err)
	if got == nil {
		t.Fatalf("claim %s of %s/%s won over a record in force", rec.Claim, rec.Scope, rec.Key)
	}
	return got
}

func testIdemClaimAnswer(t *testing.T, s IdempotencyStore) {
	first := idemRecord("client:c1", "k1", "claim-1", t0)
	claim(t, s, first)
	got := held(t, s, idemRecord("client:c1", "k1", "claim-2", t0.Add(time.Second)))
	if got.Status != 0 || got.Claim != "claim-1" || string(got.RequestHash) != "hash-of-request" || !got.CreatedAt.Equal(t0) ||
		!got.ExpiresAt.Equal(t0.Add(24*time.Hour)) || got.Route != first.Route {
		t.Fatalf("claim read back %+v", got)
	}
	// Only the holder answers.
	wantCode(t, s.AnswerIdempotencyKey(ctx(), idemRecord("client:c1", "k1", "claim-2", t0), 200, []byte("x")), tessera.ENOTFOUND)
	must(t, s.AnswerIdempotencyKey(ctx(), first, 200, []byte("sealed-answer")))
	got = held(t, s, idemRecord("client:c1", "k1", "claim-3", t0.Add(time.Hour)))
	if got.Status != 200 || string(got.Sealed) != "sealed-answer" || got.Claim != "claim-1" {
		t.Fatalf("answer read back %+v", got)
	}
	// An answered record is never answered again, nor released.
	wantCode(t, s.AnswerIdempotencyKey(ctx(), first, 500, nil), tessera.ENOTFOUND)
	must(t, s.ReleaseIdempotencyKey(ctx(), first))
	if got := held(t, s, idemRecord("client:c1", "k1", "claim-4", t0.Add(2*time.Hour))); got.Status != 200 {
		t.Fatalf("release removed an answered record: %+v", got)
	}
	// An answered record is in force however old its claim.
	got, err := s.ClaimIdempotencyKey(ctx(), idemRecord("client:c1", "k1", "claim-5", t0.Add(23*time.Hour)), t0.Add(23*time.Hour))
	must(t, err)
	if got == nil || got.Status != 200 {
		t.Fatalf("an answered record was taken over as stale: %+v", got)
	}
}

func testIdemScopes(t *testing.T, s IdempotencyStore) {
	claim(t, s, idemRecord("client:c1", "k", "a", t0))
	claim(t, s, idemRecord("client:c2", "k", "b", t0))
	other := idemRecord("client:c1", "k", "c", t0)
	other.Route = "POST /methods/{method}/verifiers/{id}/actions/resend"
	claim(t, s, other)
	claim(t, s, idemRecord("client:c1", "K", "d", t0)) // keys are case-sensitive
	if got := held(t, s, idemRecord("client:c2", "k", "e", t0)); got.Claim != "b" {
		t.Fatalf("c2's key holds claim %s", got.Claim)
	}
}

func testIdemExpired(t *testing.T, s IdempotencyStore) {
	first := idemRecord("user:u1", "k", "a", t0)
	claim(t, s, first)
	must(t, s.AnswerIdempotencyKey(ctx(), first, 200, []byte("first")))
	held(t, s, idemRecord("user:u1", "k", "b", t0.Add(24*time.Hour-time.Millisecond)))
	second := idemRecord("user:u1", "k", "c", t0.Add(24*time.Hour))
	second.RequestHash = []byte("another request")
	claim(t, s, second)
	got := held(t, s, idemRecord("user:u1", "k", "d", t0.Add(24*time.Hour+30*time.Second)))
	if got.Claim != "c" || got.Status != 0 || got.Sealed != nil || string(got.RequestHash) != "another request" {
		t.Fatalf("the expired record was not replaced whole: %+v", got)
	}
	// The first holder can no longer write over the new claim.
	wantCode(t, s.AnswerIdempotencyKey(ctx(), first, 200, []byte("late")), tessera.ENOTFOUND)
}

func testIdemStaleClaim(t *testing.T, s IdempotencyStore) {
	first := idemRecord("ip:192.0.2.1", "k", "a", t0)
	claim(t, s, first)
	// Not stale yet: the claim was made after staleBefore.
	if got, err := s.ClaimIdempotencyKey(ctx(), idemRecord("ip:192.0.2.1", "k", "b", t0.Add(time.Minute)), t0.Add(-time.Millisecond)); err != nil || got == nil {
		t.Fatalf("a live claim was taken over: %+v, %v", got, err)
	}
	// Stale: made at or before staleBefore, never answered.
	got, err := s.ClaimIdempotencyKey(ctx(), idemRecord("ip:192.0.2.1", "k", "c", t0.Add(2*time.Minute)), t0)
	must(t, err)
	if got != nil {
		t.Fatalf("a stale claim was not taken over: %+v", got)
	}
	wantCode(t, s.AnswerIdempotencyKey(ctx(), first, 200, []byte("late")), tessera.ENOTFOUND)
	must(t, s.ReleaseIdempotencyKey(ctx(), first)) // not the holder: nothing happens
	if got := held(t, s, idemRecord("ip:192.0.2.1", "k", "d", t0.Add(2*time.Minute+30*time.Second))); got.Claim != "c" {
		t.Fatalf("claim %s holds the key, want c", got.Claim)
	}
}

func testIdemRelease(t *testing.T, s IdempotencyStore) {
	first := idemRecord("client:c1", "k", "a", t0)
	claim(t, s, first)
	must(t, s.ReleaseIdempotencyKey(ctx(), first))
	claim(t, s, idemRecord("client:c1", "k", "b", t0.Add(time.Second)))
}

func testIdemParallel(t *testing.T, s IdempotencyStore) {
	const n = 20
	var wins atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.ClaimIdempotencyKey(ctx(), idemRecord("client:c1", "k", fmt.Sprint("claim-", i), t0), t0.Add(-time.Minute))
			if err != nil {
				errs <- err
				return
			}
			if got == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if wins.Load() != 1 {
		t.Fatalf("%d of %d parallel claims won, want exactly 1", wins.Load(), n)
	}
}

func testIdemDeleteStale(t *testing.T, s IdempotencyStore) {
	old := idemRecord("client:c1", "old", "a", t0.Add(-25*time.Hour))
	claim(t, s, old)
	must(t, s.AnswerIdempotencyKey(ctx(), old, 200, []byte("x")))
	claim(t, s, idemRecord("client:c1", "fresh", "b", t0))
	n, err := s.DeleteStale(ctx(), t0)
	must(t, err)
	if n != 1 {
		t.Fatalf("deleted %d rows, want the expired key", n)
	}
	held(t, s, idemRecord("client:c1", "fresh", "c", t0))
	// The deleted one is gone: a new claim wins even before its expiry
	// would have been checked.
	claim(t, s, idemRecord("client:c1", "old", "d", t0))
}
