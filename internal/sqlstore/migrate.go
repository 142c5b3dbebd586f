package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrations embed.FS

// migrate applies the dialect's migrations that are not yet applied, each
// in its own transaction, in file-name order. lock, when set, runs first in
// each transaction so instances starting together take turns.
func migrate(ctx context.Context, db *sql.DB, dialectName, lock string) error {
	return migrateTo(ctx, db, dialectName, lock, 0)
}

// migrateTo is migrate up to version upTo, or all with 0: tests build an
// older schema with it, to see the newer migrations carry its data.
func migrateTo(ctx context.Context, db *sql.DB, dialectName, lock string, upTo int) error {
	dir := "migrations/" + dialectName
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		version, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", e.Name())
		}
		if upTo > 0 && version > upTo {
			break
		}
		body, err := migrations.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return err
		}
		if err := applyMigration(ctx, db, version, string(body), lock); err != nil {
			return fmt.Errorf("migration %s: %w", e.Name(), err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, version int, body, lock string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if lock != "" {
		// PostgreSQL (the only dialect with a lock): a migration, and the
		// wait for another instance's, may take longer than the pool's
		// statement_timeout.
		if _, err := tx.ExecContext(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	var applied int
	if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM schema_migrations WHERE version = %d`, version)).Scan(&applied); err != nil {
		return err
	}
	if applied > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO schema_migrations (version, applied_at) VALUES (%d, %d)`, version, time.Now().UnixMilli())); err != nil {
		return err
	}
	return tx.Commit()
}

// SchemaVersion returns the newest applied migration, for readiness checks.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// LatestVersion is the newest migration this binary carries.
func (db *DB) LatestVersion() int {
	entries, _ := fs.ReadDir(migrations, "migrations/"+db.dialect.name)
	latest := 0
	for _, e := range entries {
		if v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0]); err == nil && v > latest {
			latest = v
		}
	}
	return latest
}

// Ready reports an error unless the database answers and carries every
// migration of this binary.
func (db *DB) Ready(ctx context.Context) error {
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if want := db.LatestVersion(); v < want {
		return fmt.Errorf("schema version %d, this binary needs %d", v, want)
	}
	return nil
}

// OutboxDepth counts the messages waiting to be sent.
func (db *DB) OutboxDepth(ctx context.Context) (int, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE status = 'pending'`).Scan(&n)
	return n, err
}

// Pools names the connection pools, for metrics.
func (db *DB) Pools() map[string]*sql.DB {
	if db.read == db.write {
		return map[string]*sql.DB{"postgres": db.write}
	}
	return map[string]*sql.DB{"sqlite_write": db.write, "sqlite_read": db.read}
}
