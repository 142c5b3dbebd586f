package sqlstore

import (
	"database/sql"
	"errors"
	"os"
	"sync"
	"time"
)

// How SQLite's WAL stays bounded under continuous load.
//
// Commits append to the WAL; a checkpoint copies its pages back into the
// database file, and the WAL can start over from its beginning only once
// no reader still reads from it. The background PASSIVE checkpoint never
// waits for anyone, so with readers always active it copies what it can
// but the WAL never starts over: it grew to 8.5 GB in one load test.
//
// So, with the WAL file's limit L (SQLiteOptions.WALLimit, 64 MB by
// default):
//   - every checkpointInterval, and whenever a commit leaves the WAL file
//     past L/4, the checkpointer runs a PASSIVE checkpoint (never waits),
//     then, if the file is past L/4, a TRUNCATE one: it takes the write
//     lock, waits for the readers of old snapshots to finish (new readers
//     are not held up), and empties the file. Its wait is bounded by
//     checkpointBusy; one that does not finish in time gives way and is
//     retried, so commits stall for at most about that;
//   - a commit that leaves the file past L/2 (the checkpointer cannot keep
//     up, or a reader held on) makes the writer wait for checkpoint rounds
//     before its next batch, for at most walWaitMax: back-pressure on
//     writes instead of an unbounded file. The other half of L is room for
//     the batch committed meanwhile (at most maxBatch writes). Only a
//     reader holding one snapshot for longer than walWaitMax can push the
//     file past L, and only while it holds it;
//   - the writer's journal_size_limit trims the file to L/4 whenever the
//     WAL starts over by itself (no reader at that moment).

// checkpointInterval is how often the background checkpointer runs when
// no commit asks for it sooner.
const checkpointInterval = 500 * time.Millisecond

// checkpointBusy bounds how long a TRUNCATE checkpoint waits for the
// writer and the readers, and so how long it holds up commits.
const checkpointBusy = 100 * time.Millisecond

// walWaitMax bounds how long the writer waits for the WAL to shrink below
// its limit before committing again anyway.
const walWaitMax = 2 * time.Second

// walBound holds the WAL file's thresholds: past soft it is truncated,
// past hard the writer waits for that.
type walBound struct {
	path       string
	soft, hard int64
}

func newWALBound(path string, limit int64) walBound {
	if limit <= 0 {
		limit = DefaultWALLimit
	}
	return walBound{path: path, soft: limit / 4, hard: limit / 2}
}

// size is the WAL file's size; 0 when it does not exist.
func (w walBound) size() int64 {
	fi, err := os.Stat(w.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// checkpointer runs SQLite WAL checkpoints in the background, on a
// connection of its own, never inside a commit, where they would stall
// every write queued behind it.
type checkpointer struct {
	db    *sql.DB
	bound walBound
	kick  chan struct{} // a commit asks for a round now
	stop  chan struct{}
	done  chan struct{}

	mu    sync.Mutex
	round chan struct{} // closed when the round under way (or next) ends
}

func startCheckpointer(db *sql.DB, bound walBound) *checkpointer {
	c := &checkpointer{db: db, bound: bound, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), round: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			case <-c.kick:
			}
			c.checkpoint()
			c.mu.Lock()
			close(c.round)
			c.round = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	return c
}

// checkpoint runs one round. A failed or partial checkpoint is retried
// next round; the WAL keeps every commit meanwhile.
func (c *checkpointer) checkpoint() {
	_, _ = c.db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
	if c.bound.size() > c.bound.soft {
		_, _ = c.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	}
}

// afterCommit is the writer's check after each commit, between batches
// (it holds no lock then, so a checkpoint can take the write lock).
func (c *checkpointer) afterCommit() {
	size := c.bound.size()
	if size <= c.bound.soft {
		return
	}
	if size <= c.bound.hard {
		c.request()
		return
	}
	deadline := time.NewTimer(walWaitMax)
	defer deadline.Stop()
	for c.bound.size() > c.bound.hard {
		c.mu.Lock()
		round := c.round
		c.mu.Unlock()
		c.request()
		select {
		case <-round:
		case <-deadline.C:
			return
		case <-c.stop:
			return
		}
	}
}

func (c *checkpointer) request() {
	select {
	case c.kick <- struct{}{}:
	default: // one is asked for already
	}
}

// close stops the checkpointer after a last, complete checkpoint.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	_, err := c.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return errors.Join(err, c.db.Close())
}
