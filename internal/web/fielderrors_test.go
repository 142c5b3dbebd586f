package web

import (
	"testing"

	"github.com/tessera-id/tessera/internal/i18n"
)

// TestFieldErrors: the known texts of the account model come out in the
// page's language, with their number; any other stays as written.
func TestFieldErrors(t *testing.T) {
	for _, fe := range fieldErrors {
		if !i18n.Has(fe.key) {
			t.Errorf("%s is not in the catalogues", fe.key)
		}
	}
	de := &view{Lang: "de"}
	for _, c := range []struct {
		text, want string
		known      bool
	}{
		{"must be at least 8 characters", "Bitte mindestens 8 Zeichen eingeben.", true},
		{"is required", "Bitte füllen Sie dieses Feld aus.", true},
		{"is not a valid phone number: E.164 numbers have at most 15 digits", "Geben Sie eine Telefonnummer mit Ländervorwahl ein, zum Beispiel +4915112345678.", true},
		{"must be of the type being changed (EMAIL)", "Eingabe ungültig: must be of the type being changed (EMAIL).", false},
	} {
		if got, known := de.fieldError(c.text); got != c.want || known != c.known {
			t.Errorf("%q: %q (known %v), want %q (%v)", c.text, got, known, c.want, c.known)
		}
	}
}
