package config

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env returns a getenv that sees only vars.
func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

// raw is a test key, different for each b; its bytes differ, as a random
// key's do (placeholders of one repeated byte are refused).
func raw(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func b64(b byte) string { return base64.StdEncoding.EncodeToString(raw(b)) }

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadGeneratesKeysOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	vars := map[string]string{"TESSERA_DATA_DIR": dir}

	c, err := Load(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if !c.KeysGenerated {
		t.Error("KeysGenerated = false on first start")
	}
	if len(c.HMACKeys) != 1 || c.HMACKeys[0].ID != "h1" || len(c.HMACKeys[0].Key) != 32 || len(c.EncryptionKeys) != 1 || c.EncryptionKeys[0].ID != "k1" || len(c.EncryptionKeys[0].Key) != 32 {
		t.Errorf("keys: hmac %+v, encryption %+v", c.HMACKeys, c.EncryptionKeys)
	}
	if info, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	} else if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("data directory mode %o, want no group or other access", perm)
	}
	for _, name := range []string{"hmac.key", "encryption.keys"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s not created: %v", name, err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s mode %o, want 600", name, perm)
		}
	}

	// The defaults.
	if c.Addr != DefaultAddr || c.DataDir != dir || c.DatabaseURL != "" || c.UsesPostgres() ||
		c.SQLiteFullSync || c.PostgresConns != 16 || c.LogFormat != "text" || c.LogLevel != "info" ||
		c.ShutdownTimeout != 15*time.Second || c.Retention != 24*time.Hour || c.DBTimeout != 5*time.Second || c.MaxInFlight != 32 {
		t.Errorf("defaults: %+v", c)
	}
	if c.SQLitePath() != filepath.Join(dir, "tessera.db") {
		t.Errorf("SQLitePath = %q", c.SQLitePath())
	}

	again, err := Load(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if again.KeysGenerated {
		t.Error("KeysGenerated = true on second start")
	}
	if !bytes.Equal(again.HMACKeys[0].Key, c.HMACKeys[0].Key) {
		t.Error("second start has another HMAC key")
	}
	if len(again.EncryptionKeys) != 1 || again.EncryptionKeys[0].ID != "k1" || !bytes.Equal(again.EncryptionKeys[0].Key, c.EncryptionKeys[0].Key) {
		t.Error("second start has other encryption keys")
	}

	other, err := Load(env(map[string]string{"TESSERA_DATA_DIR": filepath.Join(t.TempDir(), "other")}))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.HMACKeys[0].Key, c.HMACKeys[0].Key) || bytes.Equal(other.EncryptionKeys[0].Key, c.EncryptionKeys[0].Key) {
		t.Error("two data directories got the same generated keys")
	}
}

func TestLoadDefaultDataDir(t *testing.T) {
	t.Chdir(t.TempDir())
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != DefaultDataDir {
		t.Errorf("DataDir = %q, want %q", c.DataDir, DefaultDataDir)
	}
	if _, err := os.Stat(filepath.Join(DefaultDataDir, "hmac.key")); err != nil {
		t.Errorf("hmac.key not in the default data directory: %v", err)
	}
}

