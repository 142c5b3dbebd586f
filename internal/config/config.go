// Package config reads Tessera's configuration from TESSERA_* environment
// variables, once, at start-up. Secrets may instead come from a file named
// by the same variable with _FILE appended. Every problem is reported at
// once, with what to set.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/ratelimit"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/verify"
)

// Config is the effective configuration.
type Config struct {
	Addr            string        // TESSERA_ADDR: listen address
	DataDir         string        // TESSERA_DATA_DIR: SQLite database and generated keys
	DatabaseURL     string        // TESSERA_DATABASE_URL: postgres://… selects PostgreSQL; empty means SQLite in DataDir
	SQLiteFullSync  bool          // TESSERA_SQLITE_SYNC=full: fsync every commit
	PostgresConns   int           // TESSERA_POSTGRES_MAX_CONNS
	DBTimeout       time.Duration // TESSERA_DB_TIMEOUT: deadline of a request's database work (and PostgreSQL connect and statement timeouts)
	MaxInFlight     int           // TESSERA_MAX_IN_FLIGHT: requests served at once before a fast 503; 0: no bound
	LogFormat       string        // TESSERA_LOG_FORMAT: text or json
	LogLevel        string        // TESSERA_LOG_LEVEL: debug, info, warn, error
	ShutdownTimeout time.Duration // TESSERA_SHUTDOWN_TIMEOUT: how long SIGTERM waits for requests in flight
	Retention       time.Duration // TESSERA_RETENTION: how long used and expired rows are kept
	AuditRetention  time.Duration // TESSERA_AUDIT_RETENTION: how long audit events are kept
	DebugAddr       string        // TESSERA_DEBUG_ADDR: if set, serve net/http/pprof there (keep it on loopback)

	// Accounts.
	ServiceName   string        // TESSERA_SERVICE_NAME: the name users see in messages and authenticator apps
	TokenIssuer   string        // TESSERA_TOKEN_ISSUER: the ID token's "iss", usually Tessera's public URL
	TokenAudience string        // TESSERA_TOKEN_AUDIENCE: the ID token's "aud"
	IDTokenTTL    time.Duration // TESSERA_ID_TOKEN_TTL: how long an ID token is valid
	RefreshGrace  time.Duration // TESSERA_REFRESH_GRACE: how long a rotated refresh token still yields its successor
	// ID token claims and signing keys (tokens.go).
	IDTokenClaims   map[string]bool // TESSERA_ID_TOKEN_CLAIMS: the optional claims ID tokens carry
	IDTokenAlg      string          // TESSERA_ID_TOKEN_ALG: EdDSA, ES256 or RS256
	KeyPublishAhead time.Duration   // TESSERA_KEY_PUBLISH_AHEAD: how long a new key is published before it signs
	KeyRotation     time.Duration   // TESSERA_KEY_ROTATION: automatic rotation period; 0 (off): only tessera keys rotate
	// TESSERA_PRIVILEGED_MAX_AGE: how long after the user last proved
	// their factors a session may change passwords, keys and factors
	PrivilegedMaxAge time.Duration
	NewDeviceNotices bool // TESSERA_NEW_DEVICE_NOTICES: email the user on a login from a new device

	// Passkeys (WebAuthn): the relying party's id (a domain), the name
	// authenticators show, and the origins pages may call from.
	WebAuthnRPID    string   // TESSERA_WEBAUTHN_RP_ID
	WebAuthnRPName  string   // TESSERA_WEBAUTHN_RP_NAME
	WebAuthnOrigins []string // TESSERA_WEBAUTHN_ORIGINS, comma-separated

	// Hosted account pages (/account/...).
	AccountPages bool     // TESSERA_ACCOUNT_PAGES: serve them (default on)
	BrandName    string   // TESSERA_BRAND_NAME: the product name the pages show (default TESSERA_SERVICE_NAME)
	BrandLogoURL string   // TESSERA_BRAND_LOGO_URL: an https URL (or a path on this host) of a logo image
	BrandColor   string   // TESSERA_BRAND_COLOR: #rrggbb of buttons and links
	ReturnURLs   []string // TESSERA_RETURN_URLS, comma-separated: where the pages may send a user back to (origin + path prefix)

	// Abuse protection.
	RedisURL        string          // TESSERA_REDIS_URL (_FILE): shared limits across instances; unset: in memory
	RedisPrefix     string          // TESSERA_REDIS_PREFIX: key prefix, so several services can share one Redis
	TrustedProxies  []netip.Prefix  // TESSERA_TRUSTED_PROXIES: whose X-Forwarded-For is believed
	LimitIP         ratelimit.Limit // TESSERA_LIMIT_IP: per client IP, public accounts endpoints
	LimitClient     ratelimit.Limit // TESSERA_LIMIT_CLIENT: per API client, verification API
	LimitDestHour   ratelimit.Limit // TESSERA_LIMIT_DESTINATION_HOURLY: codes to one destination
	LimitDestDay    ratelimit.Limit // TESSERA_LIMIT_DESTINATION_DAILY
	LimitSMSCountry ratelimit.Limit // TESSERA_LIMIT_SMS_COUNTRY: SMS to one country calling code
	SMSCountries    map[string]bool // TESSERA_SMS_ALLOWED_COUNTRIES: empty means all
	SMSNumberTypes  map[string]bool // TESSERA_SMS_NUMBER_TYPES: the phone number types SMS go to
	// TESSERA_SMS_BREAKER: MIN_SENDS,MIN_CONVERSION,WINDOW of the SMS
	// pumping breaker ("50,0.2,1h"), or off (nil)
	SMSBreaker *verify.Breaker

	// Delivery.
	EmailSender       string        // TESSERA_EMAIL_SENDER: log, smtp or webhook
	SMSSender         string        // TESSERA_SMS_SENDER: log, twilio or webhook
	SMTP              SMTP          // TESSERA_SMTP_*
	Twilio            Twilio        // TESSERA_TWILIO_*
	Webhook           Webhook       // TESSERA_WEBHOOK_*
	Events            Events        // TESSERA_EVENTS_*: operator event webhooks
	PublicURL         string        // TESSERA_PUBLIC_URL: where providers reach Tessera (Twilio status callbacks); no trailing slash
	OutboxLease       time.Duration // TESSERA_OUTBOX_LEASE: how long a worker holds a message it is sending
	OutboxMaxAttempts int           // TESSERA_OUTBOX_MAX_ATTEMPTS: tries before a message is given up
	ResendCooldown    time.Duration // TESSERA_RESEND_COOLDOWN: wait between sends of the same code
	// TESSERA_PHONE_FALLBACK: the order phone channels are tried in when
	// a request names none ("whatsapp,sms,call"); nil: no fallback
	PhoneFallback []tessera.Channel
	// TESSERA_PHONE_FALLBACK_AFTER: how long a phone message waits for a
	// delivery report before the next channel is tried; 0: only a refused
	// or failed message falls back
	PhoneFallbackAfter time.Duration
	VoiceLanguage      string // TESSERA_VOICE_LANGUAGE: the language calls read codes in (default en-US)

	// Browser apps and developers.
	CORSOrigins []string // TESSERA_CORS_ORIGINS: origins whose scripts may call the accounts API; empty: CORS off
	// TESSERA_DEV_INBOX: serve /dev/inbox with the log sender's recent
	// messages (default: on a loopback address with SQLite)
	DevInbox bool
	// DevInboxAnywhere: TESSERA_DEV_INBOX=1 asked for it, so it answers
	// whoever reaches it; on by default, it answers this machine only.
	DevInboxAnywhere bool

	// HMACKeys and EncryptionKeys come from TESSERA_HMAC_KEY and
	// TESSERA_ENCRYPTION_KEYS, or else from files in DataDir that are
	// created on first start. Several instances must share them. Both
	// are newest first; one HMAC key may have no id (the key from before
	// HMAC keys had ids).
	HMACKeys       []secret.Key
	EncryptionKeys []secret.Key
	// KeysGenerated is true when keys were created in DataDir this start.
	KeysGenerated bool

	known map[string]bool // every variable Load read (UnknownVariables)
}

