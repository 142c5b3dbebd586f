package sqlstore

import (
	"context"
	"database/sql"
	"errors"
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
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	sync := "NORMAL"
	if fullSync {
		sync = "FULL"
	}
	params := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(" + sync + ")", "foreign_keys(1)"} {
		params.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + params.Encode()

	// One writer connection, owned by the group commit (batch.go): SQLite
	// allows a single writer at a time, and queuing in Go is far cheaper
	// than SQLITE_BUSY retries. Other processes (the tessera CLI) wait on
	// the busy timeout.
	// Checkpoints (copying the WAL back into the database file) run in the
	// background on their own connection (see checkpointer), not inside a
	// commit, where they would stall every write queued behind it.
	// The writer gets a larger page cache (8 MB) than the readers' default
	// 2 MB: it touches every hot page and is alone.
	write, err := sql.Open("sqlite", dsn+"&_txlock=immediate&_pragma=wal_autocheckpoint(0)&_pragma=cache_size(-8000)")
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
	ckpt, err := sql.Open("sqlite", dsn)
	if err != nil {
		batch.close()
		write.Close()
		read.Close()
		return nil, err
	}
	ckpt.SetMaxOpenConns(1)
	return &DB{shared: &shared{write: write, read: read, batch: batch, dialect: dialect{name: "sqlite"}, checkpoints: startCheckpointer(ckpt)}}, nil
}

// checkpointInterval is how often the background checkpointer copies the
// WAL into the database file. Often enough that the WAL stays small, and
// PASSIVE, so it never blocks a writer or a reader.
const checkpointInterval = 500 * time.Millisecond

// checkpointer runs SQLite WAL checkpoints in the background.
type checkpointer struct {
	db   *sql.DB
	stop chan struct{}
	done chan struct{}
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				// A failed checkpoint is retried next tick; the WAL keeps
				// every commit meanwhile.
				_, _ = c.db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			}
		}
	}()
	return c
}

// close stops the checkpointer after a last, complete checkpoint.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	_, err := c.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return errors.Join(err, c.db.Close())
}
