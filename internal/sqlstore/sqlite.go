package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// OpenSQLite opens (creating if needed) the SQLite database at path and
// applies migrations.
//
// Durability: WAL with synchronous=NORMAL. A commit is in the WAL file
// before it is acknowledged, so killing the process (even with kill -9)
// loses nothing; only a power cut or OS crash can lose the last commits.
// Set fullSync for synchronous=FULL, which survives those too at the cost
// of an fsync per commit.
func OpenSQLite(ctx context.Context, path string, fullSync bool) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	sync := "NORMAL"
	if fullSync {
		sync = "FULL"
	}
	params := url.Values{}
	// mmap serves page reads from memory instead of a read() call each.
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(" + sync + ")", "foreign_keys(1)", "mmap_size(268435456)", "cache_size(-32000)"} {
		params.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + params.Encode()

	// One writer connection, owned by the group commit (batch.go): SQLite
	// allows a single writer at a time, and queuing in Go is far cheaper
	// than SQLITE_BUSY retries. Other processes (the tessera CLI) wait on
	// the busy timeout.
	write, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	write.SetConnMaxLifetime(0)
	if err := migrate(ctx, write, "sqlite", ""); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		write.Close()
		return nil, err
	}

	read, err := sql.Open("sqlite", dsn+"&mode=ro")
	if err != nil {
		write.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxIdleTime(0)
	batch, err := newBatcher(ctx, write)
	if err != nil {
		write.Close()
		read.Close()
		return nil, err
	}
	return &DB{write: write, read: read, batch: batch, dialect: dialect{name: "sqlite"}}, nil
}
