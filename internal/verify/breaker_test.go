package verify

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

func TestBreakerTripsOnALowConversionPrefixOnly(t *testing.T) {
	var trips []Trip
	b := &Breaker{MinSends: 20, MinConversion: 0.2, Window: time.Hour, OnTrip: func(tr Trip) { trips = append(trips, tr) }}
	now := t0
	// A healthy prefix: half the codes are used.
	for i := 0; i < 100; i++ {
		n := fmt.Sprintf("+4474001%05d", i)
		if tr := b.Send(n, now); tr != nil {
			t.Fatalf("healthy send %d refused: %+v", i, tr)
		}
		if i%2 == 0 {
			b.Validated(n, now)
		}
	}
	// A pumped prefix: one code in twenty used.
	pumped := func(i int) string { return fmt.Sprintf("+4478001%05d", i) }
	for i := 0; i < 20; i++ {
		if tr := b.Send(pumped(i), now); tr != nil {
			t.Fatalf("pumped send %d refused before the volume: %+v", i, tr)
		}
		if i == 0 {
			b.Validated(pumped(i), now)
		}
	}
	if len(trips) != 1 || trips[0].Prefix != "+44 7800" || trips[0].Sends != 20 || trips[0].Validated != 1 {
		t.Fatalf("trips %+v", trips)
	}
	tr := b.Send(pumped(99), now.Add(time.Minute))
	if tr == nil || tr.Prefix != "+44 7800" || !tr.Until.Equal(now.Add(time.Hour)) {
		t.Fatalf("a send to the tripped prefix: %+v", tr)
	}
	if tr := b.Send("+447400999999", now.Add(time.Minute)); tr != nil {
		t.Fatalf("the healthy prefix was refused: %+v", tr)
	}
	if got := b.Tripped(now.Add(time.Minute)); len(got) != 1 || got[0].Prefix != "+44 7800" {
		t.Fatalf("Tripped = %+v", got)
	}
	// It recovers after the cooldown, counting afresh.
	if tr := b.Send(pumped(1), now.Add(time.Hour)); tr != nil {
		t.Fatalf("after the cooldown: %+v", tr)
	}
	// An operator clears a trip.
	for i := 0; i < 19; i++ {
		b.Send(pumped(i), now.Add(time.Hour))
	}
	if tr := b.Send(pumped(1), now.Add(time.Hour)); tr == nil {
		t.Fatal("no second trip")
	}
	if !b.Clear("+44 7800", now.Add(time.Hour)) || b.Send(pumped(1), now.Add(time.Hour)) != nil {
		t.Fatal("Clear did not end the trip")
	}
	if b.Clear("+44 7800", now.Add(time.Hour)) {
		t.Fatal("Clear of a prefix not tripped reported a trip")
	}
}

func TestBreakerTripsACountryOnMoreVolume(t *testing.T) {
	b := &Breaker{MinSends: 5, MinConversion: 0.5, Window: time.Hour, CountryFactor: 4}
	// Twenty prefixes of one send each: no prefix has the volume, the
	// country does.
	var refused *Trip
	for i := 0; i < 21 && refused == nil; i++ {
		refused = b.Send(fmt.Sprintf("+3361%02d00000", i), t0)
	}
	if refused == nil || refused.Prefix != "+33" {
		t.Fatalf("the country did not trip: %+v", refused)
	}
	if b.Send("+14155552671", t0) != nil {
		t.Fatal("another country was refused")
	}
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

func TestEngineBreaker(t *testing.T) {
	f := newEngine(t)
	f.e.Breaker = &Breaker{MinSends: 10, MinConversion: 0.3, Window: time.Hour}
	ctx := context.Background()
	send := func(n string) (*tessera.Verification, error) {
		out, err := f.e.Initiate(ctx, owner, tessera.MethodPhone, &InitiateRequest{Consumer: n})
		if err != nil {
			return nil, err
		}
		return out.Verification, nil
	}
	// Healthy: every code is used.
	for i := 0; i < 30; i++ {
		v, err := send(fmt.Sprintf("+1415555%04d", i))
		if err != nil {
			t.Fatalf("healthy send %d: %v", i, err)
		}
		_, c := f.message(t, v.ID)
		if _, err := f.validate(tessera.MethodPhone, v.ID, sixDigits.FindString(c.Body)); err != nil {
			t.Fatalf("validate: %v", err)
		}
	}
	// Pumped: nobody types a code.
	for i := 0; i < 10; i++ {
		if _, err := send(fmt.Sprintf("+1212555%04d", i)); err != nil {
			t.Fatalf("pumped send %d: %v", i, err)
		}
	}
	_, err := send("+12125559999")
	if te, ok := err.(*tessera.Error); !ok || te.Code != tessera.ETOOMANY || te.RetryAfter != 3600 {
		t.Fatalf("the tripped prefix: %v", err)
	}
	if _, err := send("+14155559999"); err != nil {
		t.Fatalf("the healthy prefix after the trip: %v", err)
	}
	// Email is not SMS.
	if _, err := f.e.Initiate(ctx, owner, tessera.MethodEmail, &InitiateRequest{Consumer: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
}
