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
