package account

import (
	"testing"
	"time"
)

func TestObfuscateEmail(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com": "a***e@example.com",
		"bo@example.com":    "b*@example.com",
		"x@example.com":     "*@example.com",
		"élodie@exemple.fr": "é***e@exemple.fr",
		"not-an-email":      "***",
	} {
		if got := ObfuscateEmail(in); got != want {
			t.Errorf("ObfuscateEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestObfuscatePhone(t *testing.T) {
	for in, want := range map[string]string{
		"+14155552671":  "+14*******71",
		"+442071838750": "+44********50",
		"":              "",
		"12345":         "***",
	} {
		if got := ObfuscatePhone(in); got != want {
			t.Errorf("ObfuscatePhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLockForSlowsDownThenLocks(t *testing.T) {
	want := map[int]time.Duration{1: 0, 4: 0, 5: 30 * time.Second, 6: time.Minute, 7: 2 * time.Minute, 10: 15 * time.Minute, 50: 15 * time.Minute}
	for failures, d := range want {
		if got := lockFor(failures); got != d {
			t.Errorf("lockFor(%d) = %v, want %v", failures, got, d)
		}
	}
}

func TestHMS(t *testing.T) {
	if got := hms(30 * time.Minute); got != "00:30:00" {
		t.Fatalf("hms = %q", got)
	}
	if got := ttlText(30 * time.Minute); got != "30min" {
		t.Fatalf("ttlText = %q", got)
	}
}
