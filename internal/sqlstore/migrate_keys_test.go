package sqlstore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/storetest"
)

// TestMigrationToKeyLifeCycle: signing keys from before the life cycle
// signed from their creation: after migration 18 they activated then, and
// take generations in creation order, so the newest still signs.
func TestMigrationToKeyLifeCycle(t *testing.T) {
	check := func(t *testing.T, raw *sql.DB, q func(string) string, open func() (tessera.AccountStore, func())) {
		for i, id := range []string{"old", "newer"} {
			if _, err := raw.Exec(q(`INSERT INTO signing_keys (id, algorithm, public_key, private_sealed, created_at) VALUES (?, 'EdDSA', ?, ?, ?)`),
				id, []byte("pub"), []byte("sealed"), at(i).UnixMilli()); err != nil {
				t.Fatal(err)
			}
		}
		raw.Close()
		store, done := open()
		defer done()
		keys, err := store.SigningKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2 || keys[0].ID != "newer" || keys[0].Generation != 2 || !keys[0].ActivatesAt.Equal(at(1)) ||
			keys[1].ID != "old" || keys[1].Generation != 1 || !keys[1].ActivatesAt.Equal(at(0)) {
			t.Fatalf("migrated keys: %+v %+v", keys[0], keys[1])
		}
		next := &tessera.SigningKey{ID: "next", Algorithm: "RS256", PublicKey: []byte("p"), PrivateSealed: []byte("s"), Generation: 3, CreatedAt: at(2), ActivatesAt: at(12)}
		if err := store.CreateSigningKey(context.Background(), next); err != nil {
			t.Fatal(err)
		}
		next.ID, next.Generation = "again", 2
		if err := store.CreateSigningKey(context.Background(), next); tessera.ErrorCode(err) != tessera.ECONFLICT {
			t.Fatalf("a migrated generation taken again: %v, want a conflict", err)
		}
	}
	const before = 12 // the schema before migration 18 (13-17 do not touch signing keys)
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tessera.db")
		raw, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlstore.MigrateTo(context.Background(), raw, "sqlite", before); err != nil {
			t.Fatal(err)
		}
		check(t, raw, func(q string) string { return q }, func() (tessera.AccountStore, func()) {
			db, err := sqlstore.OpenSQLite(context.Background(), path, false)
			if err != nil {
				t.Fatal(err)
			}
			return db, func() { db.Close() }
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.PostgresSchema(t)
		raw, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlstore.MigrateTo(context.Background(), raw, "postgres", before); err != nil {
			t.Fatal(err)
		}
		check(t, raw, func(q string) string {
			return "INSERT INTO signing_keys (id, algorithm, public_key, private_sealed, created_at) VALUES ($1, 'EdDSA', $2, $3, $4)"
		}, func() (tessera.AccountStore, func()) {
			db, err := sqlstore.OpenPostgres(context.Background(), dsn, 4)
			if err != nil {
				t.Fatal(err)
			}
			return db, func() { db.Close() }
		})
	})
}
