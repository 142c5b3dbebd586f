package verify

import (
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// ParseHMS parses a policy duration written as HH:MM:SS, as in
// "expiredOn": "01:00:00". Hours may exceed 24.
func ParseHMS(s string) (time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, errors.New("must be HH:MM:SS")
	}
	var n [3]int
	for i, p := range parts {
		if len(p) < 2 || len(p) > 4 || (i > 0 && len(p) != 2) {
			return 0, errors.New("must be HH:MM:SS")
		}
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || strings.ContainsAny(p, "+-") {
			return 0, errors.New("must be HH:MM:SS")
		}
		n[i] = v
	}
	if n[1] > 59 || n[2] > 59 {
		return 0, errors.New("minutes and seconds must be 00-59")
	}
	return time.Duration(n[0])*time.Hour + time.Duration(n[1])*time.Minute + time.Duration(n[2])*time.Second, nil
}

// maxEmailLength is the longest address SMTP can carry (RFC 5321 path limit).
const maxEmailLength = 254

// NormalizeEmail checks that s is one bare email address ("a@b.example", no
// display name) and returns it with the domain lower-cased.
func NormalizeEmail(s string) (string, error) {
	if s == "" {
		return "", errors.New("is required")
	}
	if len(s) > maxEmailLength {
		return "", fmt.Errorf("must be at most %d characters", maxEmailLength)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" {
		return "", errors.New("must be an email address")
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.HasPrefix(domain, "[") {
		return "", errors.New("must be an email address")
	}
	out := local + "@" + strings.ToLower(domain)
	if len(out) > maxEmailLength { // lower case can take more bytes
		return "", fmt.Errorf("must be at most %d characters", maxEmailLength)
	}
	return out, nil
}

// NormalizePhone checks that s is a valid phone number in E.164 form
// ("+14155550123") and returns its canonical E.164 spelling.
func NormalizePhone(s string) (string, error) {
	if s == "" {
		return "", errors.New("is required")
	}
	if !strings.HasPrefix(s, "+") || len(s) > 20 {
		return "", errors.New("must be a phone number in E.164 form, like +14155550123")
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return "", errors.New("must be a phone number in E.164 form, like +14155550123")
		}
	}
	num, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", errors.New("is not a valid phone number")
	}
	out := phonenumbers.Format(num, phonenumbers.E164)
	if len(out) > 16 { // "+" and at most 15 digits (E.164), whatever a region's metadata allows
		return "", errors.New("is not a valid phone number: E.164 numbers have at most 15 digits")
	}
	return out, nil
}

// checkText checks a free-text field: valid UTF-8, no control characters
// other than newlines and tabs when multiline, and at most max bytes.
func checkText(s string, max int, multiline bool) error {
	if len(s) > max {
		return fmt.Errorf("must be at most %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return errors.New("must be valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t')) {
			return errors.New("must not contain control characters")
		}
	}
	return nil
}

// The placeholders a template body may use.
const (
	PlaceholderCode           = "{{{CODE}}}"
	PlaceholderVerificationID = "{{{VERIFICATION_ID}}}"
)

// Render fills a template body with the code and the verification id.
func Render(body, code, verificationID string) string {
	return strings.NewReplacer(PlaceholderCode, code, PlaceholderVerificationID, verificationID).Replace(body)
}

// RegionOf returns the ISO 3166-1 region of an E.164 number ("US").
func RegionOf(e164 string) string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return ""
	}
	return phonenumbers.GetRegionCodeForNumber(num)
}

// callingCode returns the country calling code of an E.164 number ("1").
func callingCode(e164 string) string {
	num, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return ""
	}
	return strconv.Itoa(int(num.GetCountryCode()))
}
