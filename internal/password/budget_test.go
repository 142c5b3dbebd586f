package password

import (
	"context"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
)

// heavyArgon2 is an imported argon2id hash of pw that takes memory KiB,
// with a key of keyLen bytes (32 goes Tessera's own way, others the
// legacy way).
func heavyArgon2(pw string, memory uint32, keyLen int) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pw), salt, 1, memory, 1, uint32(keyLen))
	b := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=1,p=1$%s$%s", memory, b.EncodeToString(salt), b.EncodeToString(key))
}

// TestImportedHashHoldsItsMemory: the memory budget counts Memory per
// running hash. An imported hash may take many times that (argon2 up to
// 256 MiB, as Django's and Ory Kratos's defaults of about 100 MiB do), so
// logins to imported accounts, in parallel, took the process far past its
// budget. Such a hash now holds a slot per Memory it uses: with one of
// four slots taken, one that needs all four waits (here: until its
// context ends), whichever path it takes.
func TestImportedHashHoldsItsMemory(t *testing.T) {
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 4)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, keyLen := range []int{32, 16} {
		enc := heavyArgon2("pw", 256, keyLen)
		h.slots <- struct{}{} // another login's hash is running
		for range 30 {
			if ok, err := h.Verify(done, "pw", enc); err == nil {
				t.Fatalf("key of %d bytes: a hash of four slots' memory ran beside another (ok %v)", keyLen, ok)
			}
		}
		<-h.slots
		if len(h.slots) != 0 {
			t.Fatalf("slots left taken: %d", len(h.slots))
		}
		if ok, err := h.Verify(context.Background(), "pw", enc); !ok || err != nil {
			t.Fatalf("key of %d bytes, alone: %v %v", keyLen, ok, err)
		}
	}

	// Heavy and ordinary hashes side by side all finish.
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enc := heavyArgon2("pw", uint32(64*(1+i%5)), 16+16*(i%2))
			if ok, err := h.Verify(context.Background(), "pw", enc); !ok || err != nil {
				t.Errorf("hash %d: %v %v", i, ok, err)
			}
		}()
	}
	wg.Wait()
}
