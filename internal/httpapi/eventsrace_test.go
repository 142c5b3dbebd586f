package httpapi_test

import (
	"sync"
	"testing"
)

// TestVerificationEventsUnderParallelCodes: with operator events on (the
// code check runs in a transaction with its events), guesses sent at once
// still count exactly maxAttempts, each counted one is one
// verification.failed and the lock one verification.locked; right codes
// sent at once pass once, with one verification.approved.
func TestVerificationEventsUnderParallelCodes(t *testing.T) {
	onEachStoreWithEvents(t, nil, func(t *testing.T, e *env, rcv *receiver) {
		validateAtOnce := func(id, code string, n int) (statuses map[string]int) {
			var mu sync.Mutex
			statuses = map[string]int{}
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code})
					key := r.str("code")
					if r.status == 200 {
						key = "ok"
					}
					mu.Lock()
					statuses[key]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			return statuses
		}

		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "bob@example.com", "policy": map[string]any{"maxAttempts": 3}}).want(t, 200).str("verificationId")
		code := e.codeFor("bob@example.com")
		got := validateAtOnce(id, wrong(code), 12)
		if got["locked"] != 9 || got["ok"] != 0 {
			t.Fatalf("12 guesses at once answered %v", got)
		}
		if r := e.do("GET", "/methods/email/verifiers/"+id, nil).want(t, 200); r.data()["attempts"] != 3.0 {
			t.Fatalf("attempts after 12 guesses at once: %v, want 3", r.data()["attempts"])
		}
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 422)
		e.deliver()
		evs := rcv.take()
		if len(ofType(evs, "verification.failed")) != 3 || len(ofType(evs, "verification.locked")) != 1 || len(evs) != 4 {
			t.Fatalf("events %+v, want three verification.failed and one verification.locked", evs)
		}

		id = e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "kim@example.com"}).want(t, 200).str("verificationId")
		code = e.codeFor("kim@example.com")
		if got := validateAtOnce(id, code, 8); got["ok"] != 1 {
			t.Fatalf("8 right codes at once answered %v, want one success", got)
		}
		e.deliver()
		evs = rcv.take()
		if len(evs) != 1 || evs[0].Type != "verification.approved" {
			t.Fatalf("events %+v, want one verification.approved", evs)
		}
	})
}
