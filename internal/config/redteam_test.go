package config

import (
	"strings"
	"testing"
)

// TestCORSOriginMustBeHTTPS: an allowed plain-HTTP origin is a page any
// network attacker on its path rewrites; its script then calls the
// accounts API as the user. Like the return URLs, http is for localhost
// only.
func TestCORSOriginMustBeHTTPS(t *testing.T) {
	for _, o := range []string{"http://app.example.com", "http://10.0.0.5:3000"} {
		_, err := Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir(), "TESSERA_CORS_ORIGINS": o}))
		if err == nil || !strings.Contains(err.Error(), "TESSERA_CORS_ORIGINS") || !strings.Contains(err.Error(), "https") {
			t.Errorf("TESSERA_CORS_ORIGINS=%s: %v, want an error asking for https", o, err)
		}
	}
	for _, o := range []string{"http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8080"} {
		if _, err := Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir(), "TESSERA_CORS_ORIGINS": o})); err != nil {
			t.Errorf("TESSERA_CORS_ORIGINS=%s: %v", o, err)
		}
	}
}

// TestDevInboxAnywhereOnlyWhenAskedFor: the inbox that is on by default
// (loopback, SQLite) answers this machine only; TESSERA_DEV_INBOX=1, the
// operator's explicit choice, answers whoever reaches it.
func TestDevInboxAnywhereOnlyWhenAskedFor(t *testing.T) {
	for _, c := range []struct {
		set             string
		inbox, anywhere bool
	}{{"", true, false}, {"1", true, true}, {"0", false, false}} {
		vars := map[string]string{"TESSERA_DATA_DIR": t.TempDir()}
		if c.set != "" {
			vars["TESSERA_DEV_INBOX"] = c.set
		}
		cfg, err := Load(env(vars))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DevInbox != c.inbox || cfg.DevInboxAnywhere != c.anywhere {
			t.Errorf("TESSERA_DEV_INBOX=%q: inbox %v anywhere %v, want %v %v", c.set, cfg.DevInbox, cfg.DevInboxAnywhere, c.inbox, c.anywhere)
		}
	}
}
