package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/tessera-id/tessera"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/config"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/loadtest"
	"github.com/tessera-id/tessera/internal/password"
	"github.com/tessera-id/tessera/internal/ratelimit"
	"github.com/tessera-id/tessera/internal/verify"
	"github.com/tessera-id/tessera/internal/web"
)

// serve runs the service until ctx ends (SIGINT or SIGTERM), then drains
// requests in flight, stops the outbox worker and closes the database.
func serve(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(cfg, stderr)
	for _, w := range cfg.UnknownVariables(environ(), loadtest.TokenEnv) {
		log.Warn(w)
	}
	// Garbage collection and the soft memory limit (set below, once the
	// password hasher's bound is known) agree with the number of password
	// hashes allowed at once: see password.GCPercent and
	// password.Hasher.MemoryLimit. GOGC and GOMEMLIMIT, when set, win.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(password.GCPercent)
	}
	store, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	keys, err := app.Keyring(cfg)
	if err != nil {
		return err
	}
	// Channels without a configured provider use the log sender, which
	// writes each message to standard error.
	senders, err := app.Senders(cfg, stderr, store)
	if err != nil {
		return err
	}
	// The development inbox shows what the log sender delivers (the
	// configuration allows it on loopback with SQLite, or when asked for).
	var devInbox *deliver.Inbox
	if cfg.DevInbox {
		devInbox = deliver.NewInbox(deliver.DefaultInboxSize, nil)
		devInbox.Anywhere = cfg.DevInboxAnywhere
	}
	// Limits live in Redis when several instances must share them.
	var limiter ratelimit.Limiter
	if cfg.RedisURL != "" {
		r, client, err := ratelimit.NewRedis(ctx, cfg.RedisURL, cfg.RedisPrefix, keys.MAC)
		if err != nil {
			return fmt.Errorf("TESSERA_REDIS_URL: %w", err)
		}
		defer client.Close()
		limiter = r
		if cfg.SMSBreaker != nil {
			// Every instance judges all the traffic, and a prefix open on
			// one is open on all.
			cfg.SMSBreaker.Store = &verify.RedisBreakerStore{Client: client, Prefix: cfg.RedisPrefix}
		}
	}
	a := app.New(app.Options{
		Limiter: limiter, TrustedProxies: cfg.TrustedProxies,
		Limits: app.Limits{IP: cfg.LimitIP, Client: cfg.LimitClient, DestinationHour: cfg.LimitDestHour, DestinationDay: cfg.LimitDestDay,
			SMSCountry: cfg.LimitSMSCountry, SMSCountries: cfg.SMSCountries, SMSNumberTypes: cfg.SMSNumberTypes, SMSBreaker: cfg.SMSBreaker},
		Store: store, Keys: keys, Log: log, Senders: senders, Retention: cfg.Retention, AuditRetention: cfg.AuditRetention,
		SenderNames: senderNames(cfg), PhoneFallback: cfg.PhoneFallback, PhoneFallbackAfter: cfg.PhoneFallbackAfter,
		EventTypes:  cfg.Events.Types,
		OutboxLease: cfg.OutboxLease, OutboxMaxAttempts: cfg.OutboxMaxAttempts, ResendCooldown: cfg.ResendCooldown, DBTimeout: cfg.DBTimeout, MaxInFlight: cfg.MaxInFlight,
		ServiceName: cfg.ServiceName, TokenIssuer: cfg.TokenIssuer, TokenAudience: cfg.TokenAudience, IDTokenTTL: cfg.IDTokenTTL,
		IDTokenClaims: cfg.IDTokenClaims, IDTokenAlg: cfg.IDTokenAlg, KeyPublishAhead: cfg.KeyPublishAhead, KeyRotation: cfg.KeyRotation,
		RefreshGrace: cfg.RefreshGrace, PrivilegedMaxAge: cfg.PrivilegedMaxAge, NoNewDeviceNotices: !cfg.NewDeviceNotices,
		WebAuthnRPID: cfg.WebAuthnRPID, WebAuthnRPName: cfg.WebAuthnRPName, WebAuthnOrigins: cfg.WebAuthnOrigins,
		PublicURL: cfg.PublicURL, TwilioAuthToken: cfg.Twilio.AuthToken,
		NoAccountPages: !cfg.AccountPages, ReturnURLs: cfg.ReturnURLs,
		Brand:       web.Brand{Name: cfg.BrandName, LogoURL: cfg.BrandLogoURL, Color: cfg.BrandColor},
		CORSOrigins: cfg.CORSOrigins, DevInbox: devInbox,
	})
	// A tighter limit would make every login hand its hash's memory back
	// to the OS and fault it in again.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(a.Accounts.Passwords.MemoryLimit())
	}
	if err := a.Start(ctx); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("TESSERA_ADDR %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           a.HTTP,
		ReadHeaderTimeout: 5 * time.Second, // no slow-loris: headers must arrive promptly
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, log)
	}
	if err := printWelcome(ctx, stdout, cfg, a, "http://"+ln.Addr().String(), getenv); err != nil {
		ln.Close()
		return err
	}
	// The worker and janitor outlive ctx a little: they stop after the
	// last request has drained, so nothing a request queued is left behind.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	waitBackground := a.RunBackground(bgCtx)
	log.Info("tessera listening", "addr", ln.Addr().String(), "database", store.Dialect())

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		stopBackground()
		waitBackground()
		return err
	case <-ctx.Done():
	}

	log.Info("shutting down: draining requests", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	a.Accounts.Drain() // sends started after their request was answered
	stopBackground()
	waitBackground()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// serveDebug serves the pprof profiles on their own listener, so they are
// never reachable through the public address.
func serveDebug(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Error("pprof listener", "err", err)
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// rerun is the command line that runs this Tessera's commands from the
// shell that started it: the same program, and the same data directory
// when it was chosen by TESSERA_DATA_DIR (PostgreSQL needs the same
// TESSERA_* variables, which the shell has).
func rerun(cfg *config.Config, getenv func(string) string) string {
	cmd := selfCommand()
	if getenv("TESSERA_DATA_DIR") != "" && !cfg.UsesPostgres() {
		dir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			dir = cfg.DataDir
		}
		cmd = "TESSERA_DATA_DIR=" + shellQuote(dir) + " " + cmd
	}
	return cmd
}

// passkeyOrigin is where a browser must open Tessera's pages for passkeys
// to work: the first WebAuthn origin.
func passkeyOrigin(cfg *config.Config) string {
	if len(cfg.WebAuthnOrigins) > 0 {
		return cfg.WebAuthnOrigins[0]
	}
	return "http://localhost:8080"
}

// printWelcome tells a newcomer how to make a first call. On a brand-new
// SQLite database it also creates a first API client, so the very first
// start is enough to try the API; the token is shown this once only.
func printWelcome(ctx context.Context, w io.Writer, cfg *config.Config, a *app.App, baseURL string, getenv func(string) string) error {
	fmt.Fprintf(w, "Tessera is listening on %s\n", baseURL)
	if cfg.UsesPostgres() {
		fmt.Fprintln(w, "Database: PostgreSQL")
	} else {
		fmt.Fprintf(w, "Database: SQLite at %s\n", cfg.SQLitePath())
	}
	if cfg.KeysGenerated {
		fmt.Fprintf(w, "Generated server keys in %s (mode 0600). Several instances must share them: see README.\n", cfg.DataDir)
	}
	if cfg.DevInbox {
		fmt.Fprintf(w, "Development inbox: %s/dev/inbox shows the messages the log sender delivered, with their codes\n", baseURL)
	}
	token := "$TOKEN"
	clients, err := a.Store.Clients(ctx)
	if err != nil {
		return err
	}
	if len(clients) == 0 && !cfg.UsesPostgres() {
		_, t, err := a.Clients.Create(ctx, "quickstart")
		if err != nil {
			return err
		}
		token = t
		fmt.Fprintf(w, "\nCreated a first API client, \"quickstart\". Its token (shown only now):\n\n  %s\n", token)
	} else {
		fmt.Fprintf(w, "\nCreate an API client and keep its token (printed last) in TOKEN:\n\n  TOKEN=$(%s client create my-app-$(date +%%s) | tail -n 1)\n", rerun(cfg, getenv))
	}
	fmt.Fprintf(w, `
Send a code by email (it appears on standard error, from the log sender)
and keep the verification's id:

  ID=$(curl -s %[1]s/methods/email/actions/initiate \
    -H "Authorization: Bearer %[2]s" -H 'Content-Type: application/json' \
    -d '{"consumer":"you@example.com","issuer":"Acme"}' | tee /dev/stderr | sed -E 's/.*"verificationId":"([^"]*)".*/\1/')

Then validate it with the code from the message (the first line waits for
you to type it):

  printf 'Code: '; read -r CODE
  curl -s %[1]s/methods/email/verifiers/$ID/actions/validate \
    -H "Authorization: Bearer %[2]s" -H 'Content-Type: application/json' \
    -d "{\"code\":\"$CODE\"}"

End users (registration, logins, MFA, account security) use the accounts
API under /auth and /api/v1: see the README, and %[1]s/docs.
Try passkeys in a browser: %[3]s/ui/passkeys

`, baseURL, token, passkeyOrigin(cfg))
	if cfg.AccountPages {
		fmt.Fprintf(w, "Sign up, sign in and manage the account in a browser: %s/account/\n\n", passkeyOrigin(cfg))
	}
	return nil
}

// senderNames names each channel's sender, for metrics.
func senderNames(cfg *config.Config) map[tessera.Channel]string {
	names := map[tessera.Channel]string{tessera.ChannelEmail: cfg.EmailSender, tessera.ChannelEvents: "webhook"}
	for _, ch := range app.PhoneChannels(cfg) {
		names[ch] = cfg.SMSSender
	}
	return names
}
