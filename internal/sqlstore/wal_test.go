package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/sqlstore"
)

// TestSQLiteWALStaysBounded writes steadily while readers read without a
// pause, the load under which background checkpoints never let the WAL
// start over, and checks the WAL file never passes its limit. The limit
// is set small (1 MB) so the load needed is small: the writes here put
// about ten times that through the WAL.
func TestSQLiteWALStaysBounded(t *testing.T) {
	const limit = 1 << 20
	path := filepath.Join(t.TempDir(), "tessera.db")
	db, err := sqlstore.OpenSQLiteWith(context.Background(), path, sqlstore.SQLiteOptions{WALLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	payload := make([]byte, 512)

	var peak atomic.Int64
	observe := func() {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			return
		}
		for {
			p := peak.Load()
			if fi.Size() <= p || peak.CompareAndSwap(p, fi.Size()) {
				return
			}
		}
	}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	var reads atomic.Int64
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func(r int) {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := db.Verification(ctx, "client", fmt.Sprintf("w%d-%d", r, i%500))
				if err != nil && tessera.ErrorCode(err) != tessera.ENOTFOUND {
					t.Error(err)
					return
				}
				reads.Add(1)
				observe()
			}
		}(r)
	}

	var writers sync.WaitGroup
	const perWriter = 150
	for w := 0; w < 4; w++ {
		writers.Add(1)
		go func(w int) {
			defer writers.Done()
			for i := 0; i < perWriter; i++ {
				v := &tessera.Verification{
					ID: fmt.Sprintf("w%d-%d", w, i), Owner: "client", Method: tessera.MethodEmail, Consumer: "a@example.com",
					CodeHash: []byte("hash-of-code"), MaxAttempts: 3, Payload: payload, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
				}
				if err := db.CreateVerification(ctx, v, nil); err != nil {
					t.Error(err)
					return
				}
				observe()
			}
		}(w)
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	observe()

	if reads.Load() == 0 {
		t.Fatal("the readers read nothing")
	}
	t.Logf("%d writes, %d reads, WAL peak %d bytes", 4*perWriter, reads.Load(), peak.Load())
	if peak.Load() > limit {
		t.Fatalf("the WAL file reached %d bytes under load, past its %d-byte limit", peak.Load(), limit)
	}
}
