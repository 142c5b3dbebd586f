package httpapi_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/ratelimit"
)

func TestPerClientLimit(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.Limits.Client = ratelimit.Limit{Rate: 5, Period: time.Second, Burst: 10}
	})
	for i := 0; i < 10; i++ {
		e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": fmt.Sprintf("c%d@example.com", i)}).want(t, 200)
	}
	r := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "c10@example.com"}).want(t, 429)
	if r.header.Get("Retry-After") != "1" || r.str("code") != "too_many" {
		t.Fatalf("over the client limit: %s (Retry-After %q)", r.raw, r.header.Get("Retry-After"))
	}
	// Another client has its own allowance.
	other := map[string]string{"Authorization": "Bearer " + e.newClient("other")}
	e.doWith("POST", "/methods/email/actions/initiate", `{"consumer":"d@example.com"}`, other).want(t, 200)
	e.clock.Advance(time.Second)
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "c11@example.com"}).want(t, 200)
}

func TestPerDestinationCaps(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	for i := 0; i < 10; i++ {
		e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "flood@example.com"}).want(t, 200)
	}
	r := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "flood@example.com"}).want(t, 429)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "someone-else@example.com"}).want(t, 200)
	// The hourly allowance refills one send every six minutes.
	e.clock.Advance(6 * time.Minute)
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "flood@example.com"}).want(t, 200)
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "flood@example.com"}).want(t, 429)
}

func TestPerDestinationDailyCap(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.Limits.DestinationHour = ratelimit.Disabled
		o.Limits.DestinationDay = ratelimit.Limit{Rate: 5, Period: 24 * time.Hour, Burst: 5}
	})
	for i := 0; i < 5; i++ {
		e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200)
	}
	e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 429)
	e.clock.Advance(time.Hour)
	e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 429)
	e.clock.Advance(4 * time.Hour)
	e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200)
}

func TestSMSCountriesAndCountryLimit(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.Limits.SMSCountries = map[string]bool{"US": true}
		o.Limits.SMSCountry = ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}
	})
	r := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+442071838750"}).want(t, 422)
	if p, _ := r.detail(); p != "consumer" {
		t.Fatalf("a disallowed country answered %s", r.raw)
	}
	for i := 0; i < 3; i++ {
		e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": fmt.Sprintf("+1415555267%d", i)}).want(t, 200)
	}
	e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552679"}).want(t, 429)
	// Email is not SMS.
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "x@example.com"}).want(t, 200)
}

func TestTrustedProxyDecidesTheClientIP(t *testing.T) {
	// Behind a trusted proxy (the test client is 127.0.0.1), each
	// X-Forwarded-For address gets its own per-IP allowance.
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.Limits.IP = ratelimit.Limit{Rate: 2, Period: time.Minute, Burst: 2}
	})
	login := func(xff string) int {
		return e.doWith("POST", "/auth/login", map[string]any{"email": "a@example.com", "password": "wrong password"}, map[string]string{"X-Forwarded-For": xff}).status
	}
	login("203.0.113.7")
	login("203.0.113.7")
	if got := login("203.0.113.7"); got != http.StatusTooManyRequests {
		t.Fatalf("third login from one client answered %d", got)
	}
	if got := login("198.51.100.9"); got != http.StatusUnauthorized {
		t.Fatalf("another client behind the proxy answered %d", got)
	}
	// A forged first hop does not help: the proxy appends the real one.
	if got := login("198.51.100.9, 203.0.113.7"); got != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For answered %d", got)
	}
}

func TestUntrustedPeersCannotChooseTheirIP(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.Limits.IP = ratelimit.Limit{Rate: 2, Period: time.Minute, Burst: 2}
	})
	for i := 0; i < 2; i++ {
		e.doWith("POST", "/auth/login", map[string]any{"email": "a@example.com", "password": "wrong password"}, map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i)}).want(t, 401)
	}
	e.doWith("POST", "/auth/login", map[string]any{"email": "a@example.com", "password": "wrong password"}, map[string]string{"X-Forwarded-For": "203.0.113.99"}).want(t, 429)
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	r := e.doWith("GET", "/healthz", nil, nil).want(t, 200)
	for h, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if r.header.Get("Content-Security-Policy") == "" {
		t.Error("no Content-Security-Policy")
	}
}