// SMTP is the SMTP sender's settings.
type SMTP struct {
	Host     string // TESSERA_SMTP_HOST
	Port     int    // TESSERA_SMTP_PORT (0: 587 for starttls, 465 for tls, 25 for none)
	TLS      string // TESSERA_SMTP_TLS: starttls (default), tls or none
	Username string // TESSERA_SMTP_USERNAME
	Password string // TESSERA_SMTP_PASSWORD (_FILE)
	From     string // TESSERA_SMTP_FROM: default From, e.g. "Acme <no-reply@acme.example>"
}

// Twilio is the Twilio SMS sender's settings.
type Twilio struct {
	AccountSID          string // TESSERA_TWILIO_ACCOUNT_SID
	AuthToken           string // TESSERA_TWILIO_AUTH_TOKEN (_FILE)
	From                string // TESSERA_TWILIO_FROM: an E.164 number, or
	MessagingServiceSID string // TESSERA_TWILIO_MESSAGING_SERVICE_SID
	BaseURL             string // TESSERA_TWILIO_BASE_URL (default https://api.twilio.com)
	WhatsAppFrom        string // TESSERA_TWILIO_WHATSAPP_FROM: the WhatsApp sender's E.164 number; unset: no WhatsApp
	WhatsAppContentSID  string // TESSERA_TWILIO_WHATSAPP_CONTENT_SID: an approved template (HX…) whose {{1}} is the code
}

// Webhook is the webhook sender's settings.
type Webhook struct {
	URL    string // TESSERA_WEBHOOK_URL
	Secret string // TESSERA_WEBHOOK_SECRET (_FILE): whsec_…
}

// Events is where operator events go: signed Standard Webhooks to the
// operator's endpoint. Off without a URL.
type Events struct {
	URL    string // TESSERA_EVENTS_URL
	Secret string // TESSERA_EVENTS_SECRET (_FILE): whsec_…
	// Types are the event types sent (TESSERA_EVENTS, a comma list; a
	// family as "account.*"); empty: all.
	Types map[string]bool
}

// Defaults.
const (
	DefaultAddr    = "127.0.0.1:8080"
	DefaultDataDir = "tessera-data"
	// sqliteMaxInFlight is TESSERA_MAX_IN_FLIGHT's default on SQLite: the
	// concurrency at which its single writer already gives its full
	// throughput (32 clients in scripts/bench.sh, p99 under 20 ms); more
	// requests in progress only wait longer for the writer.
	sqliteMaxInFlight = 32
	// postgresInFlightPerConn is TESSERA_MAX_IN_FLIGHT's default on
	// PostgreSQL per pooled connection (TESSERA_POSTGRES_MAX_CONNS): a
	// request holds a connection for part of its time only, but many more
	// requests than connections just queue on the pool past their deadline.
	postgresInFlightPerConn = 2
	// DefaultDBTimeout is TESSERA_DB_TIMEOUT's default.
	DefaultDBTimeout = 5 * time.Second
)

// SQLitePath is where the SQLite database lives.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "tessera.db") }

