// Package password hashes passwords with argon2id and stores the
// parameters with each hash (PHC string format), so they can be raised
// later without breaking old hashes.
//
// A semaphore bounds how many hashes run at once, and the process's memory
// budget follows from that bound (see MemoryLimit): each hash takes Memory
// KiB, and a login flood must neither exhaust memory nor, under a memory
// limit too tight for the hashes allowed, make the Go runtime hand each
// hash's memory back to the OS only to fault it in again for the next one
// (that cost logins three quarters of their rate).
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// OWASP is the OWASP Password Storage Cheat Sheet's argon2id setting:
// 19 MiB, 2 passes, 1 thread.
var OWASP = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Hasher hashes and checks passwords.
type Hasher struct {
	Params Params
	slots  chan struct{}
	// wide serialises taking several slots at once (a hash that needs the
	// memory of several), so two such hashes never each hold some slots
	// while waiting for the other's.
	wide  sync.Mutex
	dummy string // a hash of nothing, to spend the same time on unknown accounts
	kdf   func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
}

// DefaultConcurrency is how many hashes run at once by default: one per
// CPU Go may use. A hash is CPU-bound, so more at once would not finish
// more per second, only hold more memory.
func DefaultConcurrency() int { return runtime.GOMAXPROCS(0) }

// NewHasher returns a hasher with params that runs at most concurrent
// hashes at once (DefaultConcurrency if concurrent < 1).
func NewHasher(params Params, concurrent int) *Hasher {
	if concurrent < 1 {
		concurrent = DefaultConcurrency()
	}
	h := &Hasher{Params: params, slots: make(chan struct{}, concurrent), kdf: argon2.IDKey}
	h.dummy, _ = h.Hash(context.Background(), "tessera-dummy-password")
	return h
}

// Concurrency is how many hashes run at once at most.
func (h *Hasher) Concurrency() int { return cap(h.slots) }

// BaseMemory is the live heap budget of everything in the service but its
// password hashes.
const BaseMemory = 24 << 20

// GCPercent is the GOGC a process running a Hasher uses, with MemoryLimit.
// Go's default (100) lets the heap grow to twice its live size, and while
// hashes run most of the live heap is theirs: at 2 CPUs that put the
// resident size at 140 MB under logins. 50 keeps it near 115 MB, at one
// collection per hash or so; a collection is cheap here, since argon2's
// memory holds no pointers to scan.
const GCPercent = 50

// MemoryLimit is the Go memory limit (runtime/debug.SetMemoryLimit) that
// agrees with this hasher under GCPercent: the collector's own goal when
// the live heap is at its largest, BaseMemory plus Concurrency hashes
// running and one more being allocated. With OWASP's 19 MiB and 2 CPUs:
// 1.5 × (24 + 3 × 19) = 121.5 MiB.
//
// Why not less: argon2 allocates its Memory afresh for every hash
// (x/crypto offers no reuse), so each hash leaves that much garbage, and
// the next hash reuses the memory the collector freed, unless a memory
// limit below the collector's goal makes the runtime return it to the OS
// first; then every hash faults its memory back in page by page. Measured
// at 2 CPUs under logins: about 6,600 page faults a login with the former
// 48 MiB limit, a few dozen with this rule.
func (h *Hasher) MemoryLimit() int64 {
	live := BaseMemory + int64(h.Concurrency()+1)*int64(h.Params.Memory)<<10
	return live * (100 + GCPercent) / 100
}

// Hash returns the PHC string of an argon2id hash of pw.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := h.derive(ctx, pw, salt, h.Params)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.Params.Memory, h.Params.Time, h.Params.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches encoded. With an empty encoded (an
// unknown account) it checks against a dummy hash, so the answer takes as
// long as for a real account, and is false.
func (h *Hasher) Verify(ctx context.Context, pw, encoded string) (bool, error) {
	if encoded == "" {
		_, err := h.Verify(ctx, pw, h.dummy)
		return false, err
	}
	p, salt, want, err := parse(encoded)
	if err != nil || len(want) != keyLen {
		return h.verifyLegacy(ctx, pw, encoded)
	}
	got, err := h.derive(ctx, pw, salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether encoded was made with other parameters, or
// by another scheme (an imported user's first login).
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, key, err := parse(encoded)
	return err != nil || p != h.Params || len(key) != keyLen
}

// verifyLegacy checks pw against a hash an imported user brought along
// (see legacy.go), holding a slot like any other hash.
func (h *Hasher) verifyLegacy(ctx context.Context, pw, encoded string) (bool, error) {
	l, err := parseLegacy(encoded)
	if err != nil {
		return false, err
	}
	release, err := h.acquire(ctx, l.memory)
	if err != nil {
		return false, err
	}
	defer release()
	return l.verify(pw)
}

func (h *Hasher) derive(ctx context.Context, pw string, salt []byte, p Params) ([]byte, error) {
	release, err := h.acquire(ctx, uint64(p.Memory))
	if err != nil {
		return nil, err
	}
	defer release()
	return h.kdf([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen), nil
}

// acquire takes the slots a hash using memory KiB needs: one per Memory
// it uses (at least one, at most all), so the memory budget holds for
// imported hashes that use many times what Tessera's own do. It returns
// the function that gives them back.
func (h *Hasher) acquire(ctx context.Context, memory uint64) (func(), error) {
	n := 1
	if per := uint64(h.Params.Memory); per > 0 && memory > per {
		n = int(min((memory+per-1)/per, uint64(cap(h.slots))))
	}
	release := func(k int) {
		for range k {
			<-h.slots
		}
	}
	if n > 1 {
		h.wide.Lock()
		defer h.wide.Unlock()
	}
	for i := range n {
		select {
		case h.slots <- struct{}{}:
		case <-ctx.Done():
			release(i)
			return nil, ctx.Err()
		}
	}
	return func() { release(n) }, nil
}

func parse(encoded string) (Params, []byte, []byte, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return Params{}, nil, nil, errors.New("not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return Params{}, nil, nil, errors.New("unsupported argon2 version")
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return Params{}, nil, nil, errors.New("bad argon2 parameters")
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 {
		return Params{}, nil, nil, errors.New("bad argon2 encoding")
	}
	return p, salt, key, nil
}