func TestLoadValues(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(env(map[string]string{
		"TESSERA_DATA_DIR":           dir,
		"TESSERA_ADDR":               ":9000",
		"TESSERA_DATABASE_URL":       "postgresql://u@db/tessera",
		"TESSERA_SQLITE_SYNC":        "full",
		"TESSERA_POSTGRES_MAX_CONNS": " 4 ",
		"TESSERA_LOG_FORMAT":         "json",
		"TESSERA_LOG_LEVEL":          "debug",
		"TESSERA_SHUTDOWN_TIMEOUT":   "30s",
		"TESSERA_DB_TIMEOUT":         "2500ms",
		"TESSERA_RETENTION":          "72h",
		"TESSERA_HMAC_KEY":           b64(1),
		"TESSERA_ENCRYPTION_KEYS":    "new:" + b64(3) + ",old:" + b64(2),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9000" || !c.UsesPostgres() || !c.SQLiteFullSync || c.PostgresConns != 4 || c.LogFormat != "json" ||
		c.LogLevel != "debug" || c.ShutdownTimeout != 30*time.Second || c.Retention != 72*time.Hour || c.DBTimeout != 2500*time.Millisecond {
		t.Errorf("config: %+v", c)
	}
	if c.KeysGenerated {
		t.Error("KeysGenerated with keys from the environment")
	}
	if len(c.HMACKeys) != 1 || c.HMACKeys[0].ID != "" || !bytes.Equal(c.HMACKeys[0].Key, raw(1)) {
		t.Errorf("HMACKeys = %+v, want the one key without id", c.HMACKeys)
	}
	if len(c.EncryptionKeys) != 2 || c.EncryptionKeys[0].ID != "new" || c.EncryptionKeys[1].ID != "old" {
		t.Errorf("EncryptionKeys = %+v, want new then old", c.EncryptionKeys)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("data directory holds %v, want no key files", entries)
	}
}

func TestLoadFileVariants(t *testing.T) {
	secrets := t.TempDir()
	dir := filepath.Join(t.TempDir(), "data")
	c, err := Load(env(map[string]string{
		"TESSERA_DATA_DIR":             dir,
		"TESSERA_DATABASE_URL_FILE":    writeFile(t, secrets, "db", "postgres://u:pw@db/tessera\n"),
		"TESSERA_HMAC_KEY_FILE":        writeFile(t, secrets, "hmac", b64(7)+"\n"),
		"TESSERA_ENCRYPTION_KEYS_FILE": writeFile(t, secrets, "enc", "k9:"+b64(8)+"\nk8:"+b64(9)+"\n"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://u:pw@db/tessera" || !c.UsesPostgres() {
		t.Errorf("DatabaseURL = %q", c.DatabaseURL)
	}
	if len(c.HMACKeys) != 1 || !bytes.Equal(c.HMACKeys[0].Key, raw(7)) {
		t.Errorf("HMACKeys = %+v", c.HMACKeys)
	}
	if len(c.EncryptionKeys) != 2 || c.EncryptionKeys[0].ID != "k9" || !bytes.Equal(c.EncryptionKeys[0].Key, raw(8)) {
		t.Errorf("EncryptionKeys = %+v", c.EncryptionKeys)
	}
	if c.KeysGenerated {
		t.Error("KeysGenerated with keys from files")
	}
	if _, err := os.Stat(filepath.Join(dir, "hmac.key")); err == nil {
		t.Error("hmac.key generated although TESSERA_HMAC_KEY_FILE is set")
	}
}

func TestLoadGeneratesOnlyMissingKeys(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(env(map[string]string{"TESSERA_DATA_DIR": dir, "TESSERA_HMAC_KEY": b64(1)}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.KeysGenerated || !bytes.Equal(c.HMACKeys[0].Key, raw(1)) {
		t.Errorf("KeysGenerated = %v, HMACKeys = %+v", c.KeysGenerated, c.HMACKeys)
	}
	if _, err := os.Stat(filepath.Join(dir, "hmac.key")); err == nil {
		t.Error("hmac.key generated although TESSERA_HMAC_KEY is set")
	}
	if _, err := os.Stat(filepath.Join(dir, "encryption.keys")); err != nil {
		t.Errorf("encryption.keys not generated: %v", err)
	}
}

func TestLoadBothValueAndFile(t *testing.T) {
	secrets := t.TempDir()
	values := map[string]string{
		"TESSERA_DATABASE_URL":    "postgres://db/x",
		"TESSERA_HMAC_KEY":        b64(1),
		"TESSERA_ENCRYPTION_KEYS": "k1:" + b64(2),
	}
	for name, value := range values {
		t.Run(name, func(t *testing.T) {
			_, err := Load(env(map[string]string{
				"TESSERA_DATA_DIR": t.TempDir(),
				name:               value,
				name + "_FILE":     writeFile(t, secrets, name, value),
			}))
			if err == nil {
				t.Fatal("Load succeeded with both set")
			}
			if msg := err.Error(); !strings.Contains(msg, name+" ") || !strings.Contains(msg, name+"_FILE") {
				t.Errorf("error %q does not name both %s and %s_FILE", msg, name, name)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	for _, name := range []string{"TESSERA_DATABASE_URL", "TESSERA_HMAC_KEY", "TESSERA_ENCRYPTION_KEYS"} {
		_, err := Load(env(map[string]string{
			"TESSERA_DATA_DIR": t.TempDir(),
			name + "_FILE":     filepath.Join(t.TempDir(), "missing"),
		}))
		if err == nil || !strings.Contains(err.Error(), name+"_FILE") {
			t.Errorf("%s_FILE naming a missing file: error %v, want one naming %s_FILE", name, err, name)
		}
	}
}

func TestLoadBadValues(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		want []string // each must appear in the one error
	}{
		{
			name: "several at once",
			vars: map[string]string{
				"TESSERA_DATABASE_URL":     "mysql://x",
				"TESSERA_LOG_FORMAT":       "xml",
				"TESSERA_SHUTDOWN_TIMEOUT": "abc",
			},
			want: []string{"TESSERA_DATABASE_URL", "TESSERA_LOG_FORMAT", "TESSERA_SHUTDOWN_TIMEOUT"},
		},
		{name: "database URL", vars: map[string]string{"TESSERA_DATABASE_URL": "mysql://x"}, want: []string{"TESSERA_DATABASE_URL"}},
		{name: "database file path", vars: map[string]string{"TESSERA_DATABASE_URL": "/var/lib/tessera.db"}, want: []string{"TESSERA_DATABASE_URL"}},
		{name: "log format", vars: map[string]string{"TESSERA_LOG_FORMAT": "xml"}, want: []string{"TESSERA_LOG_FORMAT"}},
		{name: "log level", vars: map[string]string{"TESSERA_LOG_LEVEL": "verbose"}, want: []string{"TESSERA_LOG_LEVEL"}},
		{name: "sqlite sync", vars: map[string]string{"TESSERA_SQLITE_SYNC": "off"}, want: []string{"TESSERA_SQLITE_SYNC"}},
		{name: "max conns zero", vars: map[string]string{"TESSERA_POSTGRES_MAX_CONNS": "0"}, want: []string{"TESSERA_POSTGRES_MAX_CONNS"}},
		{name: "max conns word", vars: map[string]string{"TESSERA_POSTGRES_MAX_CONNS": "many"}, want: []string{"TESSERA_POSTGRES_MAX_CONNS"}},
		{name: "max conns trailing junk", vars: map[string]string{"TESSERA_POSTGRES_MAX_CONNS": "16x"}, want: []string{"TESSERA_POSTGRES_MAX_CONNS"}},
		{name: "max conns two numbers", vars: map[string]string{"TESSERA_POSTGRES_MAX_CONNS": "8 16"}, want: []string{"TESSERA_POSTGRES_MAX_CONNS"}},
		{name: "shutdown timeout", vars: map[string]string{"TESSERA_SHUTDOWN_TIMEOUT": "abc"}, want: []string{"TESSERA_SHUTDOWN_TIMEOUT"}},
		{name: "db timeout word", vars: map[string]string{"TESSERA_DB_TIMEOUT": "soon"}, want: []string{"TESSERA_DB_TIMEOUT"}},
		{name: "db timeout too short", vars: map[string]string{"TESSERA_DB_TIMEOUT": "100ms"}, want: []string{"TESSERA_DB_TIMEOUT"}},
		{name: "db timeout past the write timeout", vars: map[string]string{"TESSERA_DB_TIMEOUT": "1m"}, want: []string{"TESSERA_DB_TIMEOUT"}},
		{name: "shutdown timeout without unit", vars: map[string]string{"TESSERA_SHUTDOWN_TIMEOUT": "15"}, want: []string{"TESSERA_SHUTDOWN_TIMEOUT"}},
		{name: "negative retention", vars: map[string]string{"TESSERA_RETENTION": "-1h"}, want: []string{"TESSERA_RETENTION"}},
		{name: "zero retention", vars: map[string]string{"TESSERA_RETENTION": "0s"}, want: []string{"TESSERA_RETENTION"}},
		{name: "unknown email sender", vars: map[string]string{"TESSERA_EMAIL_SENDER": "pigeon"}, want: []string{"TESSERA_EMAIL_SENDER"}},
		{name: "unknown sms sender", vars: map[string]string{"TESSERA_SMS_SENDER": "smtp"}, want: []string{"TESSERA_SMS_SENDER"}},
		{name: "smtp without host", vars: map[string]string{"TESSERA_EMAIL_SENDER": "smtp", "TESSERA_SMTP_FROM": "a@b.example"}, want: []string{"TESSERA_SMTP_HOST"}},
		{name: "twilio without token", vars: map[string]string{"TESSERA_SMS_SENDER": "twilio", "TESSERA_TWILIO_ACCOUNT_SID": "AC1", "TESSERA_TWILIO_FROM": "+14155550100"}, want: []string{"TESSERA_TWILIO_AUTH_TOKEN"}},
		{name: "webhook without secret", vars: map[string]string{"TESSERA_SMS_SENDER": "webhook", "TESSERA_WEBHOOK_URL": "https://h.example"}, want: []string{"TESSERA_WEBHOOK_SECRET"}},
		{name: "events without secret", vars: map[string]string{"TESSERA_EVENTS_URL": "https://ops.example/hooks"}, want: []string{"TESSERA_EVENTS_SECRET"}},
		{name: "events unknown type", vars: map[string]string{"TESSERA_EVENTS": "verification.approved,account.pasword_changed"}, want: []string{"TESSERA_EVENTS", "account.pasword_changed"}},
		{name: "smtp port", vars: map[string]string{"TESSERA_SMTP_PORT": "x"}, want: []string{"TESSERA_SMTP_PORT"}},
		{name: "outbox lease", vars: map[string]string{"TESSERA_OUTBOX_LEASE": "soon"}, want: []string{"TESSERA_OUTBOX_LEASE"}},
		{name: "outbox attempts", vars: map[string]string{"TESSERA_OUTBOX_MAX_ATTEMPTS": "0"}, want: []string{"TESSERA_OUTBOX_MAX_ATTEMPTS"}},
		{name: "sms number type unknown", vars: map[string]string{"TESSERA_SMS_NUMBER_TYPES": "mobile,cellular"}, want: []string{"TESSERA_SMS_NUMBER_TYPES", "cellular"}},
		{name: "sms breaker shape", vars: map[string]string{"TESSERA_SMS_BREAKER": "50,0.2"}, want: []string{"TESSERA_SMS_BREAKER"}},
		{name: "sms breaker conversion", vars: map[string]string{"TESSERA_SMS_BREAKER": "50,20,1h"}, want: []string{"TESSERA_SMS_BREAKER", "MIN_CONVERSION"}},
		{name: "sms breaker sends", vars: map[string]string{"TESSERA_SMS_BREAKER": "0,0.2,1h"}, want: []string{"TESSERA_SMS_BREAKER", "MIN_SENDS"}},
		{name: "sms breaker window", vars: map[string]string{"TESSERA_SMS_BREAKER": "50,0.2,1s"}, want: []string{"TESSERA_SMS_BREAKER", "WINDOW"}},
		{name: "sms number types empty", vars: map[string]string{"TESSERA_SMS_NUMBER_TYPES": " , "}, want: []string{"TESSERA_SMS_NUMBER_TYPES"}},
		{name: "phone fallback channel", vars: map[string]string{"TESSERA_PHONE_FALLBACK": "sms,email"}, want: []string{"TESSERA_PHONE_FALLBACK", "email"}},
		{name: "phone fallback twice", vars: map[string]string{"TESSERA_PHONE_FALLBACK": "sms,call,sms"}, want: []string{"TESSERA_PHONE_FALLBACK", "twice"}},
		{name: "phone fallback after without reports", vars: map[string]string{"TESSERA_PHONE_FALLBACK_AFTER": "60s"}, want: []string{"TESSERA_PHONE_FALLBACK_AFTER", "TESSERA_PUBLIC_URL"}},
		{name: "phone fallback after too short", vars: map[string]string{"TESSERA_PHONE_FALLBACK_AFTER": "2s"}, want: []string{"TESSERA_PHONE_FALLBACK_AFTER", "10s"}},
		{name: "voice language", vars: map[string]string{"TESSERA_VOICE_LANGUAGE": `en"><Play>`}, want: []string{"TESSERA_VOICE_LANGUAGE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			vars := map[string]string{"TESSERA_DATA_DIR": dir}
			for k, v := range tc.vars {
				vars[k] = v
			}
			c, err := Load(env(vars))
			if err == nil {
				t.Fatalf("Load = %+v, want an error", c)
			}
			for _, name := range tc.want {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
		})
	}
}

func TestLoadBadKeys(t *testing.T) {
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{5}, 31))
	tests := []struct {
		name string
		vars map[string]string
		want string
	}{
		{name: "hmac key not base64", vars: map[string]string{"TESSERA_HMAC_KEY": "not a key!"}, want: "TESSERA_HMAC_KEY"},
		{name: "hmac key 31 bytes", vars: map[string]string{"TESSERA_HMAC_KEY": short}, want: "TESSERA_HMAC_KEY"},
		{name: "encryption key without id", vars: map[string]string{"TESSERA_ENCRYPTION_KEYS": b64(4)}, want: "TESSERA_ENCRYPTION_KEYS"},
		{name: "encryption key 31 bytes", vars: map[string]string{"TESSERA_ENCRYPTION_KEYS": "k1:" + short}, want: "TESSERA_ENCRYPTION_KEYS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"TESSERA_DATA_DIR": t.TempDir()}
			for k, v := range tc.vars {
				vars[k] = v
			}
			_, err := Load(env(vars))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
			// The error is printed at start-up: it must not carry the key.
			for _, v := range tc.vars {
				if strings.Contains(err.Error(), v) || strings.Contains(err.Error(), strings.TrimPrefix(v, "k1:")) {
					t.Errorf("error %q repeats the key", err)
				}
			}
		})
	}
}

func TestLoadCorruptKeyFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(env(map[string]string{"TESSERA_DATA_DIR": dir})); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, dir, "hmac.key", "truncated")
	_, err := Load(env(map[string]string{"TESSERA_DATA_DIR": dir}))
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt %s: error %v, want one naming the file", path, err)
	}
}

func TestLoadDeliverySettings(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(env(map[string]string{
		"TESSERA_DATA_DIR":     dir,
		"TESSERA_EMAIL_SENDER": "smtp", "TESSERA_SMTP_HOST": "smtp.example.com", "TESSERA_SMTP_PORT": "2525",
		"TESSERA_SMTP_TLS": "tls", "TESSERA_SMTP_USERNAME": "u", "TESSERA_SMTP_PASSWORD_FILE": writeFile(t, dir, "pw", "s3cret\n"),
		"TESSERA_SMTP_FROM":  "Acme <no-reply@acme.example>",
		"TESSERA_SMS_SENDER": "twilio", "TESSERA_TWILIO_ACCOUNT_SID": "AC123", "TESSERA_TWILIO_AUTH_TOKEN": "tok",
		"TESSERA_TWILIO_MESSAGING_SERVICE_SID": "MG1", "TESSERA_OUTBOX_LEASE": "2s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := SMTP{Host: "smtp.example.com", Port: 2525, TLS: "tls", Username: "u", Password: "s3cret", From: "Acme <no-reply@acme.example>"}
	if c.SMTP != want || c.EmailSender != "smtp" || c.SMSSender != "twilio" || c.Twilio.MessagingServiceSID != "MG1" ||
		c.Twilio.BaseURL != "https://api.twilio.com" || c.OutboxLease != 2*time.Second || c.OutboxMaxAttempts != 8 || c.ResendCooldown != 30*time.Second {
		t.Fatalf("loaded %+v", c)
	}
}

func TestPostgresNeedsSharedKeys(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(env(map[string]string{"TESSERA_DATA_DIR": dir, "TESSERA_DATABASE_URL": "postgres://db.example/tessera"}))
	if err == nil || !strings.Contains(err.Error(), "TESSERA_HMAC_KEY") {
		t.Fatalf("PostgreSQL without keys: %v, want an error naming TESSERA_HMAC_KEY", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("keys were generated for PostgreSQL: %v", entries)
	}
	c, err := Load(env(map[string]string{"TESSERA_DATA_DIR": dir, "TESSERA_DATABASE_URL": "postgres://db.example/tessera",
		"TESSERA_HMAC_KEY": b64(1), "TESSERA_ENCRYPTION_KEYS": "k1:" + b64(2)}))
	if err != nil || c.KeysGenerated {
		t.Fatalf("PostgreSQL with keys: %v", err)
	}
}

func TestCheckWebAuthn(t *testing.T) {
	for _, c := range []struct {
		rpID    string
		origins []string
		ok      bool
	}{
		{"localhost", []string{"http://localhost:8080"}, true},
		{"example.com", []string{"https://example.com", "https://login.example.com:8443"}, true},
		{"example.com", []string{"http://example.com"}, false},          // http only for localhost
		{"example.com", []string{"https://example.org"}, false},         // another site
		{"example.com", []string{"https://badexample.com"}, false},      // not a subdomain
		{"example.com", []string{"https://example.com/login"}, false},   // a path is no origin
		{"https://example.com", []string{"https://example.com"}, false}, // the RP ID is a domain
		{"127.0.0.1", []string{"http://127.0.0.1:8080"}, false},
		{"example.com", nil, false},
	} {
		err := CheckWebAuthn(c.rpID, c.origins)
		if (err == nil) != c.ok {
			t.Errorf("CheckWebAuthn(%q, %v) = %v, want ok=%v", c.rpID, c.origins, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "TESSERA_WEBAUTHN_") {
			t.Errorf("the error does not name the setting: %v", err)
		}
	}
}

func TestPublicURL(t *testing.T) {
	base := map[string]string{"TESSERA_DATA_DIR": t.TempDir()}
	load := func(v string) (*Config, error) {
		vars := map[string]string{"TESSERA_PUBLIC_URL": v}
		for k, x := range base {
			vars[k] = x
		}
		return Load(env(vars))
	}
	c, err := load("")
	if err != nil || c.PublicURL != "" {
		t.Fatalf("unset: %q, %v", c.PublicURL, err)
	}
	for in, want := range map[string]string{
		"https://tessera.example.com/":     "https://tessera.example.com",
		"https://tessera.example.com/base": "https://tessera.example.com/base",
		"http://localhost:8080":            "http://localhost:8080",
	} {
		c, err := load(in)
		if err != nil || c.PublicURL != want {
			t.Errorf("%q: %q, %v; want %q", in, c.PublicURL, err, want)
		}
	}
	for _, bad := range []string{"tessera.example.com", "ftp://tessera.example.com", "http://tessera.example.com", "https://tessera.example.com/?a=1", "https://u:p@tessera.example.com"} {
		if _, err := load(bad); err == nil || !strings.Contains(err.Error(), "TESSERA_PUBLIC_URL") {
			t.Errorf("%q: err %v, want one naming TESSERA_PUBLIC_URL", bad, err)
		}
	}
	found := false
	c, _ = load("https://tessera.example.com")
	for _, s := range c.Settings() {
		if s.Name == "TESSERA_PUBLIC_URL" && s.Value == "https://tessera.example.com" {
			found = true
		}
	}
	if !found {
		t.Error("Settings does not show TESSERA_PUBLIC_URL")
	}
}

func TestSMSNumberTypes(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"", "fixed_line_or_mobile,mobile"}, // the default
		{"MOBILE, voip", "mobile,voip"},
		{"all", "all"},
	} {
		vars := map[string]string{"TESSERA_DATA_DIR": t.TempDir()}
		if tc.value != "" {
			vars["TESSERA_SMS_NUMBER_TYPES"] = tc.value
		}
		c, err := Load(env(vars))
		if err != nil {
			t.Fatal(err)
		}
		var shown string
		for _, s := range c.Settings() {
			if s.Name == "TESSERA_SMS_NUMBER_TYPES" {
				shown = s.Value
			}
		}
		if shown != tc.want {
			t.Errorf("TESSERA_SMS_NUMBER_TYPES=%q shows %q, want %q", tc.value, shown, tc.want)
		}
	}
}

func TestSMSBreaker(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"", "50,0.2,1h0m0s"}, // the default
		{"100, 0.05, 30m", "100,0.05,30m0s"},
		{"off", "off"},
	} {
		vars := map[string]string{"TESSERA_DATA_DIR": t.TempDir()}
		if tc.value != "" {
			vars["TESSERA_SMS_BREAKER"] = tc.value
		}
		c, err := Load(env(vars))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range c.Settings() {
			if s.Name == "TESSERA_SMS_BREAKER" && s.Value != tc.want {
				t.Errorf("TESSERA_SMS_BREAKER=%q shows %q, want %q", tc.value, s.Value, tc.want)
			}
		}
		if (c.SMSBreaker == nil) != (tc.value == "off") {
			t.Errorf("TESSERA_SMS_BREAKER=%q: breaker %+v", tc.value, c.SMSBreaker)
		}
	}
}

func TestLoadEvents(t *testing.T) {
	c, err := Load(env(map[string]string{
		"TESSERA_DATA_DIR":   t.TempDir(),
		"TESSERA_EVENTS_URL": "https://ops.example/hooks", "TESSERA_EVENTS_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"TESSERA_EVENTS": "verification.locked, account.*",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Events.URL != "https://ops.example/hooks" || len(c.Events.Types) != 2 || !c.Events.Types["verification.locked"] || !c.Events.Types["account.*"] {
		t.Fatalf("loaded %+v", c.Events)
	}
	if off, err := Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir()})); err != nil || off.Events.URL != "" || off.Events.Types != nil {
		t.Fatalf("without TESSERA_EVENTS_URL: %+v, %v", off.Events, err)
	}
}

func TestAccountPagesSettings(t *testing.T) {
	dir := t.TempDir()
	load := func(vars map[string]string) (*Config, error) {
		vars["TESSERA_DATA_DIR"] = dir
		return Load(env(vars))
	}
	c, err := load(map[string]string{"TESSERA_SERVICE_NAME": "Acme"})
	if err != nil || !c.AccountPages || c.BrandName != "Acme" || c.BrandColor != "#1f5fbf" || c.BrandLogoURL != "" || c.ReturnURLs != nil {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = load(map[string]string{"TESSERA_ACCOUNT_PAGES": "0", "TESSERA_BRAND_NAME": "Acme ID", "TESSERA_BRAND_COLOR": "#AA3300",
		"TESSERA_BRAND_LOGO_URL": "https://cdn.example.com/logo.svg", "TESSERA_RETURN_URLS": "https://app.example.com/cb, http://localhost:3000/cb"})
	if err != nil || c.AccountPages || c.BrandName != "Acme ID" || c.BrandColor != "#AA3300" || len(c.ReturnURLs) != 2 || c.ReturnURLs[1] != "http://localhost:3000/cb" {
		t.Fatalf("set: %+v, %v", c, err)
	}
	for name, bad := range map[string]string{
		"TESSERA_ACCOUNT_PAGES":  "maybe",
		"TESSERA_BRAND_COLOR":    "red",
		"TESSERA_BRAND_LOGO_URL": "http://cdn.example.com/logo.png",
		"TESSERA_RETURN_URLS":    "https://app.example.com/cb?x=1",
	} {
		if _, err := load(map[string]string{name: bad}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: err %v, want one naming it", name, bad, err)
		}
	}
	for _, bad := range []string{"http://app.example.com/cb", "app.example.com/cb", "https://app.example.com/cb#x", "https://u@app.example.com/cb"} {
		if err := CheckReturnURL(bad); err == nil {
			t.Errorf("return URL %q accepted", bad)
		}
	}
}

func TestPhoneChannelSettings(t *testing.T) {
	c, err := Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir(), "TESSERA_PHONE_FALLBACK": "WhatsApp, sms,call",
		"TESSERA_VOICE_LANGUAGE": "de-DE", "TESSERA_TWILIO_WHATSAPP_FROM": "+14155550111"}))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range c.Settings() {
		settings[s.Name] = s.Value
	}
	if settings["TESSERA_PHONE_FALLBACK"] != "whatsapp,sms,call" || settings["TESSERA_VOICE_LANGUAGE"] != "de-DE" || settings["TESSERA_TWILIO_WHATSAPP_FROM"] != "+14155550111" {
		t.Fatalf("settings %v", settings)
	}
	c, err = Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir()}))
	if err != nil || c.PhoneFallback != nil || c.VoiceLanguage != "en-US" || c.PhoneFallbackAfter != 0 {
		t.Fatalf("defaults: %v %q %v, %v", c.PhoneFallback, c.VoiceLanguage, c.PhoneFallbackAfter, err)
	}
	c, err = Load(env(map[string]string{"TESSERA_DATA_DIR": t.TempDir(), "TESSERA_PHONE_FALLBACK": "sms,call", "TESSERA_PHONE_FALLBACK_AFTER": "90s",
		"TESSERA_SMS_SENDER": "twilio", "TESSERA_TWILIO_ACCOUNT_SID": "AC123", "TESSERA_TWILIO_AUTH_TOKEN": "tok", "TESSERA_TWILIO_FROM": "+14155550100",
		"TESSERA_PUBLIC_URL": "https://tessera.example.com"}))
	if err != nil || c.PhoneFallbackAfter != 90*time.Second {
		t.Fatalf("TESSERA_PHONE_FALLBACK_AFTER=90s: %v, %v", c.PhoneFallbackAfter, err)
	}
}
