package verify

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// TestFallbackAfterNeedsDeliveryReports: without delivery reports every
// message would look undelivered, so a request's fallbackAfter is refused
// and the server's is not applied; with them the message carries it, and
// account codes (NoResend) never do.
func TestFallbackAfterNeedsDeliveryReports(t *testing.T) {
	f := newEngine(t)
	f.e.PhoneFallback, f.e.FallbackAfter = []tessera.Channel{tessera.ChannelSMS, tessera.ChannelCall}, time.Minute
	sixty := 60
	_, err := f.e.Initiate(context.Background(), owner, tessera.MethodPhone, &InitiateRequest{Consumer: "+14155552671", FallbackAfter: &sixty})
	var te *tessera.Error
	if !errors.As(err, &te) || len(te.Details) != 1 || te.Details[0].Path != "fallbackAfter" {
		t.Fatalf("without reports: %v", err)
	}
	after := func(req *InitiateRequest) int {
		t.Helper()
		out := f.initiate(t, tessera.MethodPhone, req)
		m, err := f.db.MessageForVerification(context.Background(), owner, out.Verification.ID)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := f.e.Keys.Open(m.Sealed, MessageAD(m.ID))
		if err != nil {
			t.Fatal(err)
		}
		var c tessera.MessageContent
		if err := json.Unmarshal(plain, &c); err != nil {
			t.Fatal(err)
		}
		return c.FallbackAfter
	}
	if got := after(&InitiateRequest{Consumer: "+14155552672"}); got != 0 {
		t.Fatalf("the server's fallbackAfter applied without reports: %d", got)
	}
	f.e.DeliveryReports = true
	if got := after(&InitiateRequest{Consumer: "+14155552673"}); got != 60 {
		t.Fatalf("the server's fallbackAfter: %d", got)
	}
	if got := after(&InitiateRequest{Consumer: "+14155552674", FallbackAfter: &sixty, NoResend: true}); got != 0 {
		t.Fatalf("a code without a kept copy: %d", got)
	}
	if got := after(&InitiateRequest{Consumer: "+14155552675", Fallback: []tessera.Channel{}}); got != 0 {
		t.Fatalf("no fallback order: %d", got)
	}
}
