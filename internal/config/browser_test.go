package config

import (
	"slices"
	"strings"
	"testing"
)

func TestCORSOrigins(t *testing.T) {
	c, err := Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir(),
		"TESSERA_CORS_ORIGINS": "https://App.Example.com:443, http://localhost:5173,https://[::1]:8443/"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://app.example.com", "http://localhost:5173", "https://[::1]:8443"}
	if !slices.Equal(c.CORSOrigins, want) {
		t.Fatalf("origins %q, want %q (as browsers send Origin)", c.CORSOrigins, want)
	}
	if c, _ := Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir()})); len(c.CORSOrigins) != 0 {
		t.Fatalf("CORS is on by default: %q", c.CORSOrigins)
	}
	for _, bad := range []string{"*", "null", "app.example.com", "https://app.example.com/login", "ftp://app.example.com", "https://app.example.com?x=1", "https://u@app.example.com"} {
		_, err := Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir(), "TESSERA_CORS_ORIGINS": bad}))
		if err == nil || !strings.Contains(err.Error(), "TESSERA_CORS_ORIGINS") {
			t.Errorf("TESSERA_CORS_ORIGINS=%s: %v, want an error naming the variable", bad, err)
		}
	}
}

func TestDevInbox(t *testing.T) {
	keys := map[string]string{"TESSERA_HMAC_KEY": b64(1), "TESSERA_ENCRYPTION_KEYS": "k1:" + b64(2)}
	for _, tc := range []struct {
		name string
		vars map[string]string
		want bool
	}{
		{"loopback SQLite: on", map[string]string{}, true},
		{"localhost: on", map[string]string{"TESSERA_ADDR": "localhost:9000"}, true},
		{"IPv6 loopback: on", map[string]string{"TESSERA_ADDR": "[::1]:9000"}, true},
		{"every interface: off", map[string]string{"TESSERA_ADDR": ":8080"}, false},
		{"a public address: off", map[string]string{"TESSERA_ADDR": "192.0.2.1:8080"}, false},
		{"asked for on every interface", map[string]string{"TESSERA_ADDR": ":8080", "TESSERA_DEV_INBOX": "1"}, true},
		{"switched off on loopback", map[string]string{"TESSERA_DEV_INBOX": "0"}, false},
		{"PostgreSQL on loopback: off", map[string]string{"TESSERA_DATABASE_URL": "postgres://127.0.0.1/test"}, false},
		{"behind a proxy: off", map[string]string{"TESSERA_TRUSTED_PROXIES": "127.0.0.1"}, false},
		{"with a public URL: off", map[string]string{"TESSERA_PUBLIC_URL": "https://tessera.example.com"}, false},
		{"PostgreSQL, asked for", map[string]string{"TESSERA_DATABASE_URL": "postgres://127.0.0.1/test", "TESSERA_DEV_INBOX": "1"}, true},
		{"one channel on the log sender", map[string]string{"TESSERA_SMS_SENDER": "webhook", "TESSERA_WEBHOOK_URL": "https://hooks.example.com/x", "TESSERA_WEBHOOK_SECRET": "whsec_" + b64(3)}, true},
		{"no log sender: nothing to show", map[string]string{"TESSERA_DEV_INBOX": "1", "TESSERA_EMAIL_SENDER": "webhook", "TESSERA_SMS_SENDER": "webhook", "TESSERA_WEBHOOK_URL": "https://hooks.example.com/x", "TESSERA_WEBHOOK_SECRET": "whsec_" + b64(3)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"TESSERA_DATA_DIR": t.TempDir()}
			for k, v := range keys {
				vars[k] = v
			}
			for k, v := range tc.vars {
				vars[k] = v
			}
			c, err := Load(env(vars))
			if err != nil {
				t.Fatal(err)
			}
			if c.DevInbox != tc.want {
				t.Fatalf("DevInbox %v, want %v", c.DevInbox, tc.want)
			}
		})
	}
	if _, err := Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir(), "TESSERA_DEV_INBOX": "yes please"})); err == nil || !strings.Contains(err.Error(), "TESSERA_DEV_INBOX") {
		t.Fatalf("a bad TESSERA_DEV_INBOX: %v", err)
	}
}
