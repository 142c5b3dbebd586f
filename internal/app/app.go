// Package app wires Tessera's parts together: store, keys, engine, outbox
// worker and HTTP server. The tessera command and the end-to-end tests
// build the service the same way, through New.
package app

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/account"
	"github.com/tessera-id/tessera/internal/apiclient"
	"github.com/tessera-id/tessera/internal/config"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/httpapi"
	"github.com/tessera-id/tessera/internal/metrics"
	"github.com/tessera-id/tessera/internal/password"
	"github.com/tessera-id/tessera/internal/ratelimit"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/token"
	"github.com/tessera-id/tessera/internal/verify"
	"github.com/tessera-id/tessera/internal/web"
)

// Storage is what the service keeps its state in: *sqlstore.DB.
type Storage interface {
	tessera.Store
	tessera.AccountStore
	tessera.IdempotencyStore
	// Ready reports whether the database answers and is migrated.
	Ready(ctx context.Context) error
	// OutboxDepth counts the messages waiting to be sent.
	OutboxDepth(ctx context.Context) (int, error)
	// Pools names the connection pools, for metrics.
	Pools() map[string]*sql.DB
}

// Options are what New needs; zero fields get defaults.
type Options struct {
	Store   Storage
	Keys    *secret.Keyring
	Senders map[tessera.Channel]tessera.Sender
	Log     *slog.Logger
	Now     func() time.Time
	// Retention is how long expired and used rows are kept before the
	// janitor deletes them; AuditRetention, audit events (default 90 days).
	Retention      time.Duration
	AuditRetention time.Duration
	// OutboxLease and OutboxMaxAttempts tune the outbox worker, and
	// ResendCooldown the resend endpoint; zero means the defaults.
	OutboxLease       time.Duration
	OutboxMaxAttempts int
	ResendCooldown    time.Duration
	// DBTimeout bounds each request's work; when it runs out the request
	// answers 503 unavailable (httpapi.Options.DBTimeout). Zero: no bound.
	DBTimeout time.Duration
	// MaxInFlight bounds the requests served at once; as many more wait
	// up to QueueWait for a place, the rest get a fast 503
	// (httpapi.Options.MaxInFlight, QueueWait). Zero: no bound.
	MaxInFlight int
	QueueWait   time.Duration

	// SenderNames names each channel's sender, for metrics.
	SenderNames map[tessera.Channel]string

	// Accounts: the name users see, the ID token's issuer and audience and
	// lifetime, and the password hashing cost.
	ServiceName   string
	TokenIssuer   string
	TokenAudience string
	IDTokenTTL    time.Duration
	RefreshGrace  time.Duration
	// IDTokenClaims are the optional claims of ID tokens (nil:
	// token.DefaultClaims); IDTokenAlg the algorithm of new signing keys
	// (empty: EdDSA); KeyPublishAhead how long a new key is published
	// before it signs (zero: token.DefaultPublishAhead); KeyRotation how
	// often keys rotate without being asked (zero: never).
	IDTokenClaims   map[string]bool
	IDTokenAlg      string
	KeyPublishAhead time.Duration
	KeyRotation     time.Duration
	// PrivilegedMaxAge bounds how old a session's proof may be for
	// privileged actions (policy.DefaultPrivilegedMaxAge when zero);
	// NoNewDeviceNotices turns off the email about logins from new
	// devices.
	PrivilegedMaxAge   time.Duration
	NoNewDeviceNotices bool
	// WebAuthnRPID, WebAuthnRPName and WebAuthnOrigins configure passkeys
	// (config.CheckWebAuthn says what is valid); empty: the RP ID
	// localhost and the origin http://localhost:8080.
	WebAuthnRPID, WebAuthnRPName string
	WebAuthnOrigins              []string
	PasswordParams               password.Params
	PasswordWorkers              int // hashes at once; password.DefaultConcurrency when 0

	// Limiter counts the limits (in memory on Now when nil); zero limits
	// get the defaults, ratelimit.Disabled switches one off.
	Limiter        ratelimit.Limiter
	Limits         Limits
	TrustedProxies []netip.Prefix

	// EventTypes selects the operator events sent (config.Events.Types;
	// empty: all). Events are on when Senders has a sender for
	// tessera.ChannelEvents, and off otherwise: none is even written.
	EventTypes map[string]bool

	// PhoneFallback is the order phone channels are tried in when a
	// request names none (verify.Engine.PhoneFallback).
	PhoneFallback []tessera.Channel
	// PhoneFallbackAfter is how long a phone message waits for a delivery
	// report before the next channel is tried (verify.Engine.FallbackAfter).
	PhoneFallbackAfter time.Duration

	// PublicURL and TwilioAuthToken accept Twilio's status callbacks
	// (POST /webhooks/twilio/status); without both the route is 404.
	PublicURL       string
	TwilioAuthToken string

	// NoAccountPages turns the hosted account pages off; Brand is what
	// they show (the service name and a blue by default), ReturnURLs
	// where a login on them may return to.
	NoAccountPages bool
	Brand          web.Brand
	ReturnURLs     []string
	// CORSOrigins are the origins whose browser scripts may call the
	// accounts API (httpapi.Options.CORSOrigins); empty: CORS off.
	CORSOrigins []string
	// DevInbox, when set, records what the log senders deliver and is
	// shown at GET /dev/inbox; nil: no inbox.
	DevInbox *deliver.Inbox
}