// UsesPostgres reports whether DatabaseURL selects PostgreSQL.
func (c *Config) UsesPostgres() bool {
	return strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://")
}

// defaultMaxInFlight sizes the in-flight bound to what the store can
// serve at once: past it requests only queue for a database connection (or
// SQLite's writer) and time out there, having done their work for nothing.
func (c *Config) defaultMaxInFlight() int {
	if c.UsesPostgres() {
		return postgresInFlightPerConn * c.PostgresConns
	}
	return sqliteMaxInFlight
}

// Load reads the configuration with getenv (os.Getenv outside tests) and
// loads or creates the keys, as serve does.
func Load(getenv func(string) string) (*Config, error) { return LoadMode(getenv, Create) }

// LoadMode is Load that does to the data directory only what mode allows.
func LoadMode(getenv func(string) string, mode Mode) (*Config, error) {
	lookups := &recorder{getenv: getenv, names: map[string]bool{}}
	getenv = lookups.get
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	c := &Config{
		Addr:      get("TESSERA_ADDR", DefaultAddr),
		DataDir:   get("TESSERA_DATA_DIR", DefaultDataDir),
		LogFormat: get("TESSERA_LOG_FORMAT", "text"),
		LogLevel:  get("TESSERA_LOG_LEVEL", "info"),
		DebugAddr: get("TESSERA_DEBUG_ADDR", ""),
	}
	var err error
	if c.DatabaseURL, err = secretValue(getenv, "TESSERA_DATABASE_URL"); err != nil {
		errs = append(errs, err)
	}
	if c.DatabaseURL != "" && !c.UsesPostgres() {
		bad("TESSERA_DATABASE_URL: must start with postgres:// (leave it unset for SQLite in TESSERA_DATA_DIR)")
	}
	switch s := get("TESSERA_SQLITE_SYNC", "normal"); s {
	case "normal":
	case "full":
		c.SQLiteFullSync = true
	default:
		bad("TESSERA_SQLITE_SYNC: must be normal or full, not %q", s)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("TESSERA_LOG_FORMAT: must be text or json, not %q", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("TESSERA_LOG_LEVEL: must be debug, info, warn or error, not %q", c.LogLevel)
	}
	// strconv, not fmt.Sscan: Sscan stops at the first non-digit, so "16x" would pass.
	if c.PostgresConns, err = strconv.Atoi(get("TESSERA_POSTGRES_MAX_CONNS", "16")); err != nil || c.PostgresConns < 1 {
		bad("TESSERA_POSTGRES_MAX_CONNS: must be a positive whole number")
	}
	if c.MaxInFlight, err = strconv.Atoi(get("TESSERA_MAX_IN_FLIGHT", strconv.Itoa(c.defaultMaxInFlight()))); err != nil || c.MaxInFlight < 0 {
		bad("TESSERA_MAX_IN_FLIGHT: must be a whole number, 0 for no bound")
	}
	c.ShutdownTimeout = duration(get("TESSERA_SHUTDOWN_TIMEOUT", "15s"), "TESSERA_SHUTDOWN_TIMEOUT", bad)
	c.DBTimeout = duration(get("TESSERA_DB_TIMEOUT", DefaultDBTimeout.String()), "TESSERA_DB_TIMEOUT", bad)
	// Below a second a busy but healthy database would answer 503; above
	// the server's 30 s write timeout the client would get no answer.
	if c.DBTimeout > 0 && (c.DBTimeout < time.Second || c.DBTimeout > 25*time.Second) {
		bad("TESSERA_DB_TIMEOUT: must be between 1s and 25s, not %s", c.DBTimeout)
	}
	c.ServiceName = get("TESSERA_SERVICE_NAME", "Tessera")
	c.TokenIssuer = get("TESSERA_TOKEN_ISSUER", "tessera")
	c.TokenAudience = get("TESSERA_TOKEN_AUDIENCE", "tessera")
	c.IDTokenTTL = duration(get("TESSERA_ID_TOKEN_TTL", "15m"), "TESSERA_ID_TOKEN_TTL", bad)
	c.RefreshGrace = duration(get("TESSERA_REFRESH_GRACE", "10s"), "TESSERA_REFRESH_GRACE", bad)
	c.PrivilegedMaxAge = duration(get("TESSERA_PRIVILEGED_MAX_AGE", "10m"), "TESSERA_PRIVILEGED_MAX_AGE", bad)
	c.loadTokens(get, bad)
	c.loadWebAuthn(get, bad)
	c.loadPages(get, bad)
	if v := get("TESSERA_NEW_DEVICE_NOTICES", "true"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			bad("TESSERA_NEW_DEVICE_NOTICES: must be true or false, not %q", v)
		}
		c.NewDeviceNotices = on
	}
	c.OutboxLease = duration(get("TESSERA_OUTBOX_LEASE", "1m"), "TESSERA_OUTBOX_LEASE", bad)
	c.ResendCooldown = duration(get("TESSERA_RESEND_COOLDOWN", "30s"), "TESSERA_RESEND_COOLDOWN", bad)
	c.OutboxMaxAttempts = positive(get("TESSERA_OUTBOX_MAX_ATTEMPTS", "8"), "TESSERA_OUTBOX_MAX_ATTEMPTS", bad)
	c.loadDelivery(getenv, get, bad)
	c.loadLimits(getenv, get, bad)
	c.loadBrowser(get, bad)
	c.Retention = duration(get("TESSERA_RETENTION", "24h"), "TESSERA_RETENTION", bad)
	c.AuditRetention = duration(get("TESSERA_AUDIT_RETENTION", "2160h"), "TESSERA_AUDIT_RETENTION", bad)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if mode == Existing && !c.UsesPostgres() {
		if _, err := os.Stat(c.SQLitePath()); errors.Is(err, os.ErrNotExist) {
			return nil, noData(c.DataDir, filepath.Base(c.SQLitePath()))
		}
	}
	if err := c.loadKeys(getenv, mode); err != nil {
		return nil, err
	}
	c.known = lookups.names
	return c, nil
}

