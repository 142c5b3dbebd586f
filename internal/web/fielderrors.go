package web

import "regexp"

// The account model explains a bad field in English, for the JSON API
// ("must be at least 8 characters"). The pages show the common cases in
// the page's language: fieldErrors maps those texts to catalogue keys
// (page.error.*), a number in the text becoming the message's {n}. A text
// not listed is shown as the account model wrote it, inside
// page.error.field.
var fieldErrors = []struct {
	text *regexp.Regexp
	key  string
}{
	{regexp.MustCompile(`^is required$`), "page.error.required"},
	{regexp.MustCompile(`^must be at least (\d+) characters$`), "page.error.too_short"},
	{regexp.MustCompile(`^must be at most (\d+) characters$`), "page.error.too_long"},
	{regexp.MustCompile(`^must not be the email address$`), "page.error.password_is_email"},
	{regexp.MustCompile(`^must be an email address$`), "page.error.email"},
	{regexp.MustCompile(`^must be an email address or an E\.164 phone number$`), "page.error.key"},
	{regexp.MustCompile(`^(must be a phone number|is not a valid phone number)`), "page.error.phone"},
	{regexp.MustCompile(`^is not the current password$`), "page.error.current_password"},
	{regexp.MustCompile(`^must be 4 to 32 printable characters$`), "page.error.anti_phishing"},
	{regexp.MustCompile(`^must be at most 64 printable characters$`), "page.error.passkey_name"},
	{regexp.MustCompile(`^is the current one$`), "page.error.same_key"},
}

// fieldError returns the message of a field error with text, in the
// page's language when it is a known case, and whether it was.
func (v *view) fieldError(text string) (string, bool) {
	for _, fe := range fieldErrors {
		if m := fe.text.FindStringSubmatch(text); m != nil {
			if len(m) > 1 {
				return v.T(fe.key, "n", m[1]), true
			}
			return v.T(fe.key), true
		}
	}
	return v.T("page.error.field", "detail", text), false
}