// Limits are the rate limits of the service.
type Limits struct {
	IP, Client, DestinationHour, DestinationDay, SMSCountry ratelimit.Limit
	SMSCountries                                            map[string]bool
	// SMSNumberTypes: nil means verify.DefaultSMSNumberTypes.
	SMSNumberTypes map[string]bool
	// SMSBreaker is the SMS pumping breaker (nil: none); its OnTrip is
	// set to log and count each trip.
	SMSBreaker *verify.Breaker
}

// withDefaults fills the limits not set.
func (l Limits) withDefaults() Limits {
	def := func(v *ratelimit.Limit, spec string) {
		if *v == (ratelimit.Limit{}) {
			*v, _ = ratelimit.Parse(spec)
		}
	}
	def(&l.IP, config.DefaultLimitIP)
	def(&l.Client, config.DefaultLimitClient)
	def(&l.DestinationHour, "10/h")
	def(&l.DestinationDay, "50/d")
	def(&l.SMSCountry, "300/h")
	return l
}

// App is a wired Tessera service.
type App struct {
	Store    Storage
	Keys     *secret.Keyring
	Engine   *verify.Engine
	Worker   *deliver.Worker
	Clients  *apiclient.Registry
	Accounts *account.Service
	Tokens   *token.Signer
	HTTP     *httpapi.Server
	Metrics  *metrics.Metrics
	Log      *slog.Logger

	retention, auditRetention time.Duration
}

