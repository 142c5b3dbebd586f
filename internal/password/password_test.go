package password

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var cheap = Params{Memory: 64, Time: 1, Threads: 1}

func TestHashAndVerify(t *testing.T) {
	h := NewHasher(cheap, 2)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q does not carry its parameters", enc)
	}
	if ok, err := h.Verify(ctx, "correct horse battery staple", enc); !ok || err != nil {
		t.Fatalf("right password rejected: %v", err)
	}
	if ok, _ := h.Verify(ctx, "Correct horse battery staple", enc); ok {
		t.Fatal("wrong password accepted")
	}
	again, _ := h.Hash(ctx, "correct horse battery staple")
	if again == enc {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if ok, err := h.Verify(ctx, "", ""); ok || err != nil {
		t.Fatalf("the unknown-account path answered %v, %v", ok, err)
	}
}

func TestOldParametersStillVerify(t *testing.T) {
	ctx := context.Background()
	old := NewHasher(cheap, 1)
	enc, _ := old.Hash(ctx, "pw-123456")
	stronger := NewHasher(Params{Memory: 128, Time: 2, Threads: 1}, 1)
	if ok, _ := stronger.Verify(ctx, "pw-123456", enc); !ok {
		t.Fatal("a hash made with older parameters no longer verifies")
	}
	if !stronger.NeedsRehash(enc) || old.NeedsRehash(enc) {
		t.Fatal("NeedsRehash does not compare parameters")
	}
}

func TestMalformedHashes(t *testing.T) {
	h := NewHasher(cheap, 1)
	for _, enc := range []string{"x", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=18$m=64,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=0,t=1,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=64,t=1,p=1$!!$a2V5"} {
		if ok, err := h.Verify(context.Background(), "pw", enc); ok || err == nil {
			t.Errorf("%q: got %v, %v; want an error", enc, ok, err)
		}
	}
}

func TestOWASPParameters(t *testing.T) {
	if OWASP.Memory != 19456 || OWASP.Time != 2 || OWASP.Threads != 1 {
		t.Fatalf("OWASP parameters changed: %+v", OWASP)
	}
}

func TestCancelledWhileWaitingForASlot(t *testing.T) {
	h := NewHasher(cheap, 1)
	h.slots <- struct{}{} // the only slot is busy
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "pw"); err == nil {
		t.Fatal("a hash waited past its context")
	}
}

// TestConcurrencyBound runs more hashes at once than the hasher allows:
// never more than its bound run together, and the bound is used in full.
func TestConcurrencyBound(t *testing.T) {
	const bound, hashes = 3, 12
	h := NewHasher(cheap, bound)
	entered, release := make(chan struct{}), make(chan struct{})
	var active, peak atomic.Int32
	h.kdf = func(pw, salt []byte, tm, mem uint32, threads uint8, n uint32) []byte {
		a := active.Add(1)
		for p := peak.Load(); a > p && !peak.CompareAndSwap(p, a); p = peak.Load() {
		}
		entered <- struct{}{}
		<-release
		active.Add(-1)
		return make([]byte, n)
	}
	var wg sync.WaitGroup
	for i := 0; i < hashes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Hash(context.Background(), "pw"); err != nil {
				t.Error(err)
			}
		}()
	}
	// Let a hash finish only once the bound is reached, giving the
	// waiting ones every chance to overrun it first.
	running := 0
	for done := 0; done < hashes; {
		if running < bound && done+running < hashes {
			<-entered
			running++
			continue
		}
		for i := 0; i < 100; i++ {
			runtime.Gosched()
		}
		if n := active.Load(); n > bound {
			t.Fatalf("%d hashes ran at once, bound %d", n, bound)
		}
		release <- struct{}{}
		running--
		done++
	}
	wg.Wait()
	if p := peak.Load(); p != bound {
		t.Fatalf("at most %d hashes ran at once, want the bound %d", p, bound)
	}
}

func TestMemoryLimitFollowsTheBound(t *testing.T) {
	h := NewHasher(Params{Memory: 19 * 1024, Time: 1, Threads: 1}, 2)
	if got, want := h.MemoryLimit(), int64(BaseMemory+3*19<<20)*(100+GCPercent)/100; got != want {
		t.Fatalf("memory limit %d, want %d: the collector's goal over the base, the hashes running and one more", got, want)
	}
	if NewHasher(cheap, 0).Concurrency() != runtime.GOMAXPROCS(0) {
		t.Fatal("the default bound is not one hash per CPU")
	}
}
