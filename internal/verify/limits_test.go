package verify

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/ratelimit"
)

// withLimits gives the fixture's engine an in-memory limiter on its clock.
func (f *engineFixture) withLimits(l SendLimits) *engineFixture {
	f.e.Limiter = ratelimit.NewMemory(func() time.Time { return f.now })
	f.e.Limits = l
	return f
}

// send initiates a code for consumer as subject and returns the error code
// ("" when sent).
func (f *engineFixture) send(t *testing.T, method tessera.Method, subject, consumer string) string {
	t.Helper()
	_, err := f.e.Initiate(context.Background(), owner, method, &InitiateRequest{Consumer: consumer, Subject: subject})
	if err != nil && tessera.ErrorCode(err) != tessera.ETOOMANY {
		t.Fatalf("Initiate %s for %q: %v", consumer, subject, err)
	}
	return tessera.ErrorCode(err)
}

func TestDestinationLimitKeyIgnoresTheLocalPartsCase(t *testing.T) {
	for _, tc := range []struct {
		method         tessera.Method
		consumer, want string
	}{
		{tessera.MethodEmail, "alice@example.com", "alice@example.com"},
		{tessera.MethodEmail, "Alice@example.com", "alice@example.com"},
		{tessera.MethodEmail, "ALICE@example.com", "alice@example.com"},
		{tessera.MethodEmail, "Élodie@example.com", "élodie@example.com"},
		{tessera.MethodPhone, "+14155552671", "+14155552671"},
	} {
		if got := limitConsumer(tc.method, tc.consumer); got != tc.want {
			t.Errorf("limitConsumer(%s, %q) = %q, want %q", tc.method, tc.consumer, got, tc.want)
		}
	}
	// Through the engine: every spelling uses the one allowance, and the
	// message goes to the address as it was given (domain lower-cased).
	f := newEngine(t).withLimits(SendLimits{PerDestinationHour: ratelimit.Limit{Rate: 2, Period: time.Hour, Burst: 2}})
	out := f.initiate(t, tessera.MethodEmail, &InitiateRequest{Consumer: "Alice@Example.com"})
	if m, _ := f.message(t, out.Verification.ID); m.To != "Alice@example.com" || out.Verification.Consumer != "Alice@example.com" {
		t.Fatalf("message to %q, consumer %q: want Alice@example.com", m.To, out.Verification.Consumer)
	}
	if got := f.send(t, tessera.MethodEmail, "", "alice@example.com"); got != "" {
		t.Fatalf("second send: %s", got)
	}
	if got := f.send(t, tessera.MethodEmail, "", "ALICE@EXAMPLE.COM"); got != tessera.ETOOMANY {
		t.Fatalf("third spelling of one address: %q, want %s", got, tessera.ETOOMANY)
	}
	if got := f.send(t, tessera.MethodEmail, "u1", "ALICE@example.com"); got != "" {
		t.Fatalf("a subject's first send: %q", got)
	}
	f.send(t, tessera.MethodEmail, "u1", "alice@example.com")
	if got := f.send(t, tessera.MethodEmail, "u1", "aLiCe@example.com"); got != tessera.ETOOMANY {
		t.Fatalf("a subject's third spelling: %q, want %s", got, tessera.ETOOMANY)
	}
}

// TestCountryLimitPerSubject: with a subject, one subject gets a tenth of
// the owner's country budget; the budget stays the owner's total.
func TestCountryLimitPerSubject(t *testing.T) {
	f := newEngine(t).withLimits(SendLimits{PerCountry: ratelimit.Limit{Rate: 20, Period: time.Hour, Burst: 20}})
	phone := func(i int) string { return fmt.Sprintf("+1415555%04d", 2600+i) }
	n := 0
	for ; n < 20 && f.send(t, tessera.MethodPhone, "u0", phone(n)) == ""; n++ {
	}
	if n != 2 {
		t.Fatalf("one subject sent %d SMS to the country, want 2 (a tenth of 20)", n)
	}
	// Refused sends counted nothing against the total: nine more
	// subjects use up the rest, and then a fresh subject is refused.
	for s := 1; s < 10; s++ {
		for i := 0; i < 2; i++ {
			if got := f.send(t, tessera.MethodPhone, fmt.Sprint("u", s), phone(100+2*s+i)); got != "" {
				t.Fatalf("subject %d send %d: %s", s, i, got)
			}
		}
	}
	if got := f.send(t, tessera.MethodPhone, "u10", phone(999)); got != tessera.ETOOMANY {
		t.Fatalf("past the owner's total: %q, want %s", got, tessera.ETOOMANY)
	}
	// Other countries, and the one subject's share over time.
	if got := f.send(t, tessera.MethodPhone, "u0", "+447400123456"); got != "" {
		t.Fatalf("another country: %s", got)
	}
	f.now = f.now.Add(time.Hour)
	if got := f.send(t, tessera.MethodPhone, "u0", phone(50)); got != "" {
		t.Fatalf("an hour later: %s", got)
	}
}

// TestCountryLimitWithoutSubject: an API client's sends keep one budget
// per owner and country, as configured.
func TestCountryLimitWithoutSubject(t *testing.T) {
	f := newEngine(t).withLimits(SendLimits{PerCountry: ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3}})
	for i := 0; i < 3; i++ {
		if got := f.send(t, tessera.MethodPhone, "", fmt.Sprintf("+141555526%02d", i)); got != "" {
			t.Fatalf("send %d: %s", i, got)
		}
	}
	if got := f.send(t, tessera.MethodPhone, "", "+14155552699"); got != tessera.ETOOMANY {
		t.Fatalf("fourth send: %q, want %s", got, tessera.ETOOMANY)
	}
}

// TestDestinationLimitPerSubject: with a subject, each subject gets the
// configured allowance per destination, and all subjects together ten
// times it.
func TestDestinationLimitPerSubject(t *testing.T) {
	f := newEngine(t).withLimits(SendLimits{PerDestinationHour: ratelimit.Limit{Rate: 2, Period: time.Hour, Burst: 2}})
	const to = "+14155552671"
	for s := 0; s < 10; s++ {
		for i := 0; i < 2; i++ {
			if got := f.send(t, tessera.MethodPhone, fmt.Sprint("u", s), to); got != "" {
				t.Fatalf("subject %d send %d: %s", s, i, got)
			}
		}
		if got := f.send(t, tessera.MethodPhone, fmt.Sprint("u", s), to); got != tessera.ETOOMANY {
			t.Fatalf("subject %d third send: %q, want %s", s, got, tessera.ETOOMANY)
		}
	}
	if got := f.send(t, tessera.MethodPhone, "u10", to); got != tessera.ETOOMANY {
		t.Fatalf("past ten times the allowance: %q, want %s", got, tessera.ETOOMANY)
	}
}
