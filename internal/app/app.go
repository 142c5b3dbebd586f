// Package app wires Tessera's parts together: store, keys, engine, outbox
// worker and HTTP server. The tessera command and the end-to-end tests
// build the service the same way, through New.
package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/apiclient"
	"github.com/tessera-id/tessera/internal/config"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/httpapi"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/verify"
)

// Options are what New needs; zero fields get defaults.
type Options struct {
	Store   tessera.Store
	Keys    *secret.Keyring
	Senders map[tessera.Channel]tessera.Sender
	Log     *slog.Logger
	Now     func() time.Time
	// Retention is how long expired and used rows are kept before the
	// janitor deletes them.
	Retention time.Duration
	// OutboxLease and OutboxMaxAttempts tune the outbox worker, and
	// ResendCooldown the resend endpoint; zero means the defaults.
	OutboxLease       time.Duration
	OutboxMaxAttempts int
	ResendCooldown    time.Duration
}

// App is a wired Tessera service.
type App struct {
	Store   tessera.Store
	Keys    *secret.Keyring
	Engine  *verify.Engine
	Worker  *deliver.Worker
	Clients *apiclient.Registry
	HTTP    *httpapi.Server
	Log     *slog.Logger

	retention time.Duration
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
	a := &App{Store: o.Store, Keys: o.Keys, Log: o.Log, retention: o.Retention}
	a.Worker = deliver.NewWorker(o.Store, o.Keys, o.Senders, o.Log)
	a.Worker.Now = o.Now
	if o.OutboxLease > 0 {
		a.Worker.Lease = o.OutboxLease
	}
	if o.OutboxMaxAttempts > 0 {
		a.Worker.MaxAttempts = o.OutboxMaxAttempts
	}
	a.Engine = &verify.Engine{
		Store: o.Store, Keys: o.Keys, Now: o.Now, Log: o.Log,
		Deliver: a.Worker.Enqueue, DeliveryLease: a.Worker.Lease, ResendCooldown: o.ResendCooldown,
	}
	a.Clients = &apiclient.Registry{Store: o.Store, Keys: o.Keys, Now: o.Now}
	a.HTTP = httpapi.New(a.Engine, a.Clients, o.Store, o.Log)
	return a
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
		n, err := a.Store.DeleteStale(ctx, a.Worker.Now().Add(-a.retention))
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

// OpenStore opens the store the configuration names.
func OpenStore(ctx context.Context, cfg *config.Config) (*sqlstore.DB, error) {
	if cfg.UsesPostgres() {
		return sqlstore.OpenPostgres(ctx, cfg.DatabaseURL, cfg.PostgresConns)
	}
	return sqlstore.OpenSQLite(ctx, cfg.SQLitePath(), cfg.SQLiteFullSync)
}

// Keyring builds the keyring from the configured keys.
func Keyring(cfg *config.Config) (*secret.Keyring, error) {
	return secret.NewKeyring(cfg.HMACKey, cfg.EncryptionKeys, nil)
}
