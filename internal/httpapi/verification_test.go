package httpapi_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEmailVerificationFlow(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		init := e.do("POST", "/methods/email/actions/initiate", map[string]any{
			"consumer": "alice@example.com", "issuer": "Acme",
			"template": map[string]any{"subject": "Confirm your email", "body": "Code {{{CODE}}} for {{{VERIFICATION_ID}}}"},
			"policy":   map[string]any{"expiredOn": "01:00:00"},
			"payload":  map[string]any{"your": "custom payload"},
		}).want(t, 200)
		id := init.str("verificationId")
		if init.body["attempts"] != 0.0 || init.body["expiredOn"] != float64(e.clock.Now().Add(time.Hour).Unix()) ||
			init.body["payload"].(map[string]any)["your"] != "custom payload" {
			t.Fatalf("initiate answered %s", init.raw)
		}

		msgs := e.deliver()
		if len(msgs) != 1 || msgs[0].Channel != "email" || msgs[0].To != "alice@example.com" || msgs[0].Subject != "Confirm your email" ||
			!strings.HasSuffix(msgs[0].Body, " for "+id) {
			t.Fatalf("delivered %+v", msgs)
		}
		code := sixDigits.FindString(msgs[0].Body)

		got := e.do("GET", "/methods/email/verifiers/"+id, nil).want(t, 200)
		if strings.Contains(got.raw, code) {
			t.Fatalf("GET shows the code: %s", got.raw)
		}
		if d := got.data()["delivery"].(map[string]any); d["status"] != "sent" {
			t.Fatalf("delivery state %v, want sent", d)
		}

		bad := e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": wrong(code)}).want(t, 422)
		if bad.str("error") != "Invalid code" || bad.data()["attempts"] != 1.0 || bad.data()["verificationId"] != id {
			t.Fatalf("wrong code answered %s", bad.raw)
		}
		ok := e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
		if ok.data()["verificationId"] != id || ok.data()["consumer"] != "alice@example.com" || ok.data()["attempts"] != 1.0 {
			t.Fatalf("validate answered %s", ok.raw)
		}
		// Single use.
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 404)
		e.do("GET", "/methods/email/verifiers/"+id, nil).want(t, 404)
	})
}

// wrong returns a code of the same shape that is not code.
func wrong(code string) string {
	if code[0] == '9' {
		return "0" + code[1:]
	}
	return string(code[0]+1) + code[1:]
}

func TestPhoneVerificationSendsSMSToE164(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		r := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "4155552671"}).want(t, 422)
		if p, _ := r.detail(); p != "consumer" {
			t.Fatalf("a number without country code was rejected on %q, want consumer", p)
		}
		r = e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671", "issuer": "Acme"}).want(t, 200)
		msgs := e.deliver()
		if len(msgs) != 1 || msgs[0].Channel != "sms" || msgs[0].To != "+14155552671" {
			t.Fatalf("delivered %+v", msgs)
		}
		code := sixDigits.FindString(msgs[0].Body)
		e.do("POST", "/methods/phone/verifiers/"+r.str("verificationId")+"/actions/validate", map[string]any{"code": code}).want(t, 200)
	})
}

func TestAttemptsCapLocksTheVerification(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "bob@example.com", "policy": map[string]any{"maxAttempts": 3}}).want(t, 200).str("verificationId")
		code := e.codeFor("bob@example.com")
		for i := 1; i <= 3; i++ {
			r := e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": wrong(code)}).want(t, 422)
			if r.data()["attempts"] != float64(i) {
				t.Fatalf("attempt %d reported %v", i, r.data()["attempts"])
			}
		}
		r := e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 422)
		if r.str("code") != "locked" {
			t.Fatalf("the right code after the cap answered %s, want locked", r.raw)
		}
	})
}

// TestParallelGuessesNeverPassTheCap sends 100 wrong guesses at once at a
// verification that allows 5, then the right code.
func TestParallelGuessesNeverPassTheCap(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "carol@example.com"}).want(t, 200).str("verificationId")
		code := e.codeFor("carol@example.com")
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": wrong(code)})
				mu.Lock()
				counts[fmt.Sprint(r.status, " ", r.str("code"))]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if counts["422 invalid_code"] != 5 || counts["422 locked"] != 95 {
			t.Fatalf("outcomes %v, want 5 invalid_code and 95 locked", counts)
		}
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 422)
	})
}

