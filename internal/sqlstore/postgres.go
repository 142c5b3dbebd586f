package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// migrationLock serialises migrations of instances that start together.
// The number is arbitrary but fixed: "tessera" in ASCII, as an integer.
const migrationLock = `SELECT pg_advisory_xact_lock(32762643830108769)`

// OpenPostgres connects to PostgreSQL with a pgx DSN
// ("postgres://user@host:5432/db?sslmode=disable") and applies migrations.
func OpenPostgres(ctx context.Context, dsn string, maxConns int) (*DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	if maxConns <= 0 {
		maxConns = 16
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
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
			nowMS:       "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
		},
	}}
	return store, nil
}
