package verify

import (
	"strings"
	"testing"
	"time"
)

func TestParseHMS(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "01:00:00", want: time.Hour},
		{in: "00:00:30", want: 30 * time.Second},
		{in: "00:15:00", want: 15 * time.Minute},
		{in: "12:34:56", want: 12*time.Hour + 34*time.Minute + 56*time.Second},
		{in: "100:00:00", want: 100 * time.Hour},
		{in: "720:00:00", want: 720 * time.Hour},
		{in: "00:59:59", want: 59*time.Minute + 59*time.Second},
		{in: "00:00:00", want: 0},

		{in: "", wantErr: true},
		{in: "1:00", wantErr: true},
		{in: "01:00", wantErr: true},
		{in: "1:00:00", wantErr: true},
		{in: "00:60:00", wantErr: true},
		{in: "00:00:60", wantErr: true},
		{in: "00:0:00", wantErr: true},
		{in: "00:00:000", wantErr: true},
		{in: "-1:00:00", wantErr: true},
		{in: "+1:00:00", wantErr: true},
		{in: "00:-1:00", wantErr: true},
		{in: "aa:bb:cc", wantErr: true},
		{in: "00:00:00:00", wantErr: true},
		{in: " 01:00:00", wantErr: true},
		{in: "01:00:00 ", wantErr: true},
		{in: "10000:00:00", wantErr: true},
		{in: "1h", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseHMS(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseHMS(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseHMS(%q): %v", tc.in, err)
		} else if got != tc.want {
			t.Errorf("ParseHMS(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "a@b.example", want: "a@b.example"},
		{in: "first.last+tag@example.com", want: "first.last+tag@example.com"},
		{in: "Alice@Example.COM", want: "Alice@example.com"}, // the local part is case-sensitive, the domain is not
		{in: "a@sub.domain.example", want: "a@sub.domain.example"},

		{in: "", wantErr: true},
		{in: "plainaddress", wantErr: true},
		{in: "@example.com", wantErr: true},
		{in: "a@", wantErr: true},
		{in: "a@localhost", wantErr: true},
		{in: "a@.example.com", wantErr: true},
		{in: "a@example.com.", wantErr: true},
		{in: "a@@example.com", wantErr: true},
		{in: "a@[192.0.2.1]", wantErr: true},
		{in: "Alice <a@example.com>", wantErr: true},
		{in: "<a@example.com>", wantErr: true},
		{in: " a@example.com", wantErr: true},
		{in: "a@example.com ", wantErr: true},
		{in: "a@example.com, b@example.com", wantErr: true},
		{in: strings.Repeat("a", 243) + "@example.com", wantErr: true}, // 255 characters
	}
	for _, tc := range tests {
		got, err := NormalizeEmail(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("NormalizeEmail(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("NormalizeEmail(%q): %v", tc.in, err)
		} else if got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "+14155552671", want: "+14155552671"},
		{in: "+442071838750", want: "+442071838750"},
		{in: "+33142685300", want: "+33142685300"},

		{in: "", wantErr: true},
		{in: "4155552671", wantErr: true},    // no +
		{in: "14155552671", wantErr: true},   // no +
		{in: "+1415555267", wantErr: true},   // one digit short
		{in: "+141555526712", wantErr: true}, // one digit too many
		{in: "+1415555ABCD", wantErr: true},
		{in: "+1 415 555 2671", wantErr: true},
		{in: "+1-415-555-2671", wantErr: true},
		{in: "+1(415)5552671", wantErr: true},
		{in: "+", wantErr: true},
		{in: "++14155552671", wantErr: true},
		{in: "+00000000000", wantErr: true},
		{in: "+1415555267１", wantErr: true}, // full-width digit
	}
	for _, tc := range tests {
		got, err := NormalizePhone(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("NormalizePhone(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("NormalizePhone(%q): %v", tc.in, err)
		} else if got != tc.want {
			t.Errorf("NormalizePhone(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	const id = "6f1c1b1e-8a43-4d43-9b7e-0d2f7f1c2a10"
	tests := []struct {
		name, body, code, want string
	}{
		{"code only", "Your code is {{{CODE}}}", "123456", "Your code is 123456"},
		{"both placeholders", "Code {{{CODE}}} for {{{VERIFICATION_ID}}}", "123456", "Code 123456 for " + id},
		{"repeated placeholders", "{{{CODE}}} {{{CODE}}} {{{VERIFICATION_ID}}}{{{VERIFICATION_ID}}}", "42", "42 42 " + id + id},
		{"no placeholders", "Hello", "123456", "Hello"},
		{"other braces kept", "{{CODE}} {CODE} {{{code}}} {{{CODE}}}", "9", "{{CODE}} {CODE} {{{code}}} 9"},
		{"code is not expanded again", "{{{CODE}}}", "{{{VERIFICATION_ID}}}", "{{{VERIFICATION_ID}}}"},
		{"multi-line body", "Hi,\n\n{{{CODE}}}\n", "7777", "Hi,\n\n7777\n"},
	}
	for _, tc := range tests {
		if got := Render(tc.body, tc.code, id); got != tc.want {
			t.Errorf("%s: Render(%q, %q) = %q, want %q", tc.name, tc.body, tc.code, got, tc.want)
		}
	}
}
