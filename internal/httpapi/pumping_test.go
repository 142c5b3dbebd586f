package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/verify"
)

// example is libphonenumber's example number of a type in a region, in
// E.164 and in the region's national form.
func example(t *testing.T, region string, typ phonenumbers.PhoneNumberType) (e164, national string) {
	t.Helper()
	num := phonenumbers.GetExampleNumberForType(region, typ)
	if num == nil {
		t.Fatalf("no example number of type %v in %s", typ, region)
	}
	return phonenumbers.Format(num, phonenumbers.E164), phonenumbers.Format(num, phonenumbers.NATIONAL)
}

func TestPremiumRateNumbersAreNotTexted(t *testing.T) {
	premium, premiumNational := example(t, "GB", phonenumbers.PREMIUM_RATE)
	shared, _ := example(t, "BE", phonenumbers.SHARED_COST)
	mobile, _ := example(t, "GB", phonenumbers.MOBILE)
	onEachStore(t, func(t *testing.T, e *env) {
		// The verification API: 422 naming the consumer, and nothing sent.
		for _, n := range []string{premium, shared} {
			r := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": n}).want(t, 422)
			if p, msg := r.detail(); p != "consumer" || !strings.Contains(msg, "number") {
				t.Fatalf("%s answered %s", n, r.raw)
			}
		}
		e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": mobile}).want(t, 200)
		if e.codeFor(mobile) == "" {
			t.Fatal("no code to the mobile number")
		}
		for _, m := range e.deliver() {
			if m.To == premium || m.To == shared {
				t.Fatalf("a message went to %s", m.To)
			}
		}

		// The accounts: adding a premium-rate phone names the field the
		// user filled, and stores nothing.
		u := register(t, e, "pat@example.com")
		r := u.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": premiumNational, "country": "GB"}).want(t, 422)
		if p, msg := r.detail(); p != "phone" || !strings.Contains(msg, "premium-rate") {
			t.Fatalf("add a premium-rate phone answered %s", r.raw)
		}
		if me := u.call("GET", "/auth/me", nil).want(t, 200); strings.Contains(me.raw, premium[len(premium)-2:]+`"`) {
			t.Fatalf("the premium-rate phone was stored: %s", me.raw)
		}
		r = u.call("POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber="+url.QueryEscape(premium), nil).want(t, 422)
		if p, _ := r.detail(); p != "newPhoneNumber" {
			t.Fatalf("add a premium-rate user key answered %s", r.raw)
		}
		u.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": mobile, "country": "GB"}).want(t, 200)
		e.codeFor(mobile)
	})
}

func TestSMSNumberTypesConfigurable(t *testing.T) {
	premium, _ := example(t, "GB", phonenumbers.PREMIUM_RATE)
	mobile, _ := example(t, "GB", phonenumbers.MOBILE)
	all, _ := verify.ParseNumberTypes("all")
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) { o.Limits.SMSNumberTypes = all })
	e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": premium}).want(t, 200)
	e.codeFor(premium)

	fixed, _ := verify.ParseNumberTypes("fixed_line")
	e = newEnvWith(t, stores[0].open(t), func(o *app.Options) { o.Limits.SMSNumberTypes = fixed })
	r := e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": mobile}).want(t, 422)
	if p, msg := r.detail(); p != "consumer" || !strings.Contains(msg, "mobile") {
		t.Fatalf("a mobile number with only landlines allowed: %s", r.raw)
	}
}

func TestPumpingBreakerTripsOnALowConversionPrefix(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) {
		o.Limits.SMSBreaker = &verify.Breaker{MinSends: 10, MinConversion: 0.3, Window: time.Hour}
	})
	initiate := func(n string) *response {
		return e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": n})
	}
	// A healthy prefix: every code is typed.
	for i := 0; i < 20; i++ {
		n := fmt.Sprintf("+1415555%04d", i)
		id := initiate(n).want(t, 200).str("verificationId")
		e.do("POST", "/methods/phone/verifiers/"+id+"/actions/validate", map[string]any{"code": e.codeFor(n)}).want(t, 200)
	}
	// A pumped prefix: codes nobody types.
	for i := 0; i < 10; i++ {
		initiate(fmt.Sprintf("+1212555%04d", i)).want(t, 200)
	}
	e.deliver()
	r := initiate("+12125559999").want(t, 429)
	if r.str("code") != "too_many" || r.header.Get("Retry-After") != "3600" || !strings.Contains(r.str("error"), "+1 2125") {
		t.Fatalf("the tripped prefix answered %s (Retry-After %q)", r.raw, r.header.Get("Retry-After"))
	}
	n := "+14155559999"
	id := initiate(n).want(t, 200).str("verificationId")
	e.do("POST", "/methods/phone/verifiers/"+id+"/actions/validate", map[string]any{"code": e.codeFor(n)}).want(t, 200)
	if m := scrape(t, e); !strings.Contains(m, `tessera_sms_breaker_trips_total{country="+1",level="prefix"} 1`) {
		t.Fatal("no trip in the metrics")
	}
	// After the cooldown it is half-open: a few probes go out (five), and
	// when enough of their codes are used (30%: two) the prefix closes.
	e.clock.Advance(time.Hour)
	for _, n := range []string{"+12125559998", "+12125559999"} {
		id = initiate(n).want(t, 200).str("verificationId")
		e.do("POST", "/methods/phone/verifiers/"+id+"/actions/validate", map[string]any{"code": e.codeFor(n)}).want(t, 200)
	}
	// Every change is in the audit log and the metrics.
	events, err := e.store.AuditEvents(context.Background(), tessera.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range events {
		if strings.HasPrefix(ev.Kind, "sms_breaker.") {
			kinds = append(kinds, ev.Kind+" "+ev.Detail[:strings.Index(ev.Detail, ":")])
		}
	}
	if want := []string{"sms_breaker.closed +1 2125", "sms_breaker.half_open +1 2125", "sms_breaker.open +1 2125"}; strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("audit events %q, want %q", kinds, want)
	}
	m := scrape(t, e)
	for _, st := range []string{"open", "half_open", "closed"} {
		if want := `tessera_sms_breaker_changes_total{level="prefix",state="` + st + `"} 1`; !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
