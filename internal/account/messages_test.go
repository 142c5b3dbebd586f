package account

import (
	"strings"
	"testing"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/i18n"
	"github.com/tessera-id/tessera/internal/verify"
)

// TestEveryCodeSaysWhatItIsFor: each purpose's message exists in every
// language, carries the code, and has a subject of its own.
func TestEveryCodeSaysWhatItIsFor(t *testing.T) {
	s := &Service{ServiceName: "Acme", CodeTTL: DefaultCodeTTL}
	kinds := map[string]codeSpec{"step_up": {purpose: "login", message: "step_up"}}
	for purpose, kind := range codeMessages {
		kinds[kind] = codeSpec{purpose: purpose}
	}
	for _, lang := range i18n.Languages() {
		seen := map[string]string{}
		for kind, c := range kinds {
			for _, key := range []string{"msg.code." + kind + ".subject", "msg.code." + kind + ".body"} {
				if !i18n.Has(key) {
					t.Fatalf("%s: no catalogue entry %s", kind, key)
				}
			}
			subject, body := s.codeText(lang, tessera.MethodEmail, c)
			unfilled := strings.Contains(subject+strings.ReplaceAll(body, verify.PlaceholderCode, ""), "{")
			if !strings.Contains(body, verify.PlaceholderCode) || !strings.Contains(subject+body, "Acme") || unfilled {
				t.Errorf("%s/%s: %q / %q", lang, kind, subject, body)
			}
			if other, dup := seen[subject]; dup {
				t.Errorf("%s: %s and %s share the subject %q", lang, kind, other, subject)
			}
			seen[subject] = kind
		}
	}
}