// New wires the service.
func New(o Options) *App {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	a := &App{Store: o.Store, Keys: o.Keys, Log: o.Log, retention: o.Retention, auditRetention: orDuration(o.AuditRetention, 90*24*time.Hour)}
	if o.DevInbox != nil {
		o.Senders = withInbox(o.Senders, o.DevInbox)
	}
	a.Worker = deliver.NewWorker(o.Store, o.Keys, o.Senders, o.Log)
	a.Worker.Now = o.Now
	if o.OutboxLease > 0 {
		a.Worker.Lease = o.OutboxLease
	}
	if o.OutboxMaxAttempts > 0 {
		a.Worker.MaxAttempts = o.OutboxMaxAttempts
	}
	if o.Limiter == nil {
		o.Limiter = ratelimit.NewMemory(o.Now)
	}
	limits := o.Limits.withDefaults()
	a.Engine = &verify.Engine{
		Policies: &verify.PolicyCache{},
		Limiter:  o.Limiter,
		Limits: verify.SendLimits{
			PerDestinationHour: limits.DestinationHour, PerDestinationDay: limits.DestinationDay,
			PerCountry: limits.SMSCountry, SMSCountries: limits.SMSCountries,
			SMSNumberTypes: limits.SMSNumberTypes,
		},
		Breaker: limits.SMSBreaker,
		Store:   o.Store, Keys: o.Keys, Now: o.Now, Log: o.Log,
		Channels: channelsOf(o.Senders), PhoneFallback: o.PhoneFallback,
		FallbackAfter: o.PhoneFallbackAfter, DeliveryReports: o.PublicURL != "" && o.TwilioAuthToken != "",
		Deliver: a.Worker.Enqueue, Reserve: a.Worker.Reserve, Unreserve: a.Worker.Unreserve, DeliveryLease: a.Worker.Lease, ResendCooldown: o.ResendCooldown,
	}
	if a.Engine.DeliveryReports {
		// Without reports no message is put on a fallback timer.
		a.Worker.FallBackOverdue = a.Engine.FallBackOverdue
	}
	if _, on := o.Senders[tessera.ChannelEvents]; on {
		a.Engine.Events = &verify.Events{Keys: o.Keys, Now: o.Now, Types: o.EventTypes}
		a.Worker.Events = a.Engine.Events
	}
	a.Clients = &apiclient.Registry{Store: o.Store, Keys: o.Keys, Now: o.Now, PolicyChanged: a.Engine.ForgetSendingPolicy}
	a.Tokens = &token.Signer{
		Store: o.Store, Keys: o.Keys, Now: o.Now,
		Issuer: or(o.TokenIssuer, "tessera"), Audience: or(o.TokenAudience, "tessera"), TTL: orDuration(o.IDTokenTTL, 15*time.Minute),
		Claims: o.IDTokenClaims, Algorithm: o.IDTokenAlg, PublishAhead: o.KeyPublishAhead, RotateEvery: o.KeyRotation,
	}
	if o.PasswordParams == (password.Params{}) {
		o.PasswordParams = password.OWASP
	}
	a.Accounts = &account.Service{
		Store: o.Store, Engine: a.Engine, Tokens: a.Tokens, Keys: o.Keys, Now: o.Now,
		Passwords:   password.NewHasher(o.PasswordParams, o.PasswordWorkers),
		ServiceName: or(o.ServiceName, "Tessera"), Log: o.Log,
		SessionTTL: account.DefaultSessionTTL, RefreshGrace: orDuration(o.RefreshGrace, account.DefaultRefreshGrace), CodeTTL: account.DefaultCodeTTL,
		PrivilegedMaxAge: o.PrivilegedMaxAge, NewDeviceNotices: !o.NoNewDeviceNotices,
	}
	rp, err := webauthn.New(&webauthn.Config{
		RPID: or(o.WebAuthnRPID, "localhost"), RPDisplayName: or(o.WebAuthnRPName, or(o.ServiceName, "Tessera")),
		RPOrigins: orStrings(o.WebAuthnOrigins, []string{"http://localhost:8080"}),
	})
	if err != nil {
		// The configuration was checked at start (config.CheckWebAuthn);
		// here only a test's own options can be wrong.
		panic(fmt.Sprintf("webauthn: %v", err))
	}
	a.Accounts.WebAuthn = rp
	a.Metrics = metrics.New()
	a.Engine.Observe = func(m tessera.Method, result string) { a.Metrics.ObserveVerification(string(m), result) }
	a.Engine.ObserveConversion = a.Metrics.ObserveConversion
	if b := a.Engine.Breaker; b != nil {
		b.OnChange = a.breakerChanged
	}
	a.Worker.SenderNames = o.SenderNames
	a.Worker.Observe = func(ch tessera.Channel, sender, result string) { a.Metrics.ObserveDelivery(string(ch), sender, result) }
	a.Accounts.Observe = a.Metrics.ObserveLogin
	a.Metrics.WatchOutbox(o.Store.OutboxDepth)
	for name, pool := range o.Store.Pools() {
		a.Metrics.WatchDB(name, pool)
	}
	a.HTTP = httpapi.New(httpapi.Options{
		Engine: a.Engine, Clients: a.Clients, Accounts: a.Accounts, Store: o.Store, Log: o.Log,
		Ready: o.Store.Ready, Metrics: a.Metrics.Handler(), Observe: a.Metrics.ObserveRequest,
		Limiter: o.Limiter, LimitIP: limits.IP, LimitClient: limits.Client, TrustedProxies: o.TrustedProxies,
		Idempotency: o.Store, Keys: o.Keys, Now: o.Now,
		DBTimeout: o.DBTimeout, MaxInFlight: o.MaxInFlight, QueueWait: o.QueueWait,
		NoAccountPages: o.NoAccountPages, Brand: o.Brand, ReturnURLs: o.ReturnURLs,
		PublicURL: o.PublicURL, TwilioAuthToken: o.TwilioAuthToken, ObserveDeliveryReport: a.Metrics.ObserveDeliveryReport,
		CORSOrigins: o.CORSOrigins, Inbox: o.DevInbox,
	})
	return a
}

