package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tessera-id/tessera/internal/sqlstore"
)

// PostgresEnv names the variable with the DSN of a PostgreSQL database the
// tests may create schemas in. Unset, PostgreSQL tests skip; set, a server
// that cannot be reached fails them.
const PostgresEnv = "TESSERA_TEST_POSTGRES_URL"

// RequireEnv, when set (CI sets it), makes a missing server variable fail
// the tests instead of skipping them.
const RequireEnv = "TESSERA_TEST_REQUIRE_SERVERS"

// RedisEnv names the Redis URL the tests that need a shared limiter or
// breaker use.
const RedisEnv = "TESSERA_TEST_REDIS_URL"

// RedisURL returns RedisEnv's URL, or "" when it is unset, for the caller
// to skip or to fall back on memory; under RequireEnv an unset URL fails
// the test instead.
func RedisURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(RedisEnv)
	if url == "" && os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is set but %s is not: the Redis tests must run", RequireEnv, RedisEnv)
	}
	return url
}

// OpenSQLite returns a store on a fresh SQLite file in t.TempDir().
func OpenSQLite(t testing.TB) *sqlstore.DB {
	t.Helper()
	migrated, err := migratedSQLite()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tessera.db")
	if err := os.WriteFile(path, migrated, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sqlstore.OpenSQLite(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// migratedSQLite is an empty database file with every migration applied.
// The tests open hundreds of stores; copying this file is far cheaper than
// migrating each, and opening it still checks the schema version.
var migratedSQLite = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "tessera-storetest")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tessera.db")
	db, err := sqlstore.OpenSQLite(context.Background(), path, false)
	if err != nil {
		return nil, err
	}
	// Close checkpoints the WAL: the file alone holds the schema.
	if err := db.Close(); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
})

// OpenPostgres returns a store in a fresh schema of the PostgresEnv
// database, dropped when the test ends.
func OpenPostgres(t testing.TB) *sqlstore.DB {
	t.Helper()
	dsn := PostgresSchema(t)
	db, err := sqlstore.OpenPostgres(context.Background(), dsn, 8)
	if err != nil {
		t.Fatalf("postgres from %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresSchema creates a schema with a random name in the PostgresEnv
// database, drops it when the test ends, and returns a DSN whose
// search_path is that schema. It skips the test when PostgresEnv is unset.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("%s is set but %s is not: the PostgreSQL tests must run", RequireEnv, PostgresEnv)
		}
		t.Skip(PostgresEnv + " not set")
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema := "t_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		t.Fatalf("postgres from %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	// A commit need not wait for its WAL to reach the disk: no test
	// crashes PostgreSQL, and the tests spend most of their time waiting
	// for those flushes (each migration and each write is a commit).
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	return u.String()
}
