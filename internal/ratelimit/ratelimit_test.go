package ratelimit

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/storetest"
)

// backends are the limiters every test runs on. Redis skips without
// TESSERA_TEST_REDIS_URL (and fails when it is set but unreachable).
func backends(t *testing.T) map[string]Limiter {
	out := map[string]Limiter{"memory": NewMemory(nil)}
	url := storetest.RedisURL(t)
	if url == "" {
		return out
	}
	b := make([]byte, 6)
	rand.Read(b)
	r, client, err := NewRedis(context.Background(), url, "test:"+hex.EncodeToString(b)+":", testHash)
	if err != nil {
		t.Fatalf("redis from TESSERA_TEST_REDIS_URL: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	out["redis"] = r
	return out
}

func TestBurstThenRefusal(t *testing.T) {
	for name, l := range backends(t) {
		t.Run(name, func(t *testing.T) {
			limit := Limit{Rate: 5, Period: time.Hour, Burst: 5}
			for i := 0; i < 5; i++ {
				if r, err := l.Allow(context.Background(), "k", limit); err != nil || !r.Allowed {
					t.Fatalf("event %d refused: %+v %v", i, r, err)
				}
			}
			r, err := l.Allow(context.Background(), "k", limit)
			if err != nil || r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > 13*time.Minute {
				t.Fatalf("the sixth event: %+v %v, want refused with a wait of about 12 minutes", r, err)
			}
			if r, _ := l.Allow(context.Background(), "other", limit); !r.Allowed {
				t.Fatal("keys are not separate")
			}
		})
	}
}

// TestParallelEventsHoldTheLimit fires 100 events at once at a limit of 10.
func TestParallelEventsHoldTheLimit(t *testing.T) {
	for name, l := range backends(t) {
		t.Run(name, func(t *testing.T) {
			var ok atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 100; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if r, err := l.Allow(context.Background(), "p", Limit{Rate: 10, Period: time.Hour, Burst: 10}); err == nil && r.Allowed {
						ok.Add(1)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != 10 {
				t.Fatalf("%d of 100 parallel events allowed, want 10", ok.Load())
			}
		})
	}
}

func TestMemoryRefillsWithTime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := NewMemory(func() time.Time { return now })
	limit := Limit{Rate: 2, Period: time.Minute, Burst: 2}
	m.Allow(context.Background(), "k", limit)
	m.Allow(context.Background(), "k", limit)
	if r, _ := m.Allow(context.Background(), "k", limit); r.Allowed || r.RetryAfter != 30*time.Second {
		t.Fatalf("third event: %+v, want refused for 30s", r)
	}
	now = now.Add(30 * time.Second)
	if r, _ := m.Allow(context.Background(), "k", limit); !r.Allowed {
		t.Fatal("not allowed again after one emission interval")
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]Limit{
		"10/m":      {10, time.Minute, 10},
		"50/d":      {50, 24 * time.Hour, 50},
		"30/15m,30": {30, 15 * time.Minute, 30},
		"5/s,20":    {5, time.Second, 20},
		"off":       Disabled,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10", "x/m", "10/fortnight", "10/m,0", "-1/m"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if !(Limit{}).Off() {
		t.Error("the zero limit is not off")
	}
}

// testHash stands in for the server's Keyring.MAC.
func testHash(parts ...string) []byte {
	m := hmac.New(sha256.New, []byte("test server key"))
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// TestRedisKeysNameNoOneAndStartWithThePrefix counts events on keys that
// hold an email address, a phone number and an IP address, then scans
// Redis: every key Tessera wrote starts with the prefix and holds none of
// them.
func TestRedisKeysNameNoOneAndStartWithThePrefix(t *testing.T) {
	url := storetest.RedisURL(t)
	if url == "" {
		t.Skip(storetest.RedisEnv + " is not set")
	}
	b := make([]byte, 6)
	rand.Read(b)
	tag := hex.EncodeToString(b)
	prefix := "tessera-" + tag + ":"
	r, client, err := NewRedis(context.Background(), url, prefix, testHash)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	private := []string{"alice." + tag + "@example.com", "+1415555" + tag[:4], "192.0.2." + tag[:2]}
	limit := Limit{Rate: 5, Period: time.Hour, Burst: 5}
	for _, key := range []string{"dest-hour:owner:" + private[0], "sms-country:owner:" + private[1], "ip:" + private[2]} {
		if res, err := r.Allow(context.Background(), key, limit); err != nil || !res.Allowed {
			t.Fatalf("Allow(%q): %+v %v", key, res, err)
		}
	}
	keys, err := client.Keys(context.Background(), "*"+tag+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	all, err := client.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("%d keys start with %q, want 3: %q (keys naming the test: %q)", len(all), prefix, all, keys)
	}
	for _, k := range append(keys, all...) {
		if !strings.HasPrefix(k, prefix+"rate:") {
			t.Errorf("key %q does not start with the prefix %q", k, prefix)
		}
		for _, p := range private {
			if strings.Contains(k, p) {
				t.Errorf("key %q holds %q", k, p)
			}
		}
	}
	client.Del(context.Background(), all...)
}