// withInbox has inbox record what each log sender delivers: the only
// messages a development inbox may show.
func withInbox(senders map[tessera.Channel]tessera.Sender, inbox *deliver.Inbox) map[tessera.Channel]tessera.Sender {
	out := make(map[tessera.Channel]tessera.Sender, len(senders))
	for ch, s := range senders {
		if _, isLog := s.(*deliver.LogSender); isLog {
			s = inbox.Wrap(s)
		}
		out[ch] = s
	}
	return out
}

// channelsOf is the set of channels with a sender.
func channelsOf(senders map[tessera.Channel]tessera.Sender) map[tessera.Channel]bool {
	out := map[tessera.Channel]bool{}
	for ch := range senders {
		out[ch] = true
	}
	return out
}

// breakerChanged logs, counts and audits a change of the SMS pumping
// breaker.
func (a *App) breakerChanged(c verify.BreakerChange) {
	country, _, _ := strings.Cut(c.Prefix, " ")
	a.Metrics.ObserveBreakerChange(c.State, c.Level())
	log := a.Log.Info
	switch c.State {
	case verify.BreakerOpen:
		a.Metrics.ObserveBreakerTrip(country, c.Level())
		log = a.Log.Warn
	}
	log("sms pumping breaker: "+c.State, "prefix", c.Prefix, "level", c.Level(), "sends", c.Sends, "validated", c.Validated,
		"conversion", c.Conversion, "until", c.Until)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Store.AppendAudit(ctx, c.AuditEvent()); err != nil {
		a.Log.Error("audit: sms breaker event not recorded", "prefix", c.Prefix, "state", c.State, "err", err)
	}
}

func orStrings(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return v
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Start prepares what the service needs before it takes requests: a first
// ID-token signing key, or the next one when the configured algorithm or
// rotation period asks for it.
func (a *App) Start(ctx context.Context) error {
	return a.MaintainKeys(ctx)
}

// MaintainKeys runs the signing keys' life cycle (token.Signer.Maintain)
// and logs what it did; the janitor runs it every few minutes.
func (a *App) MaintainKeys(ctx context.Context) error {
	did, err := a.Tokens.Maintain(ctx)
	for _, d := range did {
		a.Log.Info("signing keys: " + d)
	}
	return err
}

// RunBackground starts the outbox worker and the janitor; they stop when
// ctx ends, and the returned func waits for that.
func (a *App) RunBackground(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Worker.Run(ctx) }()
	go func() { defer wg.Done(); a.runJanitor(ctx) }()
	return wg.Wait
}

// runJanitor deletes stale rows every few minutes so tables do not grow
// forever. Several instances may run it at once: deleting is idempotent.
func (a *App) runJanitor(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		if err := a.MaintainKeys(ctx); err != nil && ctx.Err() == nil {
			a.Log.Error("janitor: signing keys", "err", err)
		}
		n, err := a.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			a.Log.Error("janitor", "err", err)
		} else if n > 0 {
			a.Log.Info("janitor: deleted stale rows", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep is one pass of the janitor: it deletes the rows older than the
// retention that nobody can use any more, and audit events older than the
// audit retention, returning how many rows went.
func (a *App) Sweep(ctx context.Context) (int64, error) {
	n, err := a.Store.DeleteStale(ctx, a.Worker.Now().Add(-a.retention))
	if err != nil {
		return n, err
	}
	pruned, err := a.Store.PruneAudit(ctx, a.Worker.Now().Add(-a.auditRetention))
	return n + pruned, err
}

// OpenStore opens the store the configuration names.
func OpenStore(ctx context.Context, cfg *config.Config) (*sqlstore.DB, error) {
	if cfg.UsesPostgres() {
		return sqlstore.OpenPostgresTimeout(ctx, cfg.DatabaseURL, cfg.PostgresConns, cfg.DBTimeout)
	}
	return sqlstore.OpenSQLite(ctx, cfg.SQLitePath(), cfg.SQLiteFullSync)
}

// Keyring builds the keyring from the configured keys.
func Keyring(cfg *config.Config) (*secret.Keyring, error) {
	return secret.New(cfg.HMACKeys, cfg.EncryptionKeys, nil)
}
