package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tessera-id/tessera"
)

// MemoryBreakerStore keeps the breaker's entries in this process: each
// instance judges the traffic it sees. The zero value is ready.
type MemoryBreakerStore struct {
	mu      sync.Mutex
	entries map[string]*memoryEntry
	calls   int
}

type memoryEntry struct {
	BreakerEntry
	expires time.Time // on the process's monotonic clock
}

var _ BreakerStore = (*MemoryBreakerStore)(nil)

// Clock is now: one process has one clock.
func (m *MemoryBreakerStore) Clock(_ context.Context, now time.Time) (time.Time, error) {
	return now, nil
}

// Update runs fn on copies of the entries under the store's lock.
func (m *MemoryBreakerStore) Update(_ context.Context, keys []string, retain time.Duration, now time.Time, fn func([]*BreakerEntry, time.Time)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	if m.entries == nil {
		m.entries = map[string]*memoryEntry{}
	}
	entries := make([]*BreakerEntry, len(keys))
	for i, k := range keys {
		entries[i] = &BreakerEntry{}
		if e := m.entries[k]; e != nil {
			*entries[i] = e.BreakerEntry
		}
	}
	fn(entries, now)
	expires := time.Now().Add(retain)
	for i, k := range keys {
		m.entries[k] = &memoryEntry{BreakerEntry: *entries[i], expires: expires}
	}
	return nil
}

// sweep drops, now and then, entries nobody touched for their retention,
// so the map stays as small as the traffic of a window.
func (m *MemoryBreakerStore) sweep() {
	m.calls++
	if m.calls%1024 != 0 {
		return
	}
	now := time.Now()
	for k, e := range m.entries {
		if now.After(e.expires) {
			delete(m.entries, k)
		}
	}
}

// Entries returns copies of the entries.
func (m *MemoryBreakerStore) Entries(context.Context) (map[string]*BreakerEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*BreakerEntry, len(m.entries))
	for k, e := range m.entries {
		c := e.BreakerEntry
		out[k] = &c
	}
	return out, nil
}

// Delete removes an entry.
func (m *MemoryBreakerStore) Delete(_ context.Context, key string) (*BreakerEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[key]
	if e == nil {
		return nil, nil
	}
	delete(m.entries, key)
	c := e.BreakerEntry
	return &c, nil
}

// RedisBreakerStore keeps the breaker's entries in Redis, shared by every
// instance: one key per prefix, prefix + "sms-breaker:" + "+44 7400",
// holding the entry as JSON and expiring when untouched for its
// retention. A prefix of a few digits names nobody, so the keys are not
// hashed. Updates are optimistic transactions (WATCH, MULTI): one that
// another instance overtook is run again on what that instance stored.
// Entries are judged on Redis's clock (TIME, read with them), so instances
// whose clocks disagree still agree on when a window ends or a prefix
// half-opens.
type RedisBreakerStore struct {
	Client redis.UniversalClient
	Prefix string // TESSERA_REDIS_PREFIX
	// Wall is this instance's wall clock (time.Now when nil), against
	// which Redis's is compared.
	Wall func() time.Time
}

func (r *RedisBreakerStore) wall() time.Time {
	if r.Wall != nil {
		return r.Wall()
	}
	return time.Now()
}

// onRedisClock moves now by the difference between Redis's clock, read
// as redisNow between before and after on the wall clock, and the wall
// clock at that moment, in whole seconds: the breaker counts in minutes,
// and clocks within half a second of each other (NTP keeps them so) are
// taken as agreeing, so the round trip's jitter moves nothing.
func onRedisClock(now, redisNow, before, after time.Time) time.Time {
	return now.Add(redisNow.Sub(before.Add(after.Sub(before) / 2)).Round(time.Second))
}

// Clock is now on Redis's clock (one TIME).
func (r *RedisBreakerStore) Clock(ctx context.Context, now time.Time) (time.Time, error) {
	before := r.wall()
	t, err := r.Client.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("sms breaker: redis: %w", err)
	}
	return onRedisClock(now, t, before, r.wall()), nil
}

