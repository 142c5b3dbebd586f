package verify

import (
	"context"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// TestValidateRecordsConversion: whoever validates (the verification API,
// an account flow: any caller of the engine), a code validated after its
// message was reported delivered counts as a conversion, once; one
// validated before any report does not.
func TestValidateRecordsConversion(t *testing.T) {
	f := newEngine(t)
	var converted []string
	f.e.ObserveConversion = func(ch string) { converted = append(converted, ch) }
	ctx := context.Background()

	delivered := f.initiate(t, tessera.MethodPhone, &InitiateRequest{Consumer: "+14155552671", Policy: Policy{ForcedCode: "123456"}}).Verification
	m, _ := f.message(t, delivered.ID)
	if err := f.e.RecordDelivery(ctx, m.ID, "SM1", tessera.DeliveryDelivered, "", f.now); err != nil {
		t.Fatal(err)
	}
	notYet := f.initiate(t, tessera.MethodEmail, &InitiateRequest{Consumer: "ana@example.com", Policy: Policy{ForcedCode: "654321"}}).Verification

	f.now = f.now.Add(time.Minute)
	if _, err := f.validate(tessera.MethodPhone, delivered.ID, "123456"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.validate(tessera.MethodEmail, notYet.ID, "654321"); err != nil {
		t.Fatal(err)
	}
	if len(converted) != 1 || converted[0] != "sms" {
		t.Fatalf("conversions observed %v, want one on sms", converted)
	}
	if m, _ := f.db.MessageForVerification(ctx, owner, delivered.ID); !m.ConvertedAt.Equal(f.now) {
		t.Fatalf("converted at %v, want %v", m.ConvertedAt, f.now)
	}
	if m, _ := f.db.MessageForVerification(ctx, owner, notYet.ID); !m.ConvertedAt.IsZero() {
		t.Fatalf("a message never reported delivered was converted at %v", m.ConvertedAt)
	}
}
