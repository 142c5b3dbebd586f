package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// batcher is SQLite's group commit. SQLite has one writer at a time and
// every commit costs file locking and a WAL write, so writes from parallel
// requests are queued and run together in one transaction by one
// goroutine, which owns the writer connection. Each caller still returns
// only after the transaction holding its change has committed: nothing is
// acknowledged before it is in the WAL.
type batcher struct {
	conn *sql.Conn
	// mu guards closing: do sends under a read lock, close closes ops under
	// the write lock, so no op is ever sent on a closed channel.
	mu     sync.RWMutex
	closed bool
	ops    chan *writeOp
	stmts  map[string]*sql.Stmt // prepared on conn; used by the loop goroutine only
	done   chan struct{}
	// wal, if set, is told of each commit, and may hold the next batch
	// back while the WAL is past its bound (see checkpoint.go).
	wal *checkpointer
	// counter counts the statements run on conn.
	counter *statementCounter
}

// maxBatch bounds one transaction, so one commit never waits on too much.
const maxBatch = 128

type writeOp struct {
	ctx   context.Context
	multi bool
	fn    func(r runner) error
	err   error
	done  chan struct{}
	// state moves once from opQueued, to opRunning when the loop starts
	// the op or to opWithdrawn when its caller gives up first: whoever
	// wins the swap decides, so an op either runs with its caller waiting
	// for the outcome or never runs at all.
	state atomic.Int32
}

const (
	opQueued int32 = iota
	opRunning
	opWithdrawn
)

func newBatcher(ctx context.Context, pool *sql.DB, wal *checkpointer, counter *statementCounter) (*batcher, error) {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return nil, err
	}
	b := &batcher{conn: conn, ops: make(chan *writeOp, 4*maxBatch), stmts: map[string]*sql.Stmt{}, done: make(chan struct{}), wal: wal, counter: counter}
	go b.loop()
	return b, nil
}

// do queues fn and waits until its transaction has committed or failed.
func (b *batcher) do(ctx context.Context, multi bool, fn func(r runner) error) error {
	op := &writeOp{ctx: ctx, multi: multi, fn: fn, done: make(chan struct{})}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return errors.New("sqlite: database is closed")
	}
	select {
	case b.ops <- op:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
	}
	// The deadline ran out while the op waited its turn (a long batch, a
	// disk that stalls, another process holding the write lock): withdraw
	// it, unless the loop has started it, in which case wait for its
	// outcome, so the caller never reports failure for a change that
	// committed.
	if op.state.CompareAndSwap(opQueued, opWithdrawn) {
		return ctx.Err()
	}
	<-op.done
	return op.err
}

// close stops the loop after the queued ops and releases the connection.
func (b *batcher) close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.ops)
	b.mu.Unlock()
	<-b.done
	for _, st := range b.stmts {
		st.Close()
	}
	return b.conn.Close()
}

func (b *batcher) loop() {
	defer close(b.done)
	for op := range b.ops {
		batch := []*writeOp{op}
	fill:
		for len(batch) < maxBatch {
			select {
			case next, ok := <-b.ops:
				if !ok {
					break fill
				}
				batch = append(batch, next)
			default:
				break fill
			}
		}
		b.run(batch)
		for _, op := range batch {
			close(op.done)
		}
		if b.wal != nil {
			b.wal.afterCommit()
		}
	}
}

// run executes one batch in one transaction. An op that fails leaves no
// trace: a single statement fails atomically, and an op of several
// statements runs inside a savepoint that is rolled back.
func (b *batcher) run(batch []*writeOp) {
	ctx := context.Background()
	if _, err := b.exec(ctx, "BEGIN IMMEDIATE"); err != nil {
		for _, op := range batch {
			op.err = fmt.Errorf("begin: %w", err)
		}
		return
	}
	failed := 0
	for _, op := range batch {
		// A caller that gave up before its op started is not waited on;
		// one that gives up later does not interrupt it: a statement
		// interrupted by a cancelled context would roll back the whole
		// shared transaction.
		if err := op.ctx.Err(); err != nil {
			op.state.CompareAndSwap(opQueued, opWithdrawn)
		}
		if !op.state.CompareAndSwap(opQueued, opRunning) {
			op.err = context.Cause(op.ctx)
			failed++
			continue
		}
		savepoint := op.multi && len(batch) > 1
		if savepoint {
			if _, op.err = b.exec(ctx, "SAVEPOINT op"); op.err != nil {
				failed++
				continue
			}
		}
		op.err = op.fn(b)
		if op.err != nil {
			failed++
		}
		if savepoint {
			if op.err != nil {
				_, err := b.exec(ctx, "ROLLBACK TO op")
				op.err = errors.Join(op.err, err)
			}
			if _, err := b.exec(ctx, "RELEASE op"); err != nil {
				op.err = errors.Join(op.err, err)
			}
		}
	}
	end := "COMMIT"
	if failed == len(batch) {
		end = "ROLLBACK"
	}
	if _, err := b.exec(ctx, end); err != nil {
		_, _ = b.conn.ExecContext(ctx, "ROLLBACK")
		for _, op := range batch {
			if op.err == nil {
				op.err = fmt.Errorf("commit: %w", err)
			}
		}
	}
}

func (b *batcher) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := b.stmts[query]; ok {
		return st, nil
	}
	st, err := b.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	b.stmts[query] = st
	return st, nil
}

func (b *batcher) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	b.counter.writes.Add(1)
	ctx = context.WithoutCancel(ctx)
	st, err := b.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (b *batcher) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	b.counter.writes.Add(1)
	ctx = context.WithoutCancel(ctx)
	st, err := b.stmt(ctx, query)
	if err != nil {
		return b.conn.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (b *batcher) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	b.counter.writes.Add(1)
	ctx = context.WithoutCancel(ctx)
	st, err := b.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}