var _ BreakerStore = (*RedisBreakerStore)(nil)

// maxBreakerRetries bounds the reruns of one update under contention.
const maxBreakerRetries = 50

func (r *RedisBreakerStore) key(k string) string { return r.Prefix + "sms-breaker:" + k }

// Update runs fn on the stored entries in a WATCH/MULTI transaction.
func (r *RedisBreakerStore) Update(ctx context.Context, keys []string, retain time.Duration, now time.Time, fn func([]*BreakerEntry, time.Time)) error {
	rkeys := make([]string, len(keys))
	for i, k := range keys {
		rkeys[i] = r.key(k)
	}
	txf := func(tx *redis.Tx) error {
		// The entries and Redis's clock in one round trip.
		var mget *redis.SliceCmd
		var clock *redis.TimeCmd
		asked := r.wall()
		if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			mget, clock = p.MGet(ctx, rkeys...), p.Time(ctx)
			return nil
		}); err != nil {
			return err
		}
		storeNow := onRedisClock(now, clock.Val(), asked, r.wall())
		vals := mget.Val()
		entries := make([]*BreakerEntry, len(keys))
		before := make([]BreakerEntry, len(keys))
		for i, v := range vals {
			entries[i] = &BreakerEntry{}
			if s, ok := v.(string); ok {
				if err := json.Unmarshal([]byte(s), entries[i]); err != nil {
					return fmt.Errorf("sms breaker: entry %s: %w", keys[i], err)
				}
			}
			before[i] = *entries[i]
		}
		fn(entries, storeNow)
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i, e := range entries {
				if *e == before[i] {
					continue // unchanged (a validation nothing counted): no write
				}
				b, err := json.Marshal(e)
				if err != nil {
					return err
				}
				p.Set(ctx, rkeys[i], b, retain)
			}
			return nil
		})
		return err
	}
	for range maxBreakerRetries {
		err := r.Client.Watch(ctx, txf, rkeys...)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return fmt.Errorf("sms breaker: redis: %w", err)
			}
			return nil
		}
	}
	// Contention so heavy is a passing overload: retry later, not a bug.
	return &tessera.Error{Code: tessera.EUNAVAILABLE, Message: fmt.Sprintf("Too many codes to %s at once: retry shortly", keys[len(keys)-1])}
}

// Entries scans the breaker's keys.
func (r *RedisBreakerStore) Entries(ctx context.Context) (map[string]*BreakerEntry, error) {
	out := map[string]*BreakerEntry{}
	pattern := globEscape(r.key("")) + "*"
	iter := r.Client.Scan(ctx, 0, pattern, 200).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("sms breaker: redis: %w", err)
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 200)]
		keys = keys[len(batch):]
		vals, err := r.Client.MGet(ctx, batch...).Result()
		if err != nil {
			return nil, fmt.Errorf("sms breaker: redis: %w", err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // expired since the scan
			}
			var e BreakerEntry
			if err := json.Unmarshal([]byte(s), &e); err != nil {
				return nil, fmt.Errorf("sms breaker: entry %s: %w", batch[i], err)
			}
			out[strings.TrimPrefix(batch[i], r.key(""))] = &e
		}
	}
	return out, nil
}

// Delete removes an entry (GETDEL).
func (r *RedisBreakerStore) Delete(ctx context.Context, key string) (*BreakerEntry, error) {
	s, err := r.Client.GetDel(ctx, r.key(key)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sms breaker: redis: %w", err)
	}
	var e BreakerEntry
	if err := json.Unmarshal([]byte(s), &e); err != nil {
		return nil, fmt.Errorf("sms breaker: entry %s: %w", key, err)
	}
	return &e, nil
}

// globEscape escapes the characters SCAN's MATCH treats specially.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(s)
}
