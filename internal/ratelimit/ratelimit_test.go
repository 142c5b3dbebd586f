package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backends are the limiters every test runs on. Redis skips without
// TESSERA_TEST_REDIS_URL (and fails when it is set but unreachable).
func backends(t *testing.T) map[string]Limiter {
	out := map[string]Limiter{"memory": NewMemory(nil)}
	url := os.Getenv("TESSERA_TEST_REDIS_URL")
	if url == "" {
		if os.Getenv("TESSERA_TEST_REQUIRE_SERVERS") != "" {
			t.Fatal("TESSERA_TEST_REQUIRE_SERVERS is set but TESSERA_TEST_REDIS_URL is not")
		}
		return out
	}
	b := make([]byte, 6)
	rand.Read(b)
	r, client, err := NewRedis(context.Background(), url, "test:"+hex.EncodeToString(b)+":")
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
