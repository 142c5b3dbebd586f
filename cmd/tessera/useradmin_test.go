package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUserAdminCommands drives the user commands as an operator would;
// --help on any of them prints help and changes nothing.
func TestUserAdminCommands(t *testing.T) {
	dir := t.TempDir()
	run := func(wantOK bool, stdin string, args ...string) string {
		t.Helper()
		cmd := command(dir, args)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("tessera %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(true, "a long operator password\n", "user", "create", "--init", "ops@example.com") // --init: no serve made this directory
	file := filepath.Join(dir, "users.jsonl")
	// From jBCrypt's test vectors: "abc".
	lines := `{"email":"ada@example.com","emailVerified":true,"passwordHash":"$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i"}
{"email":"bob@example.com","passwordHash":"md5:5f4dcc3b5aa765d61d8327deb882cf99"}
not json
`
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	out := run(false, "", "user", "import", file)
	if !strings.Contains(out, "Imported 1 users; 0 existed already, 2 invalid.") || !strings.Contains(out, "line 2: bob@example.com: passwordHash") ||
		!strings.Contains(out, "line 3: -: line") || strings.Contains(out, "5f4dcc3b") {
		t.Fatalf("user import:\n%s", out)
	}
	if out := run(true, lines[:strings.Index(lines, "\n")+1], "user", "import", "-"); !strings.Contains(out, "1 existed already") {
		t.Fatalf("import again:\n%s", out)
	}
	if out := run(true, "", "user", "list", "--email", "EXAMPLE.com"); !strings.Contains(out, "ada@example.com") || !strings.Contains(out, "ops@example.com") {
		t.Fatalf("user list:\n%s", out)
	}
	if out := run(true, "", "user", "show", "ada@example.com"); !strings.Contains(out, "password") || strings.Contains(out, "$2a$") {
		t.Fatalf("user show:\n%s", out)
	}
	for _, args := range [][]string{{"delete", "ops@example.com", "--help"}, {"disable", "--help", "ops@example.com"}, {"reset-mfa", "ops@example.com", "-h"}} {
		if out := run(true, "", append([]string{"user"}, args...)...); !strings.HasPrefix(out, "Usage:") {
			t.Fatalf("user %v:\n%s", args, out)
		}
	}
	if out := run(true, "", "user", "list", "--status", "active"); !strings.Contains(out, "ops@example.com") {
		t.Fatalf("--help changed the account:\n%s", out)
	}
	run(true, "", "user", "disable", "ops@example.com")
	if out := run(true, "", "user", "list", "--status", "disabled", "--json"); !strings.Contains(out, `"email":"ops@example.com"`) || strings.Contains(out, "ada@") {
		t.Fatalf("disabled users:\n%s", out)
	}
	run(false, "", "user", "delete", "ops@example.com")
	run(true, "", "user", "delete", "ops@example.com", "--yes")
	run(false, "", "user", "show", "ops@example.com")
	if out := run(true, "", "client", "create", "--admin", "ops"); !strings.Contains(out, "admin scope") {
		t.Fatalf("client create --admin:\n%s", out)
	}
}
