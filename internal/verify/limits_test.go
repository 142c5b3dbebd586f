package verify

import (
	"context"
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

// send initiates a code for consumer and returns the error code ("" when
// sent).
func (f *engineFixture) send(t *testing.T, method tessera.Method, consumer string) string {
	t.Helper()
	_, err := f.e.Initiate(context.Background(), owner, method, &InitiateRequest{Consumer: consumer})
	if err != nil && tessera.ErrorCode(err) != tessera.ETOOMANY {
		t.Fatalf("Initiate %s: %v", consumer, err)
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
	if got := f.send(t, tessera.MethodEmail, "alice@example.com"); got != "" {
		t.Fatalf("second send: %s", got)
	}
	if got := f.send(t, tessera.MethodEmail, "ALICE@EXAMPLE.COM"); got != tessera.ETOOMANY {
		t.Fatalf("third spelling of one address: %q, want %s", got, tessera.ETOOMANY)
	}
}