// loadLimits reads the abuse-protection settings.
func (c *Config) loadLimits(getenv func(string) string, get func(name, def string) string, bad func(string, ...any)) {
	var err error
	if c.RedisURL, err = secretValue(getenv, "TESSERA_REDIS_URL"); err != nil {
		bad("%v", err)
	}
	c.RedisPrefix = get("TESSERA_REDIS_PREFIX", "tessera:")
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		bad("TESSERA_REDIS_URL: must start with redis:// or rediss://")
	}
	for _, p := range strings.FieldsFunc(get("TESSERA_TRUSTED_PROXIES", ""), func(r rune) bool { return r == ',' || r == ' ' }) {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				bad("TESSERA_TRUSTED_PROXIES: %q is neither an IP nor a CIDR", p)
				continue
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix)
	}
	limit := func(name, def string) ratelimit.Limit {
		l, err := ratelimit.Parse(get(name, def))
		if err != nil {
			bad("%s: %v", name, err)
		}
		return l
	}
	c.LimitIP = limit("TESSERA_LIMIT_IP", DefaultLimitIP)
	c.LimitClient = limit("TESSERA_LIMIT_CLIENT", DefaultLimitClient)
	c.LimitDestHour = limit("TESSERA_LIMIT_DESTINATION_HOURLY", "10/h")
	c.LimitDestDay = limit("TESSERA_LIMIT_DESTINATION_DAILY", "50/d")
	c.LimitSMSCountry = limit("TESSERA_LIMIT_SMS_COUNTRY", "300/h")
	for _, cc := range strings.FieldsFunc(get("TESSERA_SMS_ALLOWED_COUNTRIES", ""), func(r rune) bool { return r == ',' || r == ' ' }) {
		if c.SMSCountries == nil {
			c.SMSCountries = map[string]bool{}
		}
		cc = strings.ToUpper(cc)
		if len(cc) != 2 {
			bad("TESSERA_SMS_ALLOWED_COUNTRIES: %q is not an ISO 3166-1 alpha-2 code such as US", cc)
		}
		c.SMSCountries[cc] = true
	}
	types, err := verify.ParseNumberTypes(get("TESSERA_SMS_NUMBER_TYPES", verify.DefaultSMSNumberTypes))
	if err != nil {
		bad("TESSERA_SMS_NUMBER_TYPES: %v", err)
	}
	c.SMSNumberTypes = types
	if spec := get("TESSERA_SMS_BREAKER", DefaultSMSBreaker); spec != "off" {
		b, err := ParseBreaker(spec)
		if err != nil {
			bad("TESSERA_SMS_BREAKER: %v", err)
		}
		c.SMSBreaker = b
	}
}

// DefaultSMSBreaker is TESSERA_SMS_BREAKER's default.
const DefaultSMSBreaker = "50,0.2,1h"

// ParseBreaker reads MIN_SENDS,MIN_CONVERSION,WINDOW ("50,0.2,1h").
func ParseBreaker(spec string) (*verify.Breaker, error) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%q: must be MIN_SENDS,MIN_CONVERSION,WINDOW such as %s, or off", spec, DefaultSMSBreaker)
	}
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("%q: MIN_SENDS must be a whole number of at least 1", spec)
	}
	conv, err := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
	if err != nil || !(conv > 0 && conv <= 1) {
		return nil, fmt.Errorf("%q: MIN_CONVERSION must be a fraction above 0 and at most 1, such as 0.2", spec)
	}
	w, err := time.ParseDuration(strings.TrimSpace(parts[2]))
	if err != nil || w < time.Minute {
		return nil, fmt.Errorf("%q: WINDOW must be a duration of at least 1m, such as 1h", spec)
	}
	return &verify.Breaker{MinSends: n, MinConversion: conv, Window: w}, nil
}

// formatBreaker writes a breaker as ParseBreaker reads it.
func formatBreaker(b *verify.Breaker) string {
	if b == nil {
		return "off"
	}
	return strconv.Itoa(b.MinSends) + "," + strconv.FormatFloat(b.MinConversion, 'g', -1, 64) + "," + b.Window.String()
}

// Default limits.
const (
	DefaultLimitIP     = "60/m"
	DefaultLimitClient = "100/s,200"
)

