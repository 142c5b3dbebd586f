package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

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
	return OpenSQLiteWith(ctx, path, SQLiteOptions{FullSync: fullSync})
}

// SQLiteOptions are OpenSQLiteWith's settings; the zero value is
// OpenSQLite's.
type SQLiteOptions struct {
	FullSync bool // synchronous=FULL (see OpenSQLite)
	// WALLimit bounds the WAL file, in bytes (DefaultWALLimit if 0); how
	// is in checkpoint.go.
	WALLimit int64
}

// DefaultWALLimit is the WAL file's bound when SQLiteOptions leave it 0.
const DefaultWALLimit = 64 << 20

// OpenSQLiteWith is OpenSQLite with options.
func OpenSQLiteWith(ctx context.Context, path string, opts SQLiteOptions) (*DB, error) {
	return openSQLite(ctx, path, opts, true)
}

// openSQLite is OpenSQLiteWith; without background checkpoints (tests
// only) the WAL grows by every page written, which makes it a count of
// them.
func openSQLite(ctx context.Context, path string, opts SQLiteOptions, background bool) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	sync := "NORMAL"
	if opts.FullSync {
		sync = "FULL"
	}
	bound := newWALBound(path+"-wal", opts.WALLimit)
	// busy is the wait for the write lock of another process (the tessera
	// CLI); the checkpointer gets a far shorter one (see checkpoint.go).
	dsn := func(busy time.Duration, extra ...string) string {
		params := url.Values{}
		for _, p := range append([]string{"journal_mode(WAL)", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()), "synchronous(" + sync + ")", "foreign_keys(1)"}, extra...) {
			params.Add("_pragma", p)
		}
		return "file:" + path + "?" + params.Encode()
	}

	// One writer connection, owned by the group commit (batch.go): SQLite
	// allows a single writer at a time, and queuing in Go is far cheaper
	// than SQLITE_BUSY retries. Other processes (the tessera CLI) wait on
	// the busy timeout.
	// Checkpoints (copying the WAL back into the database file) run in the
	// background on their own connection (see checkpointer), not inside a
	// commit, where they would stall every write queued behind it.
	// The writer gets a larger page cache (8 MB) than the readers' default
	// 2 MB: it touches every hot page and is alone.
	// journal_size_limit trims the WAL file back to the checkpoint
	// threshold whenever it starts over.
	write, err := sql.Open("sqlite", dsn(10*time.Second, "wal_autocheckpoint(0)", "cache_size(-8000)", fmt.Sprintf("journal_size_limit(%d)", bound.soft))+"&_txlock=immediate")
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

	read, err := sql.Open("sqlite", dsn(10*time.Second)+"&mode=ro")
	if err != nil {
		write.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxIdleTime(0)
	sh := &shared{write: write, read: read, dialect: dialect{name: "sqlite"}}
	if background {
		ckpt, err := sql.Open("sqlite", dsn(checkpointBusy))
		if err != nil {
			write.Close()
			read.Close()
			return nil, err
		}
		ckpt.SetMaxOpenConns(1)
		sh.checkpoints = startCheckpointer(ckpt, bound)
	}
	if sh.batch, err = newBatcher(ctx, write, sh.checkpoints, &sh.counter); err != nil {
		if sh.checkpoints != nil {
			sh.checkpoints.close()
		}
		write.Close()
		read.Close()
		return nil, err
	}
	return &DB{shared: sh}, nil
}
