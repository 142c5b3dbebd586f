package httpapi_test

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// withKey sends a request with the env's API token and an Idempotency-Key.
func (e *env) withKey(method, path string, body any, key string) *response {
	e.t.Helper()
	return e.doWith(method, path, body, map[string]string{"Authorization": "Bearer " + e.token, "Idempotency-Key": key})
}

// sentTo counts the delivered messages to `to`.
func sentTo(msgs []delivered, to string) int {
	n := 0
	for _, m := range msgs {
		if m.To == to {
			n++
		}
	}
	return n
}

// TestIdempotentInitiate: a retried initiate with the same key answers the
// first verification again and sends nothing; a new key is a new
// verification; the key with another body is refused; after 24 h the key
// is forgotten.
func TestIdempotentInitiate(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const path = "/methods/email/actions/initiate"
		body := map[string]any{"consumer": "ida@example.com", "payload": map[string]any{"order": 7}}
		first := e.withKey("POST", path, body, "key-1").want(t, 200)
		again := e.withKey("POST", path, body, "key-1").want(t, 200)
		id := first.str("verificationId")
		if id == "" || again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("first answer %s, retry %s (replayed %q)", first.raw, again.raw, again.header.Get("Idempotent-Replayed"))
		}
		msgs := e.deliver()
		if sentTo(msgs, "ida@example.com") != 1 {
			t.Fatalf("a retried initiate delivered %d messages, want 1: %+v", len(msgs), msgs)
		}
		code := sixDigits.FindString(msgs[0].Body)

		// The key with another body: refused, nothing sent.
		other := map[string]any{"consumer": "ida@example.com", "payload": map[string]any{"order": 8}}
		if r := e.withKey("POST", path, other, "key-1").want(t, 422); r.str("code") != "idempotency_mismatch" {
			t.Fatalf("the key reused with another body answered %s", r.raw)
		}
		// Nor on another method's path.
		if r := e.withKey("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+15551234567"}, "key-1").want(t, 422); r.str("code") != "idempotency_mismatch" {
			t.Fatalf("the key reused on another path answered %s", r.raw)
		}
		if msgs := e.deliver(); len(msgs) != 0 {
			t.Fatalf("refused requests sent %+v", msgs)
		}

		// A new key is a new request.
		e.clock.Advance(time.Minute)
		second := e.withKey("POST", path, body, "key-2").want(t, 200)
		if second.str("verificationId") == id {
			t.Fatal("a new key answered the first verification")
		}
		if got := sentTo(e.deliver(), "ida@example.com"); got != 1 {
			t.Fatalf("a new key delivered %d messages, want 1", got)
		}

		// The replayed answer names a verification that works.
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)

		// Bad keys are refused before anything runs.
		for _, bad := range []string{strings.Repeat("k", 256), "has space", "caf\u00e9"} {
			if r := e.withKey("POST", path, body, bad).want(t, 422); r.str("code") != "invalid" {
				t.Fatalf("key %q answered %s", bad, r.raw)
			}
		}

		// 24 h later the key is forgotten: the same request runs again.
		e.clock.Advance(24 * time.Hour)
		third := e.withKey("POST", path, body, "key-1").want(t, 200)
		if third.str("verificationId") == id || third.header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("after 24 h the key still answered %s", third.raw)
		}
		if got := sentTo(e.deliver(), "ida@example.com"); got != 1 {
			t.Fatalf("after 24 h delivered %d messages, want 1", got)
		}
		// And the janitor deletes what expired; the fresh claim stays.
		if _, err := e.app.Sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
		if again := e.withKey("POST", path, body, "key-1").want(t, 200); again.str("verificationId") != third.str("verificationId") {
			t.Fatalf("the sweep forgot a fresh key: %s", again.raw)
		}
	})
}

// TestIdempotentParallel: 20 requests at once with one key send exactly
// one message; every answer is the one verification or 409 in_progress.
func TestIdempotentParallel(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const n = 20
		results := make([]*response, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range results {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				results[i] = e.withKey("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "par@example.com"}, "one-key")
			}(i)
		}
		close(start)
		wg.Wait()
		ids := map[string]int{}
		inProgress := 0
		for _, r := range results {
			switch {
			case r == nil:
				t.Fatal("a request failed")
			case r.status == 200:
				ids[r.str("verificationId")]++
			case r.status == 409 && r.str("code") == "in_progress" && r.header.Get("Retry-After") != "":
				inProgress++
			default:
				t.Fatalf("a parallel request answered %d %s", r.status, r.raw)
			}
		}
		if len(ids) != 1 {
			t.Fatalf("parallel requests with one key made %d verifications: %v", len(ids), ids)
		}
		if got := sentTo(e.deliver(), "par@example.com"); got != 1 {
			t.Fatalf("parallel requests with one key delivered %d messages, want 1 (%d answered in_progress)", got, inProgress)
		}
	})
}

// TestIdempotentKeysOfTwoClients: the same key of two API clients names two
// requests.
func TestIdempotentKeysOfTwoClients(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		other := e.newClient("other-client")
		body := map[string]any{"consumer": "two@example.com"}
		a := e.withKey("POST", "/methods/email/actions/initiate", body, "shared-key").want(t, 200)
		b := e.doWith("POST", "/methods/email/actions/initiate", body, map[string]string{"Authorization": "Bearer " + other, "Idempotency-Key": "shared-key"}).want(t, 200)
		if a.str("verificationId") == b.str("verificationId") || b.header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("client B got client A's answer: %s / %s", a.raw, b.raw)
		}
		if got := sentTo(e.deliver(), "two@example.com"); got != 2 {
			t.Fatalf("delivered %d messages, want one per client", got)
		}
		// B reads its own verification, not A's.
		e.doWith("GET", "/methods/email/verifiers/"+a.str("verificationId"), nil, map[string]string{"Authorization": "Bearer " + other}).want(t, 404)
	})
}