// loadDelivery reads the sender settings and checks that the chosen
// senders have what they need.
func (c *Config) loadDelivery(getenv func(string) string, get func(name, def string) string, bad func(string, ...any)) {
	secretOf := func(name string) string {
		v, err := secretValue(getenv, name)
		if err != nil {
			bad("%v", err)
		}
		return v
	}
	c.EmailSender = get("TESSERA_EMAIL_SENDER", "log")
	c.SMSSender = get("TESSERA_SMS_SENDER", "log")
	c.SMTP = SMTP{
		Host: get("TESSERA_SMTP_HOST", ""), TLS: get("TESSERA_SMTP_TLS", "starttls"),
		Username: get("TESSERA_SMTP_USERNAME", ""), Password: secretOf("TESSERA_SMTP_PASSWORD"), From: get("TESSERA_SMTP_FROM", ""),
	}
	if p := get("TESSERA_SMTP_PORT", ""); p != "" {
		c.SMTP.Port = positive(p, "TESSERA_SMTP_PORT", bad)
	}
	c.Twilio = Twilio{
		AccountSID: get("TESSERA_TWILIO_ACCOUNT_SID", ""), AuthToken: secretOf("TESSERA_TWILIO_AUTH_TOKEN"),
		From: get("TESSERA_TWILIO_FROM", ""), MessagingServiceSID: get("TESSERA_TWILIO_MESSAGING_SERVICE_SID", ""),
		BaseURL:      get("TESSERA_TWILIO_BASE_URL", "https://api.twilio.com"),
		WhatsAppFrom: get("TESSERA_TWILIO_WHATSAPP_FROM", ""), WhatsAppContentSID: get("TESSERA_TWILIO_WHATSAPP_CONTENT_SID", ""),
	}
	c.VoiceLanguage = get("TESSERA_VOICE_LANGUAGE", deliver.DefaultVoiceLanguage)
	if err := deliver.CheckVoiceLanguage(c.VoiceLanguage); err != nil {
		bad("TESSERA_VOICE_LANGUAGE: %v", err)
	}
	fallback, err := verify.ParsePhoneFallback(get("TESSERA_PHONE_FALLBACK", ""))
	if err != nil {
		bad("TESSERA_PHONE_FALLBACK: %v", err)
	}
	c.PhoneFallback = fallback
	if v := get("TESSERA_PHONE_FALLBACK_AFTER", "off"); v != "off" && v != "0" {
		c.PhoneFallbackAfter = duration(v, "TESSERA_PHONE_FALLBACK_AFTER", bad)
	}
	c.Webhook = Webhook{URL: get("TESSERA_WEBHOOK_URL", ""), Secret: secretOf("TESSERA_WEBHOOK_SECRET")}
	c.Events = Events{URL: get("TESSERA_EVENTS_URL", ""), Secret: secretOf("TESSERA_EVENTS_SECRET")}
	if c.Events.URL != "" && c.Events.Secret == "" {
		bad("TESSERA_EVENTS_URL needs TESSERA_EVENTS_SECRET (whsec_…)")
	}
	if types := get("TESSERA_EVENTS", ""); types != "" {
		c.Events.Types = map[string]bool{}
		known := map[string]bool{}
		for _, t := range tessera.EventTypes() {
			known[t] = true
			family, _, _ := strings.Cut(t, ".")
			known[family+".*"] = true
		}
		for _, t := range strings.FieldsFunc(types, func(r rune) bool { return r == ',' || r == ' ' }) {
			if !known[t] {
				bad("TESSERA_EVENTS: %q is not an event type (see README, Events (webhooks))", t)
			}
			c.Events.Types[t] = true
		}
	}
	if v := get("TESSERA_PUBLIC_URL", ""); v != "" {
		if err := CheckPublicURL(v); err != nil {
			bad("%v", err)
		}
		c.PublicURL = strings.TrimRight(v, "/")
	}

	if after := c.PhoneFallbackAfter; after != 0 {
		switch {
		case after < verify.MinFallbackAfter*time.Second || after > verify.MaxFallbackAfter*time.Second:
			bad("TESSERA_PHONE_FALLBACK_AFTER: must be 0 or between %ds and %ds", verify.MinFallbackAfter, verify.MaxFallbackAfter)
		case c.PublicURL == "" || c.SMSSender != "twilio":
			// Without reports every message looks undelivered: each SMS
			// would be followed by a call.
			bad("TESSERA_PHONE_FALLBACK_AFTER needs delivery reports: TESSERA_SMS_SENDER=twilio and TESSERA_PUBLIC_URL")
		}
	}

	needWebhook := false
	switch c.EmailSender {
	case "log":
	case "smtp":
		if c.SMTP.Host == "" || c.SMTP.From == "" {
			bad("TESSERA_EMAIL_SENDER=smtp needs TESSERA_SMTP_HOST and TESSERA_SMTP_FROM")
		}
	case "webhook":
		needWebhook = true
	default:
		bad("TESSERA_EMAIL_SENDER: must be log, smtp or webhook, not %q", c.EmailSender)
	}
	switch c.SMSSender {
	case "log":
	case "twilio":
		if c.Twilio.AccountSID == "" || c.Twilio.AuthToken == "" || (c.Twilio.From == "" && c.Twilio.MessagingServiceSID == "") {
			bad("TESSERA_SMS_SENDER=twilio needs TESSERA_TWILIO_ACCOUNT_SID, TESSERA_TWILIO_AUTH_TOKEN and TESSERA_TWILIO_FROM or TESSERA_TWILIO_MESSAGING_SERVICE_SID")
		}
	case "webhook":
		needWebhook = true
	default:
		bad("TESSERA_SMS_SENDER: must be log, twilio or webhook, not %q", c.SMSSender)
	}
	if needWebhook && (c.Webhook.URL == "" || c.Webhook.Secret == "") {
		bad("the webhook sender needs TESSERA_WEBHOOK_URL and TESSERA_WEBHOOK_SECRET (whsec_…)")
	}
	// Checked even when no sender uses it yet: a secret in the wrong form
	// would otherwise surface only when the webhook is switched on.
	if c.Webhook.Secret != "" {
		if _, err := deliver.ParseWebhookSecret(c.Webhook.Secret); err != nil {
			bad("TESSERA_WEBHOOK_SECRET: %v; make one with: echo whsec_$(openssl rand -base64 32)", strings.TrimPrefix(err.Error(), "webhook: "))
		}
	}
}