// TestParallelRightCodesSucceedOnce sends the right code 20 times at once.
func TestParallelRightCodesSucceedOnce(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "dan@example.com", "policy": map[string]any{"maxAttempts": 50}}).want(t, 200).str("verificationId")
		code := e.codeFor("dan@example.com")
		var mu sync.Mutex
		ok := 0
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).status == 200 {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if ok != 1 {
			t.Fatalf("the same code succeeded %d times", ok)
		}
	})
}

func TestExpiryFollowsTheEngineClock(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "erin@example.com", "policy": map[string]any{"expiredOn": "00:10:00"}}).want(t, 200).str("verificationId")
		code := e.codeFor("erin@example.com")
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": wrong(code)}).want(t, 422)
		e.clock.Advance(10 * time.Minute)
		r := e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 422)
		if r.str("code") != "expired" || r.data()["attempts"] != 1.0 {
			t.Fatalf("an expired verification answered %s", r.raw)
		}
	})
}

func TestDeleteInvalidates(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "fay@example.com"}).want(t, 200).str("verificationId")
		code := e.codeFor("fay@example.com")
		e.do("DELETE", "/methods/phone/verifiers/"+id, nil).want(t, 404) // wrong method
		if r := e.do("DELETE", "/methods/email/verifiers/"+id, nil).want(t, 200); r.raw != `{"status":200}`+"\n" {
			t.Fatalf("delete answered %q", r.raw)
		}
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 404)
		e.do("GET", "/methods/email/verifiers/"+id, nil).want(t, 404)
		e.do("DELETE", "/methods/email/verifiers/"+id, nil).want(t, 404)
	})
}

func TestForcedIDAndCode(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const id = "dc910ae0-7c67-4ace-8ebb-9edd4b5d8b0f"
		body := map[string]any{"consumer": "gus@example.com", "policy": map[string]any{"forcedVerificationId": id, "forcedCode": "1234qwertA"}}
		if got := e.do("POST", "/methods/email/actions/initiate", body).want(t, 200).str("verificationId"); got != id {
			t.Fatalf("forced id ignored: %s", got)
		}
		e.do("POST", "/methods/email/actions/initiate", body).want(t, 409)
		if m := e.deliver(); len(m) != 1 || !strings.Contains(m[0].Body, "1234qwertA") {
			t.Fatalf("delivered %+v", m)
		}
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": "1234qwertA"}).want(t, 200)
	})
}

// TestClientsSeeOnlyTheirOwn: another client's verification ids answer 404.
func TestClientsSeeOnlyTheirOwn(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "hal@example.com"}).want(t, 200).str("verificationId")
		code := e.codeFor("hal@example.com")
		other := map[string]string{"Authorization": "Bearer " + e.newClient("other")}
		e.doWith("GET", "/methods/email/verifiers/"+id, nil, other).want(t, 404)
		e.doWith("POST", "/methods/email/verifiers/"+id+"/actions/validate", `{"code":"`+code+`"}`, other).want(t, 404)
		e.doWith("DELETE", "/methods/email/verifiers/"+id, nil, other).want(t, 404)
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
	})
}

func TestAuthentication(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		path := "/methods/email/actions/initiate"
		body := `{"consumer":"ivy@example.com"}`
		for name, auth := range map[string]string{
			"missing":   "",
			"malformed": "Basic abc",
			"unknown":   "Bearer tsk_notarealtoken",
			"empty":     "Bearer ",
		} {
			r := e.doWith("POST", path, body, map[string]string{"Authorization": auth}).want(t, 401)
			if r.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%s token: no WWW-Authenticate header", name)
			}
		}
		token := e.newClient("revoked-soon")
		e.doWith("POST", path, body, map[string]string{"Authorization": "Bearer " + token}).want(t, 200)
		if err := e.app.Clients.Revoke(t.Context(), "revoked-soon"); err != nil {
			t.Fatal(err)
		}
		e.doWith("POST", path, body, map[string]string{"Authorization": "Bearer " + token}).want(t, 401)
	})
}

