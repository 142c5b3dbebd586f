package sqlstore

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" driver
)

// migrationLock serialises migrations of instances that start together.
// The number is arbitrary but fixed: "tessera" in ASCII, as an integer.
const migrationLock = `SELECT pg_advisory_xact_lock(32762643830108769)`

// DefaultTimeout is the connect and statement timeout of OpenPostgres.
const DefaultTimeout = 5 * time.Second

// OpenPostgres connects to PostgreSQL with a pgx DSN
// ("postgres://user@host:5432/db?sslmode=disable") and applies migrations,
// with DefaultTimeout as connect and statement timeout.
func OpenPostgres(ctx context.Context, dsn string, maxConns int) (*DB, error) {
	return OpenPostgresTimeout(ctx, dsn, maxConns, DefaultTimeout)
}

// OpenPostgresTimeout is OpenPostgres with the timeout of the database
// work of one request (TESSERA_DB_TIMEOUT). It bounds what a request's
// context cannot:
//   - connecting, unless the DSN sets connect_timeout, so a pool refilling
//     after an outage never waits on a dead address for long;
//   - each statement on the server (statement_timeout, unless the DSN sets
//     it), so work whose caller gave up does not go on holding locks.
//
// A request's own deadline (httpapi's) is what makes its answer come in
// time: pgx watches the context and, when it ends mid-statement, closes
// the connection, which database/sql then discards rather than reuses.
// Idle connections are checked before reuse (pgx's stdlib pings one idle
// for over a second), so after an outage the pool replaces its dead
// connections on the first requests instead of failing them.
func OpenPostgresTimeout(ctx context.Context, dsn string, maxConns int, timeout time.Duration) (*DB, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = timeout
	}
	if _, set := cfg.RuntimeParams["statement_timeout"]; !set {
		cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	}
	// Keepalive probes find a peer that vanished (a network drop, a
	// failed-over host) on idle connections within about half a minute,
	// not the kernel's default of hours.
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}}
	cfg.DialFunc = dialer.DialContext
	db := stdlib.OpenDB(*cfg)
	if maxConns <= 0 {
		maxConns = 16
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	// Connections are renewed now and then, so after a failover behind
	// the same name none stays on an old address for long.
	db.SetConnMaxLifetime(30 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, db, "postgres", migrationLock); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	store := &DB{shared: &shared{
		write: db,
		read:  db,
		dialect: dialect{
			name:        "postgres",
			placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
			skipLocked:  "FOR UPDATE SKIP LOCKED",
			forUpdate:   "FOR UPDATE",
			nowMS:       postgresNowMS,
			writingWith: true,
		},
	}}
	return store, nil
}

// postgresNowMS is PostgreSQL's clock in Unix milliseconds: the
// database's, shared by every instance.
const postgresNowMS = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