// TestRefusedResendsDoNotUseTheAllowance: resends the cooldown refuses do
// not count against the destination's hourly cap.
func TestRefusedResendsDoNotUseTheAllowance(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.Limits.DestinationHour = ratelimit.Limit{Rate: 2, Period: time.Hour, Burst: 2}
	})
	id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "r@example.com"}).want(t, 200).str("verificationId")
	for i := 0; i < 5; i++ {
		e.do("POST", "/methods/email/verifiers/"+id+"/actions/resend", nil).want(t, 429) // cooldown
	}
	e.clock.Advance(31 * time.Second)
	e.do("POST", "/methods/email/verifiers/"+id+"/actions/resend", nil).want(t, 200)
}

// TestAccountSMSCountryLimitIsPerUser: one user adding phone after phone
// of one country is refused before the country's SMS budget for accounts
// runs out, so another user still gets a code there.
func TestAccountSMSCountryLimitIsPerUser(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.Limits.SMSCountry = ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}
	})
	a, b := register(t, e, "ann@example.com"), register(t, e, "ben@example.com")
	refused := false
	for i := 0; i < 40 && !refused; i++ {
		r := a.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": fmt.Sprintf("41555526%02d", i), "country": "US"})
		switch r.status {
		case 200:
		case 429:
			refused = true
		default:
			t.Fatalf("adding phone %d answered %s", i, r.raw)
		}
		e.clock.Advance(time.Second)
	}
	if !refused {
		t.Fatal("one user added 40 phones of one country within the hour")
	}
	b.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "4155559999", "country": "US"}).want(t, 200)
	e.codeFor("+14155559999")
}

// TestPhoneRecoveryCannotUseUpTheCountryLimit: anyone may ask for a
// password recovery by PHONE_NUMBER; asking again and again for one
// account must not leave other users without SMS to that country.
func TestPhoneRecoveryCannotUseUpTheCountryLimit(t *testing.T) {
	// Fewer SMS to the country than the account's own hourly cap on one
	// destination (10), which would otherwise stop the flood first.
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.Limits.SMSCountry = ratelimit.Limit{Rate: 5, Period: time.Hour, Burst: 5}
	})
	victim := withSMSMFA(t, e, "vic@example.com", "+14155552671")
	for i := 0; i < 15; i++ {
		e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": victim.email, "destination": "PHONE_NUMBER", "processingId": label}, nil).want(t, 200)
		e.deliver()
		e.clock.Advance(31 * time.Second) // past the account's cooldown
	}
	other := register(t, e, "oli@example.com")
	other.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "4155559999", "country": "US"}).want(t, 200)
	e.codeFor("+14155559999")
}

// TestAccountDestinationLimitIsPerUser: a user who keeps sending codes to
// someone else's number (as their own unverified phone) does not use up
// that number's allowance for its owner.
func TestAccountDestinationLimitIsPerUser(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	a, owner := register(t, e, "amy@example.com"), register(t, e, "own@example.com")
	refused := false
	for i := 0; i < 40 && !refused; i++ {
		r := a.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "4155552671", "country": "US"})
		switch r.status {
		case 200:
		case 429:
			refused = true
		default:
			t.Fatalf("send %d answered %s", i, r.raw)
		}
		e.clock.Advance(31 * time.Second) // past the account's cooldown
	}
	if !refused {
		t.Fatal("one user sent 40 codes to one number")
	}
	e.deliver()
	owner.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "4155552671", "country": "US"}).want(t, 200)
	e.codeFor("+14155552671")
}

// TestDestinationLimitIgnoresCase: an address's local part is matched
// without case by every mail system that matters, so "Alice@Example.com"
// and "alice@example.com" share one per-destination allowance; the
// message still goes to the address as typed.
func TestDestinationLimitIgnoresCase(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.Limits.DestinationHour = ratelimit.Limit{Rate: 2, Period: time.Hour, Burst: 2}
	})
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "Alice@Example.com"}).want(t, 200)
	if got := e.deliver(); len(got) != 1 || got[0].To != "Alice@example.com" {
		t.Fatalf("delivered %+v, want one message to Alice@example.com", got)
	}
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "alice@example.com"}).want(t, 200)
	for _, spelling := range []string{"ALICE@example.com", "alice@EXAMPLE.com", "aLiCe@example.COM"} {
		e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": spelling}).want(t, 429)
	}
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "bob@example.com"}).want(t, 200)
}
