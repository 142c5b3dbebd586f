package verify

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// DefaultSMSNumberTypes are the phone number types SMS go to unless
// TESSERA_SMS_NUMBER_TYPES says otherwise: numbers that are, or may be,
// mobile. SMS pumping sends to premium-rate, shared-cost and other
// numbers that earn their operator money per message; they and the
// number types that cannot receive a text in the first place (toll-free,
// pagers, voicemail, UAN) are refused. VOIP numbers are refused too: they
// are where throwaway numbers come from; an operator who must reach them
// adds "voip".
const DefaultSMSNumberTypes = "mobile,fixed_line_or_mobile"

// numberTypeNames names libphonenumber's number types as the
// configuration spells them.
var numberTypeNames = map[phonenumbers.PhoneNumberType]string{
	phonenumbers.FIXED_LINE:           "fixed_line",
	phonenumbers.MOBILE:               "mobile",
	phonenumbers.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
	phonenumbers.TOLL_FREE:            "toll_free",
	phonenumbers.PREMIUM_RATE:         "premium_rate",
	phonenumbers.SHARED_COST:          "shared_cost",
	phonenumbers.VOIP:                 "voip",
	phonenumbers.PERSONAL_NUMBER:      "personal_number",
	phonenumbers.PAGER:                "pager",
	phonenumbers.UAN:                  "uan",
	phonenumbers.VOICEMAIL:            "voicemail",
	phonenumbers.UNKNOWN:              "unknown",
}

// numberTypeText is how an error message names a number type.
var numberTypeText = map[string]string{
	"fixed_line":           "a landline number",
	"mobile":               "a mobile number",
	"fixed_line_or_mobile": "a landline or mobile number",
	"toll_free":            "a toll-free number",
	"premium_rate":         "a premium-rate number",
	"shared_cost":          "a shared-cost number",
	"voip":                 "a VoIP number",
	"personal_number":      "a personal (forwarding) number",
	"pager":                "a pager number",
	"uan":                  "a universal access number",
	"voicemail":            "a voicemail access number",
	"unknown":              "a number of unknown type",
}

// NumberType returns the type of an E.164 number as the configuration
// names it ("mobile", "premium_rate", …; "unknown" when it cannot tell).
func NumberType(e164 string) string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return "unknown"
	}
	return numberTypeNames[phonenumbers.GetNumberType(num)]
}

// NumberTypeNames lists the names ParseNumberTypes accepts, sorted.
func NumberTypeNames() []string {
	out := make([]string, 0, len(numberTypeNames))
	for _, n := range numberTypeNames {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ParseNumberTypes reads a comma-separated list of number types
// ("mobile,fixed_line_or_mobile"), or "all" to send SMS to every valid
// number whatever its type (every type).
func ParseNumberTypes(s string) (map[string]bool, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "all" {
		out := map[string]bool{}
		for t := range numberTypeText {
			out[t] = true
		}
		return out, nil
	}
	out := map[string]bool{}
	for _, t := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if _, ok := numberTypeText[t]; !ok {
			return nil, fmt.Errorf("%q is not a number type: name some of %s, or all", t, strings.Join(NumberTypeNames(), ", "))
		}
		out[t] = true
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("name at least one number type (such as %s), or all", DefaultSMSNumberTypes)
	}
	return out, nil
}

// FormatNumberTypes writes a set of number types as ParseNumberTypes reads
// it.
func FormatNumberTypes(m map[string]bool) string {
	if len(m) == len(numberTypeText) {
		return "all"
	}
	out := make([]string, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// defaultSMSNumberTypes is DefaultSMSNumberTypes parsed.
var defaultSMSNumberTypes, _ = ParseNumberTypes(DefaultSMSNumberTypes)

// CheckSMSNumber says whether SMS may go to the E.164 number: nil, or an
// error to show on the field that named it (Engine.Limits.SMSNumberTypes
// decides; the defaults when not set). The engine checks every SMS it
// sends; flows that store a number before they text it check first, so
// that the error names their own field.
func (e *Engine) CheckSMSNumber(e164 string) error {
	allowed := e.Limits.SMSNumberTypes
	if allowed == nil {
		allowed = defaultSMSNumberTypes
	}
	t := NumberType(e164)
	if allowed[t] {
		return nil
	}
	return fmt.Errorf("is %s, and this server does not send codes to those", numberTypeText[t])
}