func TestBadInputIsA4xxNamingTheField(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	long := strings.Repeat("x", 70<<10)
	cases := []struct {
		name, method, path, body string
		headers                  map[string]string
		status                   int
		path2                    string // the details path, when the answer names a field
	}{
		{"malformed JSON", "POST", "/methods/email/actions/initiate", `{"consumer":`, nil, 400, "body"},
		{"not JSON", "POST", "/methods/email/actions/initiate", `consumer=a`, nil, 400, "body"},
		{"empty body", "POST", "/methods/email/actions/initiate", ``, nil, 400, "body"},
		{"array body", "POST", "/methods/email/actions/initiate", `[1,2]`, nil, 422, "body"},
		{"two objects", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com"}{}`, nil, 400, "body"},
		{"wrong type", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com","generateCode":{"length":"32"}}`, nil, 422, "generateCode.length"},
		{"float length", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com","generateCode":{"length":6.5}}`, nil, 422, "generateCode.length"},
		{"huge length", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com","generateCode":{"length":99999999999999999999}}`, nil, 422, "generateCode.length"},
		{"short length", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com","generateCode":{"length":2}}`, nil, 422, "generateCode.length"},
		{"bad symbol set", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com","generateCode":{"symbolSet":[""]}}`, nil, 422, "generateCode.symbolSet"},
		{"consumer type", "POST", "/methods/email/actions/initiate", `{"consumer":5}`, nil, 422, "consumer"},
		{"no consumer", "POST", "/methods/email/actions/initiate", `{}`, nil, 422, "consumer"},
		{"bad email", "POST", "/methods/email/actions/initiate", `{"consumer":"not an email"}`, nil, 422, "consumer"},
		{"bad expiry", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com","policy":{"expiredOn":"1 hour"}}`, nil, 422, "policy.expiredOn"},
		{"bad forced id", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com","policy":{"forcedVerificationId":"123"}}`, nil, 422, "policy.forcedVerificationId"},
		{"template without code", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com","template":{"body":"hello"}}`, nil, 422, "template.body"},
		{"oversized body", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com","issuer":"` + long + `"}`, nil, 413, ""},
		{"text/plain", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com"}`, map[string]string{"Content-Type": "text/plain"}, 415, ""},
		{"Accept html", "POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com"}`, map[string]string{"Accept": "text/html"}, 406, ""},
		{"unknown method", "POST", "/methods/carrier_pigeon/actions/initiate", `{"consumer":"a@example.com"}`, nil, 404, ""},
		{"bad uuid", "GET", "/methods/email/verifiers/not-a-uuid", ``, nil, 422, "verificationId"},
		{"unknown uuid", "GET", "/methods/email/verifiers/5028c0cd-07a9-4fa7-8d88-49edd2a44b72", ``, nil, 404, ""},
		{"no code", "POST", "/methods/email/verifiers/5028c0cd-07a9-4fa7-8d88-49edd2a44b72/actions/validate", `{}`, nil, 422, "code"},
		{"code type", "POST", "/methods/email/verifiers/5028c0cd-07a9-4fa7-8d88-49edd2a44b72/actions/validate", `{"code":123456}`, nil, 422, "code"},
		{"removeSecret type", "POST", "/methods/email/verifiers/5028c0cd-07a9-4fa7-8d88-49edd2a44b72/actions/validate", `{"code":"1","removeSecret":"yes"}`, nil, 422, "removeSecret"},
		{"wrong HTTP method", "PUT", "/methods/email/actions/initiate", `{}`, nil, 405, ""},
		{"unknown route", "GET", "/nope", ``, nil, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"Authorization": "Bearer " + e.token}
			for k, v := range c.headers {
				h[k] = v
			}
			var body any
			if c.body != "" {
				body = c.body
			}
			r := e.doWith(c.method, c.path, body, h).want(t, c.status)
			if r.str("error") == "" {
				t.Fatalf("no error message: %s", r.raw)
			}
			if p, _ := r.detail(); p != c.path2 {
				t.Fatalf("details path %q, want %q: %s", p, c.path2, r.raw)
			}
		})
	}
}

func TestBlueprintMediaTypes(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	h := map[string]string{
		"Authorization": "Bearer " + e.token,
		"Accept":        "application/vnd.jincor+json; version=1",
		"Content-Type":  "application/json; charset=utf-8",
	}
	e.doWith("POST", "/methods/email/actions/initiate", `{"consumer":"a@example.com"}`, h).want(t, 200)
}

// TestGoogleAuthFlow walks the blueprint's google_auth notes with codes
// from an authenticator implemented here, independently of the server's.
func TestGoogleAuthFlow(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		initiate := func() *response {
			return e.do("POST", "/methods/google_auth/actions/initiate", map[string]any{"consumer": "alice@example.com", "issuer": "Acme"}).want(t, 200)
		}
		validate := func(id, code string, remove bool) *response {
			return e.do("POST", "/methods/google_auth/verifiers/"+id+"/actions/validate", map[string]any{"code": code, "removeSecret": remove})
		}
		first := initiate()
		secret1 := totpSecret(t, first.str("totpUri"), "alice@example.com")
		// Not verified yet: a new initiate issues a new secret.
		second := initiate()
		secret := totpSecret(t, second.str("totpUri"), "alice@example.com")
		if secret == secret1 {
			t.Fatal("a second initiate before verification kept the temporary secret")
		}
		if len(e.deliver()) != 0 {
			t.Fatal("google_auth sent a message")
		}
		// A code from the replaced secret is wrong.
		validate(second.str("verificationId"), totpCode(secret1, e.clock.Now()), false).want(t, 422)
		validate(second.str("verificationId"), totpCode(secret, e.clock.Now()), false).want(t, 200)

		// Verified: no new secret, and the same code cannot be used twice.
		third := initiate()
		if third.str("totpUri") != "" {
			t.Fatalf("initiate after verification issued a new secret: %s", third.raw)
		}
		r := validate(third.str("verificationId"), totpCode(secret, e.clock.Now()), false).want(t, 422)
		if r.str("code") != "invalid_code" {
			t.Fatalf("a replayed TOTP code answered %s", r.raw)
		}
		e.clock.Advance(30 * time.Second)
		validate(third.str("verificationId"), totpCode(secret, e.clock.Now()), false).want(t, 200)

		// removeSecret: the next initiate starts over with a new secret.
		e.clock.Advance(30 * time.Second)
		fourth := initiate()
		validate(fourth.str("verificationId"), totpCode(secret, e.clock.Now()), true).want(t, 200)
		if uri := initiate().str("totpUri"); uri == "" || totpSecret(t, uri, "alice@example.com") == secret {
			t.Fatalf("after removeSecret initiate returned uri %q", uri)
		}
	})
}

func totpSecret(t *testing.T, uri string, account string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("not an otpauth URI: %q", uri)
	}
	q := u.Query()
	if q.Get("issuer") == "" || q.Get("secret") == "" || !strings.Contains(u.Path, account) {
		t.Fatalf("otpauth URI %q lacks issuer, secret or account", uri)
	}
	return q.Get("secret")
}

// totpCode is RFC 6238 (SHA1, 6 digits, 30 s), written from the RFC.
func totpCode(secret string, now time.Time) string {
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(secret, "=")))
	if err != nil {
		panic(err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(now.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", bin%1_000_000)
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	e.doWith("GET", "/healthz", nil, nil).want(t, 200)
}

// TestResendSendsTheSameCode: the resend endpoint delivers the same code
// again, refuses during the cooldown with Retry-After, and stops at the cap.
func TestResendSendsTheSameCode(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "rae@example.com"}).want(t, 200).str("verificationId")
		code := e.codeFor("rae@example.com")
		resend := "/methods/email/verifiers/" + id + "/actions/resend"

		r := e.do("POST", resend, nil).want(t, 429)
		if r.header.Get("Retry-After") != "30" || r.str("code") != "too_many" {
			t.Fatalf("a resend within the cooldown answered %s (Retry-After %q)", r.raw, r.header.Get("Retry-After"))
		}
		for i := 2; i <= 5; i++ {
			e.clock.Advance(30 * time.Second)
			if got := e.do("POST", resend, nil).want(t, 200).data()["sends"]; got != float64(i) {
				t.Fatalf("send %d reported sends %v", i, got)
			}
			if again := e.codeFor("rae@example.com"); again != code {
				t.Fatalf("resend %d delivered code %s, want the same %s", i, again, code)
			}
		}
		e.clock.Advance(time.Minute)
		if r := e.do("POST", resend, nil).want(t, 429); r.header.Get("Retry-After") != "" {
			t.Fatalf("past the cap waiting does not help, yet Retry-After is %q", r.header.Get("Retry-After"))
		}
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
		e.do("POST", resend, nil).want(t, 404)
		e.do("POST", "/methods/google_auth/verifiers/"+id+"/actions/resend", nil).want(t, 422)
	})
}

// TestParallelResendsSendOnce: ten resends at once after the cooldown
// queue exactly one message.
func TestParallelResendsSendOnce(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200).str("verificationId")
		e.deliver()
		e.clock.Advance(time.Minute)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if e.do("POST", "/methods/phone/verifiers/"+id+"/actions/resend", nil).status == 200 {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if n := len(e.deliver()); ok != 1 || n != 1 {
			t.Fatalf("%d resends accepted and %d messages sent, want 1 and 1", ok, n)
		}
	})
}