// CheckPublicURL checks TESSERA_PUBLIC_URL: an absolute https URL (http
// only for localhost), without query or fragment, that providers can reach.
func CheckPublicURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("TESSERA_PUBLIC_URL: %q must be an absolute URL such as https://tessera.example.com, without query", v)
	}
	if h := u.Hostname(); u.Scheme == "http" && h != "localhost" && h != "127.0.0.1" && h != "::1" {
		return fmt.Errorf("TESSERA_PUBLIC_URL: %q must use https (http only for localhost)", v)
	}
	return nil
}

func positive(s, name string, bad func(string, ...any)) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		bad("%s: must be a positive whole number, not %q", name, s)
	}
	return n
}

// durationOrOff writes a duration that may be off as it is read.
func durationOrOff(d time.Duration) string {
	if d == 0 {
		return "off"
	}
	return d.String()
}

func duration(s, name string, bad func(string, ...any)) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		bad("%s: must be a positive duration such as 30s or 24h, not %q", name, s)
	}
	return d
}

// secretValue reads NAME, or the file named by NAME_FILE; setting both is
// an error.
func secretValue(getenv func(string) string, name string) (string, error) {
	v, file := strings.TrimSpace(getenv(name)), strings.TrimSpace(getenv(name+"_FILE"))
	if v != "" && file != "" {
		return "", fmt.Errorf("%s and %s_FILE are both set: set one", name, name)
	}
	if file == "" {
		return v, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Key files in the data directory, used when the variables are not set.
const (
	hmacKeyFile        = "hmac.key"
	encryptionKeysFile = "encryption.keys"
)

// loadKeys takes the keys from the environment, or else from the data
// directory, creating them there (mode 0600) on first start.
func (c *Config) loadKeys(getenv func(string) string, mode Mode) error {
	hmacText, err := secretValue(getenv, "TESSERA_HMAC_KEY")
	if err != nil {
		return err
	}
	encText, err := secretValue(getenv, "TESSERA_ENCRYPTION_KEYS")
	if err != nil {
		return err
	}
	if (hmacText == "" || encText == "") && mode == Create {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return fmt.Errorf("TESSERA_DATA_DIR: %w", err)
		}
	}
	if hmacText == "" {
		if hmacText, err = c.readOrCreate(hmacKeyFile, "h1:"+secret.NewKey()+"\n", mode); err != nil || hmacText == "" {
			return err
		}
	}
	if encText == "" {
		if encText, err = c.readOrCreate(encryptionKeysFile, "k1:"+secret.NewKey()+"\n", mode); err != nil || encText == "" {
			return err
		}
	}
	if c.HMACKeys, err = secret.ParseMACKeys(hmacText); err != nil {
		return fmt.Errorf("TESSERA_HMAC_KEY (or %s): %w; the format is id:base64key[,id:base64key…], newest first (make a key with: openssl rand -base64 32)", filepath.Join(c.DataDir, hmacKeyFile), err)
	}
	if c.EncryptionKeys, err = secret.ParseKeys(encText); err != nil {
		return fmt.Errorf("TESSERA_ENCRYPTION_KEYS (or %s): %w; the format is id:base64key[,id:base64key…], newest first", filepath.Join(c.DataDir, encryptionKeysFile), err)
	}
	return nil
}

// readOrCreate reads a key file of the data directory, writing initial to
// it first if it does not exist yet and mode is Create. In ReadOnly mode
// a missing file reads as "".
func (c *Config) readOrCreate(name, initial string, mode Mode) (string, error) {
	path := filepath.Join(c.DataDir, name)
	if mode != Create && !c.UsesPostgres() {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist) && mode == ReadOnly:
			return "", nil
		case errors.Is(err, os.ErrNotExist):
			return "", noData(c.DataDir, name)
		case err != nil:
			return "", fmt.Errorf("read %s: %w", path, err)
		}
		return string(b), nil
	}
	if c.UsesPostgres() {
		// Several instances share a PostgreSQL database: keys one of them
		// generated could not check what another created. Never generate.
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return "", errors.New("with PostgreSQL, set TESSERA_HMAC_KEY and TESSERA_ENCRYPTION_KEYS (or their _FILE variants) to the same keys on every instance; make them with: openssl rand -base64 32")
		}
		return string(b), err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, werr := f.WriteString(initial)
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
		c.KeysGenerated = true
	} else if !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return string(b), nil
}

// Setting is one effective setting, for `tessera config`.
type Setting struct {
	Name  string // the environment variable
	Value string // secrets are masked
}

// mask shows whether a secret is set without showing it.
func mask(s string) string {
	if s == "" {
		return ""
	}
	return "******** (set)"
}

// keyState describes a key: shown, or not made yet (tessera config
// creates nothing).
func keyState(present bool, shown, dataDir string) string {
	if present {
		return shown
	}
	return "(none yet: serve creates it in " + dataDir + ")"
}

// maskURL hides the password of a database URL.
func maskURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparseable URL, masked)"
}

