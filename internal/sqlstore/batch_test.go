package sqlstore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/sqlstore"
)

// TestSQLiteWriteTimeout: while another process holds SQLite's write lock,
// a write whose deadline runs out while it waits its turn answers at the
// deadline (EUNAVAILABLE), and is never applied later; writes without a
// deadline go through once the lock is released.
func TestSQLiteWriteTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tessera.db")
	db, err := sqlstore.OpenSQLite(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}

	client := func(name string) *tessera.Client {
		return &tessera.Client{ID: name, Name: name, TokenHash: []byte(name), CreatedAt: time.Now()}
	}
	// A write without a deadline queues behind the lock and must commit.
	patient := make(chan error, 1)
	go func() { patient <- db.CreateClient(context.Background(), client("patient")) }()
	time.Sleep(50 * time.Millisecond)

	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err = db.CreateClient(ctx, client("hasty"))
	took := time.Since(start)
	if tessera.ErrorCode(err) != tessera.EUNAVAILABLE {
		t.Fatalf("write behind a held lock: %v (code %q), want EUNAVAILABLE", err, tessera.ErrorCode(err))
	}
	if took > deadline+500*time.Millisecond {
		t.Fatalf("write answered after %v, deadline %v", took, deadline)
	}
	t.Logf("write behind a held lock gave up after %v", took.Round(time.Millisecond))

	if _, err := conn.ExecContext(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-patient; err != nil {
		t.Fatalf("write without a deadline: %v", err)
	}
	clients, err := db.Clients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range clients {
		names[c.Name] = true
	}
	if !names["patient"] || names["hasty"] {
		t.Fatalf("clients after the lock: %v, want patient and not hasty (its caller was told it failed)", names)
	}
}