// TestIdempotentResend: a resend refused by the cooldown does not keep its
// key; the successful one does, and its retry sends nothing.
func TestIdempotentResend(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "res@example.com"}).want(t, 200).str("verificationId")
		e.codeFor("res@example.com")
		resend := "/methods/email/verifiers/" + id + "/actions/resend"
		e.withKey("POST", resend, nil, "resend-1").want(t, 429)
		e.clock.Advance(30 * time.Second)
		first := e.withKey("POST", resend, nil, "resend-1").want(t, 200)
		if first.header.Get("Idempotent-Replayed") != "" || first.data()["sends"] != 2.0 {
			t.Fatalf("the resend after the cooldown answered %s", first.raw)
		}
		e.clock.Advance(30 * time.Second)
		again := e.withKey("POST", resend, nil, "resend-1").want(t, 200)
		if again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("the retried resend answered %s", again.raw)
		}
		if got := sentTo(e.deliver(), "res@example.com"); got != 1 {
			t.Fatalf("a resend and its retry delivered %d messages, want 1", got)
		}
		// The same key on another verification's resend is another request.
		id2 := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "res@example.com"}).want(t, 200).str("verificationId")
		if r := e.withKey("POST", "/methods/email/verifiers/"+id2+"/actions/resend", nil, "resend-1").want(t, 422); r.str("code") != "idempotency_mismatch" {
			t.Fatalf("the key on another verification answered %s", r.raw)
		}
	})
}

// TestIdempotentAccountSends: the account token sends honour the key, per
// user and, without a user, per client IP.
func TestIdempotentAccountSends(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "acc@example.com")
		// Signed in: the anti-phishing token.
		first := u.call("POST", "/api/v1/token/antiPhishing/adding", nil, "Idempotency-Key", "ap-1").want(t, 200)
		again := u.call("POST", "/api/v1/token/antiPhishing/adding", nil, "Idempotency-Key", "ap-1").want(t, 200)
		if again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry answered %s, first %s", again.raw, first.raw)
		}
		if got := sentTo(e.deliver(), u.email); got != 1 {
			t.Fatalf("a retried token send delivered %d messages, want 1", got)
		}
		// Another user's same key is theirs.
		v := register(t, e, "acc2@example.com")
		if r := v.call("POST", "/api/v1/token/antiPhishing/adding", nil, "Idempotency-Key", "ap-1").want(t, 200); r.header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("another user got the first user's answer: %s", r.raw)
		}
		if got := sentTo(e.deliver(), v.email); got != 1 {
			t.Fatalf("the second user got %d messages, want 1", got)
		}

		// Signed out: the password recovery token, keyed by client IP.
		ask := func(key string) *response {
			return e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": u.email, "destination": "EMAIL"},
				map[string]string{"Idempotency-Key": key}).want(t, 200)
		}
		e.clock.Advance(time.Minute)
		r1, r2 := ask("pr-1"), ask("pr-1")
		if r1.raw != r2.raw || r1.str("processingId") == "" {
			t.Fatalf("the retried recovery answered %s, first %s", r2.raw, r1.raw)
		}
		if got := sentTo(e.deliver(), u.email); got != 1 {
			t.Fatalf("a retried recovery delivered %d messages, want 1", got)
		}
		e.clock.Advance(time.Minute)
		if r3 := ask("pr-2"); r3.str("processingId") == r1.str("processingId") {
			t.Fatal("a new key answered the first recovery")
		}
		if got := sentTo(e.deliver(), u.email); got != 1 {
			t.Fatalf("a new key delivered %d messages, want 1", got)
		}
	})
}

// TestIdempotentSignUpAndPhone: a retried sign-up with its key answers the
// same processingId and sends one code, which confirms the account; a
// retried "add a phone" texts one code.
func TestIdempotentSignUpAndPhone(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const email = "idem-signup@example.com"
		body := map[string]any{"email": email, "password": "correct horse battery"}
		key := map[string]string{"Idempotency-Key": "signup-1"}
		first := e.doWith("POST", "/auth/register", body, key).want(t, 202)
		again := e.doWith("POST", "/auth/register", body, key).want(t, 202)
		if again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retried sign-up answered %s, first %s", again.raw, first.raw)
		}
		msgs := e.deliver()
		if got := sentTo(msgs, email); got != 1 {
			t.Fatalf("a retried sign-up delivered %d messages, want 1", got)
		}
		code := sixDigits.FindString(msgs[0].Body)
		r := e.doWith("POST", "/auth/register/confirm", map[string]any{"email": email, "code": code, "processingId": first.str("processingId")}, nil).want(t, 200)
		u := &user{e: e, email: email, password: "correct horse battery"}
		u.take(r)

		phone := map[string]any{"phone": "(415) 555-2671", "country": "US"}
		p1 := u.call("POST", "/auth/otp/methods/sms", phone, "Idempotency-Key", "phone-1").want(t, 200)
		p2 := u.call("POST", "/auth/otp/methods/sms", phone, "Idempotency-Key", "phone-1").want(t, 200)
		if p2.raw != p1.raw || p2.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retried add-phone answered %s, first %s", p2.raw, p1.raw)
		}
		if got := sentTo(e.deliver(), "+14155552671"); got != 1 {
			t.Fatalf("a retried add-phone texted %d codes, want 1", got)
		}
	})
}
