package httpapi_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessera-id/tessera/internal/sqlstore"
)

// TestNoCodeOnDiskInPlainText runs email and google_auth verifications on
// SQLite and then searches every byte of the database files for the codes
// and the TOTP secret, both while a message waits in the outbox and after
// it was sent.
func TestNoCodeOnDiskInPlainText(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(dir, "tessera.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := newEnv(t, db)

	const forced = "PlainCodeQ7x9Z"
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "policy": map[string]any{"forcedCode": forced}}).want(t, 200)
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "b@example.com", "generateCode": map[string]any{"length": 24, "symbolSet": []string{"alphas", "ALPHAS"}}}).want(t, 200)
	uri := e.do("POST", "/methods/google_auth/actions/initiate", map[string]any{"consumer": "c@example.com", "issuer": "Acme"}).want(t, 200).str("totpUri")
	secret := totpSecret(t, uri, "c@example.com")

	search := func(when string, needles ...string) {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(dir, "tessera.db*"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range needles {
				if bytes.Contains(raw, []byte(n)) {
					t.Fatalf("%s: %s holds %q in plain text", when, filepath.Base(f), n)
				}
			}
		}
	}
	search("before delivery", forced, secret)
	var generated string
	for _, m := range e.deliver() {
		if m.To == "b@example.com" {
			generated = strings.TrimPrefix(m.Body, "Your verification code is ")
		}
	}
	if len(generated) != 24 {
		t.Fatalf("did not read the generated code from the message (%q)", generated)
	}
	search("after delivery", forced, secret, generated)
}
