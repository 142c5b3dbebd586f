package verify

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/tessera-id/tessera"
)

// exampleNumber is libphonenumber's example number of a type in a region.
func exampleNumber(t *testing.T, region string, typ phonenumbers.PhoneNumberType) string {
	t.Helper()
	num := phonenumbers.GetExampleNumberForType(region, typ)
	if num == nil {
		t.Fatalf("no example %s number for %s", numberTypeNames[typ], region)
	}
	return phonenumbers.Format(num, phonenumbers.E164)
}

func TestNumberTypeAndDefaultSMSTypes(t *testing.T) {
	cases := []struct {
		region string
		typ    phonenumbers.PhoneNumberType
		want   string
		sent   bool // with the default TESSERA_SMS_NUMBER_TYPES
	}{
		{"GB", phonenumbers.MOBILE, "mobile", true},
		{"DE", phonenumbers.MOBILE, "mobile", true},
		{"FR", phonenumbers.MOBILE, "mobile", true},
		{"US", phonenumbers.MOBILE, "fixed_line_or_mobile", true}, // NANP cannot tell them apart
		{"GB", phonenumbers.FIXED_LINE, "fixed_line", false},
		{"GB", phonenumbers.PREMIUM_RATE, "premium_rate", false},
		{"US", phonenumbers.PREMIUM_RATE, "premium_rate", false},
		{"DE", phonenumbers.PREMIUM_RATE, "premium_rate", false},
		{"BE", phonenumbers.SHARED_COST, "shared_cost", false},
		{"FR", phonenumbers.SHARED_COST, "shared_cost", false},
		{"US", phonenumbers.TOLL_FREE, "toll_free", false},
		{"GB", phonenumbers.VOIP, "voip", false},
		{"GB", phonenumbers.PERSONAL_NUMBER, "personal_number", false},
		{"GB", phonenumbers.PAGER, "pager", false},
		{"GB", phonenumbers.UAN, "uan", false},
		{"DE", phonenumbers.VOICEMAIL, "voicemail", false},
	}
	e := &Engine{}
	for _, c := range cases {
		n := exampleNumber(t, c.region, c.typ)
		if _, err := NormalizePhone(n); err != nil {
			t.Fatalf("%s %s example %s: %v", c.region, c.want, n, err)
		}
		if got := NumberType(n); got != c.want {
			t.Errorf("%s (%s example): type %q, want %q", n, c.region, got, c.want)
		}
		err := e.CheckSMSNumber(n)
		if (err == nil) != c.sent {
			t.Errorf("%s (%s %s): CheckSMSNumber = %v, want sent %v", n, c.region, c.want, err, c.sent)
		}
		if err != nil && !strings.Contains(err.Error(), numberTypeText[c.want]) {
			t.Errorf("%s: error %q does not name the type", n, err)
		}
	}
	if NumberType("not a number") != "unknown" {
		t.Error("an unparsable number has a type")
	}
}

func TestParseNumberTypes(t *testing.T) {
	m, err := ParseNumberTypes(" Mobile, voip ")
	if err != nil || len(m) != 2 || !m["mobile"] || !m["voip"] || FormatNumberTypes(m) != "mobile,voip" {
		t.Fatalf("ParseNumberTypes = %v, %v", m, err)
	}
	all, err := ParseNumberTypes("all")
	if err != nil || FormatNumberTypes(all) != "all" {
		t.Fatalf("all = %v, %v", all, err)
	}
	e := &Engine{Limits: SendLimits{SMSNumberTypes: all}}
	if err := e.CheckSMSNumber(exampleNumber(t, "GB", phonenumbers.PREMIUM_RATE)); err != nil {
		t.Fatalf("all refused a premium-rate number: %v", err)
	}
	for _, bad := range []string{"", " , ", "mobile,cellphone", "premium"} {
		if _, err := ParseNumberTypes(bad); err == nil {
			t.Errorf("ParseNumberTypes(%q) accepted", bad)
		}
	}
	if d, _ := ParseNumberTypes(DefaultSMSNumberTypes); FormatNumberTypes(d) != "fixed_line_or_mobile,mobile" {
		t.Fatalf("default = %v", d)
	}
}

func TestInitiateRefusesPremiumRateSMS(t *testing.T) {
	f := newEngine(t)
	premium := exampleNumber(t, "GB", phonenumbers.PREMIUM_RATE)
	_, err := f.e.Initiate(context.Background(), owner, tessera.MethodPhone, &InitiateRequest{Consumer: premium})
	var te *tessera.Error
	if !errors.As(err, &te) || te.Code != tessera.EINVALID || len(te.Details) != 1 || te.Details[0].Path != "consumer" {
		t.Fatalf("a premium-rate number: %#v", err)
	}
	if _, err := f.e.Initiate(context.Background(), owner, tessera.MethodPhone, &InitiateRequest{Consumer: exampleNumber(t, "GB", phonenumbers.MOBILE)}); err != nil {
		t.Fatalf("a mobile number: %v", err)
	}
}
