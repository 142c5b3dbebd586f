package verify

import "testing"

func TestParsePhoneFallback(t *testing.T) {
	for in, want := range map[string]string{"": "off", "off": "off", "whatsapp,sms,call": "whatsapp,sms,call", " SMS , call ": "sms,call"} {
		got, err := ParsePhoneFallback(in)
		if err != nil || FormatPhoneFallback(got) != want {
			t.Errorf("%q: %v %v, want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"sms", "sms,sms", "sms,email", "email,sms", "sms,call,fax"} {
		if _, err := ParsePhoneFallback(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
