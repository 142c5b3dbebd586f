package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnknownVariablesAreReported(t *testing.T) {
	env := map[string]string{"TESSERA_DATA_DIR": t.TempDir(), "TESSERA_SMTP_HOTS": "mail.example", "TESSERA_TEST_POSTGRES_URL": "x"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	got := c.UnknownVariables([]string{"TESSERA_SMTP_HOTS=mail.example", "TESSERA_DATA_DIR=x", "TESSERA_TEST_POSTGRES_URL=x",
		"TESSERA_HMAC_KEY_FILE=/k", "TESSERA_COMPLETELY_DIFFERENT=1", "HOME=/root", "TESSERA_TOKEN=tsk_x"}, "TESSERA_TOKEN")
	want := []string{
		"TESSERA_COMPLETELY_DIFFERENT is not a Tessera setting and is ignored",
		"TESSERA_SMTP_HOTS is not a Tessera setting and is ignored (did you mean TESSERA_SMTP_HOST?)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("UnknownVariables:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestExistingModeCreatesNothing: LoadMode(Existing) refuses a data
// directory without a database, naming it, and creates nothing.
func TestExistingModeCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"TESSERA_DATA_DIR": dir}
	_, err := LoadMode(func(k string) string { return env[k] }, Existing)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "TESSERA_DATA_DIR") {
		t.Fatalf("Existing on a missing directory: %v", err)
	}
	if c, err := LoadMode(func(k string) string { return env[k] }, ReadOnly); err != nil || c.HMACKeys != nil {
		t.Fatalf("ReadOnly on a missing directory: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s was created", dir)
	}
}

// TestSecretsAreCheckedForFormAndStrength: a webhook secret that is not
// the documented form fails at start even before a sender uses it, and
// a placeholder key is refused.
func TestSecretsAreCheckedForFormAndStrength(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"TESSERA_WEBHOOK_SECRET": {"TESSERA_WEBHOOK_SECRET": "my-shared-secret"},
		"TESSERA_HMAC_KEY":       {"TESSERA_HMAC_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
	} {
		env["TESSERA_DATA_DIR"] = t.TempDir()
		_, err := Load(func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v", name, env[name], err)
		}
	}
}