// Settings lists the effective configuration, secrets masked.
func (c *Config) Settings() []Setting {
	ids := make([]string, len(c.EncryptionKeys))
	for i, k := range c.EncryptionKeys {
		ids[i] = k.ID
	}
	macIDs := make([]string, len(c.HMACKeys))
	for i, k := range c.HMACKeys {
		macIDs[i] = k.ID
		if k.ID == "" {
			macIDs[i] = "(none)"
		}
	}
	db := maskURL(c.DatabaseURL)
	if db == "" {
		db = "(SQLite at " + c.SQLitePath() + ")"
	}
	return append([]Setting{
		{"TESSERA_ADDR", c.Addr},
		{"TESSERA_DATA_DIR", c.DataDir},
		{"TESSERA_DATABASE_URL", db},
		{"TESSERA_SQLITE_SYNC", map[bool]string{false: "normal", true: "full"}[c.SQLiteFullSync]},
		{"TESSERA_POSTGRES_MAX_CONNS", strconv.Itoa(c.PostgresConns)},
		{"TESSERA_DB_TIMEOUT", c.DBTimeout.String()},
		{"TESSERA_MAX_IN_FLIGHT", strconv.Itoa(c.MaxInFlight)},
		{"TESSERA_HMAC_KEY", keyState(len(c.HMACKeys) > 0, "key ids "+strings.Join(macIDs, ",")+" (keys masked; the first hashes)", c.DataDir)},
		{"TESSERA_ENCRYPTION_KEYS", keyState(len(ids) > 0, "key ids "+strings.Join(ids, ",")+" (keys masked; the first encrypts)", c.DataDir)},
		{"TESSERA_LOG_FORMAT", c.LogFormat},
		{"TESSERA_LOG_LEVEL", c.LogLevel},
		{"TESSERA_SHUTDOWN_TIMEOUT", c.ShutdownTimeout.String()},
		{"TESSERA_RETENTION", c.Retention.String()},
		{"TESSERA_AUDIT_RETENTION", c.AuditRetention.String()},
		{"TESSERA_DEBUG_ADDR", c.DebugAddr},
		{"TESSERA_SERVICE_NAME", c.ServiceName},
		{"TESSERA_TOKEN_ISSUER", c.TokenIssuer},
		{"TESSERA_TOKEN_AUDIENCE", c.TokenAudience},
		{"TESSERA_ID_TOKEN_TTL", c.IDTokenTTL.String()},
		{"TESSERA_REFRESH_GRACE", c.RefreshGrace.String()},
		{"TESSERA_PRIVILEGED_MAX_AGE", c.PrivilegedMaxAge.String()},
		{"TESSERA_NEW_DEVICE_NOTICES", strconv.FormatBool(c.NewDeviceNotices)},
		{"TESSERA_WEBAUTHN_RP_ID", c.WebAuthnRPID},
		{"TESSERA_WEBAUTHN_RP_NAME", c.WebAuthnRPName},
		{"TESSERA_WEBAUTHN_ORIGINS", strings.Join(c.WebAuthnOrigins, ",")},
		{"TESSERA_ACCOUNT_PAGES", strconv.FormatBool(c.AccountPages)},
		{"TESSERA_BRAND_NAME", c.BrandName},
		{"TESSERA_BRAND_LOGO_URL", c.BrandLogoURL},
		{"TESSERA_BRAND_COLOR", c.BrandColor},
		{"TESSERA_RETURN_URLS", strings.Join(c.ReturnURLs, ",")},
		{"TESSERA_CORS_ORIGINS", strings.Join(c.CORSOrigins, ",")},
		{"TESSERA_DEV_INBOX", map[bool]string{false: "0", true: "1"}[c.DevInbox]},
		{"TESSERA_EMAIL_SENDER", c.EmailSender},
		{"TESSERA_SMS_SENDER", c.SMSSender},
		{"TESSERA_SMTP_HOST", c.SMTP.Host},
		{"TESSERA_SMTP_PORT", strconv.Itoa(c.SMTP.Port)},
		{"TESSERA_SMTP_TLS", c.SMTP.TLS},
		{"TESSERA_SMTP_USERNAME", c.SMTP.Username},
		{"TESSERA_SMTP_PASSWORD", mask(c.SMTP.Password)},
		{"TESSERA_SMTP_FROM", c.SMTP.From},
		{"TESSERA_TWILIO_ACCOUNT_SID", c.Twilio.AccountSID},
		{"TESSERA_TWILIO_AUTH_TOKEN", mask(c.Twilio.AuthToken)},
		{"TESSERA_TWILIO_FROM", c.Twilio.From},
		{"TESSERA_TWILIO_MESSAGING_SERVICE_SID", c.Twilio.MessagingServiceSID},
		{"TESSERA_TWILIO_BASE_URL", c.Twilio.BaseURL},
		{"TESSERA_TWILIO_WHATSAPP_FROM", c.Twilio.WhatsAppFrom},
		{"TESSERA_TWILIO_WHATSAPP_CONTENT_SID", c.Twilio.WhatsAppContentSID},
		{"TESSERA_VOICE_LANGUAGE", c.VoiceLanguage},
		{"TESSERA_PHONE_FALLBACK", verify.FormatPhoneFallback(c.PhoneFallback)},
		{"TESSERA_PHONE_FALLBACK_AFTER", durationOrOff(c.PhoneFallbackAfter)},
		{"TESSERA_PUBLIC_URL", c.PublicURL},
		{"TESSERA_WEBHOOK_URL", c.Webhook.URL},
		{"TESSERA_WEBHOOK_SECRET", mask(c.Webhook.Secret)},
		{"TESSERA_EVENTS_URL", c.Events.URL},
		{"TESSERA_EVENTS_SECRET", mask(c.Events.Secret)},
		{"TESSERA_EVENTS", eventTypes(c.Events.Types)},
		{"TESSERA_OUTBOX_LEASE", c.OutboxLease.String()},
		{"TESSERA_OUTBOX_MAX_ATTEMPTS", strconv.Itoa(c.OutboxMaxAttempts)},
		{"TESSERA_RESEND_COOLDOWN", c.ResendCooldown.String()},
		{"TESSERA_REDIS_URL", maskURL(c.RedisURL)},
		{"TESSERA_REDIS_PREFIX", c.RedisPrefix},
		{"TESSERA_TRUSTED_PROXIES", prefixes(c.TrustedProxies)},
		{"TESSERA_LIMIT_IP", c.LimitIP.String()},
		{"TESSERA_LIMIT_CLIENT", c.LimitClient.String()},
		{"TESSERA_LIMIT_DESTINATION_HOURLY", c.LimitDestHour.String()},
		{"TESSERA_LIMIT_DESTINATION_DAILY", c.LimitDestDay.String()},
		{"TESSERA_LIMIT_SMS_COUNTRY", c.LimitSMSCountry.String()},
		{"TESSERA_SMS_ALLOWED_COUNTRIES", countries(c.SMSCountries)},
		{"TESSERA_SMS_NUMBER_TYPES", verify.FormatNumberTypes(c.SMSNumberTypes)},
		{"TESSERA_SMS_BREAKER", formatBreaker(c.SMSBreaker)},
	}, c.tokenSettings()...)
}

func prefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

func countries(m map[string]bool) string {
	if len(m) == 0 {
		return "(all)"
	}
	out := make([]string, 0, len(m))
	for c := range m {
		out = append(out, c)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// loadWebAuthn reads the passkey settings. The defaults fit `serve` on
// this machine: the RP ID localhost and the origin http://localhost:PORT
// of TESSERA_ADDR (browsers treat localhost as a secure context).
func (c *Config) loadWebAuthn(get func(name, def string) string, bad func(string, ...any)) {
	c.WebAuthnRPID = strings.ToLower(get("TESSERA_WEBAUTHN_RP_ID", "localhost"))
	c.WebAuthnRPName = get("TESSERA_WEBAUTHN_RP_NAME", c.ServiceName)
	port := "8080"
	if _, p, err := net.SplitHostPort(c.Addr); err == nil {
		port = p
	}
	for _, o := range strings.Split(get("TESSERA_WEBAUTHN_ORIGINS", "http://localhost:"+port), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.WebAuthnOrigins = append(c.WebAuthnOrigins, o)
		}
	}
	if err := CheckWebAuthn(c.WebAuthnRPID, c.WebAuthnOrigins); err != nil {
		bad("%v", err)
	}
}

var brandColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// loadPages reads the settings of the hosted account pages.
func (c *Config) loadPages(get func(name, def string) string, bad func(string, ...any)) {
	on, err := strconv.ParseBool(get("TESSERA_ACCOUNT_PAGES", "true"))
	if err != nil {
		bad("TESSERA_ACCOUNT_PAGES: must be true or false (1 or 0)")
	}
	c.AccountPages = on
	c.BrandName = get("TESSERA_BRAND_NAME", c.ServiceName)
	if c.BrandColor = get("TESSERA_BRAND_COLOR", "#1f5fbf"); !brandColor.MatchString(c.BrandColor) {
		bad("TESSERA_BRAND_COLOR: must be a colour as #rrggbb, such as #1f5fbf, not %q", c.BrandColor)
	}
	if c.BrandLogoURL = get("TESSERA_BRAND_LOGO_URL", ""); c.BrandLogoURL != "" {
		u, err := url.Parse(c.BrandLogoURL)
		local := err == nil && u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(u.Path, "//")
		if !local && (err != nil || u.Scheme != "https" || u.Host == "") {
			bad("TESSERA_BRAND_LOGO_URL: must be an https URL or a path on this host, not %q", c.BrandLogoURL)
		}
	}
	for _, v := range strings.Split(get("TESSERA_RETURN_URLS", ""), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if err := CheckReturnURL(v); err != nil {
			bad("%v", err)
		}
		c.ReturnURLs = append(c.ReturnURLs, v)
	}
}

// CheckReturnURL checks an entry of TESSERA_RETURN_URLS: an absolute URL
// (https, or http for localhost) with no query or fragment, whose origin
// and path are the prefix a return URL must start with.
func CheckReturnURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("TESSERA_RETURN_URLS: %q is not a URL such as https://app.example.com/auth/callback (no query, no fragment)", v)
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme != "https" && !(u.Scheme == "http" && (host == "localhost" || host == "127.0.0.1")) {
		return fmt.Errorf("TESSERA_RETURN_URLS: %q must use https (http only for localhost)", v)
	}
	return nil
}

// CheckWebAuthn validates a relying party id and its origins as browsers
// will: the RP ID is a bare domain; each origin is scheme://host[:port],
// https unless the host is localhost, and its host is the RP ID or one of
// its subdomains.
func CheckWebAuthn(rpID string, origins []string) error {
	if rpID == "" || strings.ContainsAny(rpID, ":/ ") || net.ParseIP(rpID) != nil {
		return fmt.Errorf("TESSERA_WEBAUTHN_RP_ID: must be a domain such as example.com (no scheme, port or IP address), not %q", rpID)
	}
	if len(origins) == 0 {
		return errors.New("TESSERA_WEBAUTHN_ORIGINS: name at least one origin, such as https://login." + rpID)
	}
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("TESSERA_WEBAUTHN_ORIGINS: %q is not an origin such as https://login.%s", o, rpID)
		}
		host := strings.ToLower(u.Hostname())
		if host != rpID && !strings.HasSuffix(host, "."+rpID) {
			return fmt.Errorf("TESSERA_WEBAUTHN_ORIGINS: %q is not on %s (TESSERA_WEBAUTHN_RP_ID) or one of its subdomains", o, rpID)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && host == "localhost") {
			return fmt.Errorf("TESSERA_WEBAUTHN_ORIGINS: %q must use https (http only for localhost)", o)
		}
	}
	return nil
}

func eventTypes(m map[string]bool) string {
	if len(m) == 0 {
		return "(all)"
	}
	out := make([]string, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
