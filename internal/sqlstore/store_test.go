package sqlstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tessera.Store { return storetest.OpenSQLite(t) })
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tessera.Store { return storetest.OpenPostgres(t) })
}

func TestSQLiteAccounts(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T) tessera.AccountStore { return storetest.OpenSQLite(t) })
}

func TestPostgresAccounts(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T) tessera.AccountStore { return storetest.OpenPostgres(t) })
}

func TestSQLiteFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tessera.db")
	db, err := sqlstore.OpenSQLite(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tessera.db")
	for i := 0; i < 2; i++ {
		db, err := sqlstore.OpenSQLite(context.Background(), path, false)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		v, err := db.SchemaVersion(context.Background())
		if err != nil || v != db.LatestVersion() || v < 6 {
			t.Fatalf("schema version %d, %v", v, err)
		}
		db.Close()
	}
}

func TestSQLiteIdempotency(t *testing.T) {
	storetest.RunIdempotency(t, func(t *testing.T) storetest.IdempotencyStore { return storetest.OpenSQLite(t) })
}

func TestPostgresIdempotency(t *testing.T) {
	storetest.RunIdempotency(t, func(t *testing.T) storetest.IdempotencyStore { return storetest.OpenPostgres(t) })
}

func TestSQLiteRefreshCost(t *testing.T) {
	t.Parallel() // 3,000 rotations: let them overlap the rest
	storetest.RunRefreshCost(t, func(t *testing.T) storetest.RefreshCostStore { return storetest.OpenSQLite(t) })
}

func TestPostgresRefreshCost(t *testing.T) {
	t.Parallel()
	storetest.RunRefreshCost(t, func(t *testing.T) storetest.RefreshCostStore { return storetest.OpenPostgres(t) })
}
