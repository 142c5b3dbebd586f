package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/storetest"
)

// changeLog records a breaker's changes.
type changeLog struct {
	mu  sync.Mutex
	all []BreakerChange
}

func (l *changeLog) hear(c BreakerChange) { l.mu.Lock(); l.all = append(l.all, c); l.mu.Unlock() }

// states lists the changes as "prefix state".
func (l *changeLog) states() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, c := range l.all {
		out = append(out, c.Prefix+" "+c.State)
	}
	return out
}

func send(t *testing.T, b *Breaker, n string, now time.Time) *Trip {
	t.Helper()
	tr, err := b.Send(context.Background(), n, now)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func validated(t *testing.T, b *Breaker, n string, now time.Time) {
	t.Helper()
	if err := b.Validated(context.Background(), n, now); err != nil {
		t.Fatal(err)
	}
}

// breakerStores are the stores every breaker test runs on; Redis skips
// without TESSERA_TEST_REDIS_URL (and fails when it is required).
func breakerStores(t *testing.T) map[string]func() BreakerStore {
	out := map[string]func() BreakerStore{"memory": func() BreakerStore { return &MemoryBreakerStore{} }}
	if client, prefix := testRedis(t); client != nil {
		out["redis"] = func() BreakerStore { return &RedisBreakerStore{Client: client, Prefix: prefix} }
	}
	return out
}

// testRedis is a client of the test Redis and a key prefix of this test's
// own, or nil without TESSERA_TEST_REDIS_URL.
func testRedis(t *testing.T) (*redis.Client, string) {
	url := storetest.RedisURL(t)
	if url == "" {
		return nil, ""
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		keys, _ := client.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
	})
	return client, prefix
}

func TestBreakerTripsOnALowConversionPrefixOnly(t *testing.T) {
	for name, store := range breakerStores(t) {
		t.Run(name, func(t *testing.T) {
			var log changeLog
			b := &Breaker{MinSends: 20, MinConversion: 0.2, Window: time.Hour, Store: store(), OnChange: log.hear}
			now := t0
			// A healthy prefix: half the codes are used.
			for i := 0; i < 100; i++ {
				n := fmt.Sprintf("+4474001%05d", i)
				if tr := send(t, b, n, now); tr != nil {
					t.Fatalf("healthy send %d refused: %+v", i, tr)
				}
				if i%2 == 0 {
					validated(t, b, n, now)
				}
			}
			// A pumped prefix: one code in twenty used.
			pumped := func(i int) string { return fmt.Sprintf("+4478001%05d", i) }
			for i := 0; i < 20; i++ {
				if tr := send(t, b, pumped(i), now); tr != nil {
					t.Fatalf("pumped send %d refused before the volume: %+v", i, tr)
				}
				if i == 0 {
					validated(t, b, pumped(i), now)
				}
			}
			if got := log.states(); !slices.Equal(got, []string{"+44 7800 open"}) || log.all[0].Sends != 20 || log.all[0].Validated != 1 {
				t.Fatalf("changes %+v", log.all)
			}
			tr := send(t, b, pumped(99), now.Add(time.Minute))
			if tr == nil || tr.Prefix != "+44 7800" || !tr.Until.Equal(now.Add(time.Hour)) {
				t.Fatalf("a send to the open prefix: %+v", tr)
			}
			if tr := send(t, b, "+447400999999", now.Add(time.Minute)); tr != nil {
				t.Fatalf("the healthy prefix was refused: %+v", tr)
			}
			st, err := b.Status(context.Background(), now.Add(time.Minute), false)
			if err != nil || len(st) != 1 || st[0].Prefix != "+44 7800" || st[0].State != BreakerOpen {
				t.Fatalf("Status = %+v, %v", st, err)
			}
			// An operator clears it.
			if ok, err := b.Clear(context.Background(), "+44 7800", now.Add(time.Minute)); !ok || err != nil {
				t.Fatalf("Clear: %v %v", ok, err)
			}
			if send(t, b, pumped(1), now.Add(time.Minute)) != nil {
				t.Fatal("Clear did not close the prefix")
			}
			if ok, _ := b.Clear(context.Background(), "+44 7800", now.Add(time.Minute)); ok {
				t.Fatal("Clear of a closed prefix reported it open")
			}
			if got := log.states(); !slices.Equal(got, []string{"+44 7800 open", "+44 7800 cleared"}) {
				t.Fatalf("changes %v", got)
			}
		})
	}
}

// TestBreakerHalfOpen: after the cooldown a few probes go out; used, they
// close the prefix; unused, it opens again.
func TestBreakerHalfOpen(t *testing.T) {
	for name, store := range breakerStores(t) {
		t.Run(name, func(t *testing.T) {
			var log changeLog
			b := &Breaker{MinSends: 10, MinConversion: 0.3, Window: time.Hour, HalfOpenProbes: 3, Store: store(), OnChange: log.hear}
			n := func(i int) string { return fmt.Sprintf("+1212555%04d", i) }
			for i := 0; i < 10; i++ {
				send(t, b, n(i), t0)
			}
			if send(t, b, n(10), t0) == nil {
				t.Fatal("not open")
			}
			// After the cooldown: three probes, then refused again.
			at := t0.Add(time.Hour)
			for i := 0; i < 3; i++ {
				if tr := send(t, b, n(20+i), at); tr != nil {
					t.Fatalf("probe %d refused: %+v", i, tr)
				}
			}
			tr := send(t, b, n(23), at)
			if tr == nil || tr.State != BreakerHalfOpen || !tr.Until.Equal(at.Add(time.Hour)) {
				t.Fatalf("a fourth send while half-open: %+v", tr)
			}
			// Nobody used them: open again after the probe window.
			at = at.Add(time.Hour)
			if tr := send(t, b, n(24), at); tr == nil || tr.State != BreakerOpen {
				t.Fatalf("unused probes: %+v", tr)
			}
			// The next probes are used: it closes and counts afresh.
			at = at.Add(time.Hour)
			send(t, b, n(30), at)
			send(t, b, n(31), at)
			validated(t, b, n(31), at)
			for i := 0; i < 9; i++ {
				if tr := send(t, b, n(40+i), at); tr != nil {
					t.Fatalf("closed again, send %d refused: %+v", i, tr)
				}
			}
			want := []string{"+1 2125 open", "+1 2125 half_open", "+1 2125 open", "+1 2125 half_open", "+1 2125 closed"}
			if got := log.states(); !slices.Equal(got, want) {
				t.Fatalf("changes %v, want %v", got, want)
			}
		})
	}
}

func TestBreakerTripsACountryOnMoreVolume(t *testing.T) {
	b := &Breaker{MinSends: 5, MinConversion: 0.5, Window: time.Hour, CountryFactor: 4}
	// Twenty prefixes of one send each: no prefix has the volume, the
	// country does.
	var refused *Trip
	for i := 0; i < 21 && refused == nil; i++ {
		refused = send(t, b, fmt.Sprintf("+3361%02d00000", i), t0)
	}
	if refused == nil || refused.Prefix != "+33" {
		t.Fatalf("the country did not trip: %+v", refused)
	}
	if send(t, b, "+14155552671", t0) != nil {
		t.Fatal("another country was refused")
	}
}

func TestNormalizeBreakerPrefix(t *testing.T) {
	for in, want := range map[string]string{"+44 7400": "+44 7400", "+447400": "+44 7400", "+44": "+44", " +1 212 5": "+1 2125", "+3361": "+33 61"} {
		if got, err := NormalizeBreakerPrefix(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "44 7400", "+", "+44x", "+999"} {
		if got, err := NormalizeBreakerPrefix(in); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

func TestEngineBreaker(t *testing.T) {
	f := newEngine(t)
	f.e.Breaker = &Breaker{MinSends: 10, MinConversion: 0.3, Window: time.Hour}
	ctx := context.Background()
	send := func(n string) (*tessera.Verification, error) {
		out, err := f.e.Initiate(ctx, owner, tessera.MethodPhone, &InitiateRequest{Consumer: n})
		if err != nil {
			return nil, err
		}
		return out.Verification, nil
	}
	// Healthy: every code is used.
	for i := 0; i < 30; i++ {
		v, err := send(fmt.Sprintf("+1415555%04d", i))
		if err != nil {
			t.Fatalf("healthy send %d: %v", i, err)
		}
		_, c := f.message(t, v.ID)
		if _, err := f.validate(tessera.MethodPhone, v.ID, sixDigits.FindString(c.Body)); err != nil {
			t.Fatalf("validate: %v", err)
		}
	}
	// Pumped: nobody types a code.
	for i := 0; i < 10; i++ {
		if _, err := send(fmt.Sprintf("+1212555%04d", i)); err != nil {
			t.Fatalf("pumped send %d: %v", i, err)
		}
	}
	_, err := send("+12125559999")
	if te, ok := err.(*tessera.Error); !ok || te.Code != tessera.ETOOMANY || te.RetryAfter != 3600 {
		t.Fatalf("the tripped prefix: %v", err)
	}
	// A voice call or WhatsApp message costs the same: refused too.
	if _, err := f.e.Initiate(ctx, owner, tessera.MethodCall, &InitiateRequest{Consumer: "+12125559998"}); tessera.ErrorCode(err) != tessera.ETOOMANY {
		t.Fatalf("a call to the tripped prefix: %v", err)
	}
	if _, err := send("+14155559999"); err != nil {
		t.Fatalf("the healthy prefix after the trip: %v", err)
	}
	// Email is not SMS.
	if _, err := f.e.Initiate(ctx, owner, tessera.MethodEmail, &InitiateRequest{Consumer: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
}

// TestBreakerSharedByTwoEnginesOnRedis: two instances (engines on their
// own databases) share the breaker through one Redis: the sends both see
// open it for both, each change is heard once, by the instance that made
// it, and a probe one validates closes it for the other.
func TestBreakerSharedByTwoEnginesOnRedis(t *testing.T) {
	client, prefix := testRedis(t)
	if client == nil {
		t.Skip("TESSERA_TEST_REDIS_URL is not set")
	}
	var logA, logB changeLog
	a, b := newEngine(t), newEngine(t)
	a.e.Breaker = &Breaker{MinSends: 10, MinConversion: 0.3, Window: time.Hour, HalfOpenProbes: 2, Store: &RedisBreakerStore{Client: client, Prefix: prefix}, OnChange: logA.hear}
	b.e.Breaker = &Breaker{MinSends: 10, MinConversion: 0.3, Window: time.Hour, HalfOpenProbes: 2, Store: &RedisBreakerStore{Client: client, Prefix: prefix}, OnChange: logB.hear}
	ctx := context.Background()
	initiate := func(f *engineFixture, n string) (*tessera.Verification, error) {
		out, err := f.e.Initiate(ctx, owner, tessera.MethodPhone, &InitiateRequest{Consumer: n})
		if err != nil {
			return nil, err
		}
		return out.Verification, nil
	}
	// Five sends on each instance: neither alone has the volume, together
	// they open the prefix.
	for i := 0; i < 10; i++ {
		f := a
		if i%2 == 1 {
			f = b
		}
		if _, err := initiate(f, fmt.Sprintf("+1212555%04d", i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	for _, f := range []*engineFixture{a, b} {
		if _, err := initiate(f, "+12125559999"); tessera.ErrorCode(err) != tessera.ETOOMANY {
			t.Fatalf("after the shared trip: %v", err)
		}
	}
	if got := append(logA.states(), logB.states()...); !slices.Equal(got, []string{"+1 2125 open"}) {
		t.Fatalf("changes heard: %v", got)
	}
	// Half-open on the test clock: each instance sends a probe, the
	// probes are used up for both, and when A's is typed the prefix
	// closes for B too.
	a.now, b.now = t0.Add(time.Hour), t0.Add(time.Hour)
	v, err := initiate(a, "+12125550100")
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, err := initiate(b, "+12125550101"); err != nil {
		t.Fatalf("second probe: %v", err)
	}
	if _, err := initiate(b, "+12125550102"); tessera.ErrorCode(err) != tessera.ETOOMANY {
		t.Fatalf("a third send while half-open with two probes: %v", err)
	}
	_, c := a.message(t, v.ID)
	if _, err := a.validate(tessera.MethodPhone, v.ID, sixDigits.FindString(c.Body)); err != nil {
		t.Fatal(err)
	}
	if _, err := initiate(b, "+12125550103"); err != nil {
		t.Fatalf("after a probe was used: %v", err)
	}
	all := append(logA.states(), logB.states()...)
	slices.Sort(all)
	if want := []string{"+1 2125 closed", "+1 2125 half_open", "+1 2125 open"}; !slices.Equal(all, want) {
		t.Fatalf("changes heard: %v, want each once: %v", all, want)
	}
	// The keys are under the prefix.
	keys, err := client.Keys(ctx, prefix+"sms-breaker:*").Result()
	if err != nil || !slices.Contains(keys, prefix+"sms-breaker:+1 2125") {
		t.Fatalf("keys %v, %v", keys, err)
	}
}

// TestBreakerRedisCountsParallelSends: sends of two instances at once are
// all counted, none lost to the other's update.
func TestBreakerRedisCountsParallelSends(t *testing.T) {
	client, prefix := testRedis(t)
	if client == nil {
		t.Skip("TESSERA_TEST_REDIS_URL is not set")
	}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		b := &Breaker{MinSends: 1000, MinConversion: 0.2, Window: time.Hour, Store: &RedisBreakerStore{Client: client, Prefix: prefix}}
		for j := 0; j < 20; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := b.Send(context.Background(), fmt.Sprintf("+4474001%02d%03d", i, j), t0); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	b := &Breaker{MinSends: 1000, MinConversion: 0.2, Window: time.Hour, Store: &RedisBreakerStore{Client: client, Prefix: prefix}}
	st, err := b.Status(context.Background(), t0, true)
	if err != nil || len(st) != 2 || st[0].Sends != 40 || st[1].Sends != 40 {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// TestBreakerOnRedisJudgesOnRedisClock: a prefix one instance opened stays
// open for an instance whose clock runs an hour ahead (on its own clock
// the cooldown is over), and that instance's Retry-After is the cooldown
// left, not an hour less.
func TestBreakerOnRedisJudgesOnRedisClock(t *testing.T) {
	client, prefix := testRedis(t)
	if client == nil {
		t.Skip("TESSERA_TEST_REDIS_URL is not set")
	}
	newBreaker := func(skew time.Duration) *Breaker {
		wall := func() time.Time { return time.Now().Add(skew) }
		return &Breaker{MinSends: 5, MinConversion: 0.5, Window: time.Hour, Cooldown: 30 * time.Minute,
			Store: &RedisBreakerStore{Client: client, Prefix: prefix, Wall: wall}}
	}
	onTime, ahead := newBreaker(0), newBreaker(time.Hour)
	for i := 0; i < 5; i++ {
		send(t, onTime, fmt.Sprintf("+4474001%05d", i), time.Now())
	}
	now := time.Now().Add(time.Hour) // the instance ahead asks at its own now
	tr := send(t, ahead, "+447400199999", now)
	if tr == nil || tr.State != BreakerOpen {
		t.Fatalf("the instance an hour ahead sent into an open prefix: %+v", tr)
	}
	if left := tr.Until.Sub(now); left < 29*time.Minute || left > 30*time.Minute {
		t.Fatalf("open for %v more on the instance's own clock, want about 30m", left)
	}
	st, err := ahead.Status(context.Background(), now, false)
	if err != nil || len(st) != 1 || st[0].State != BreakerOpen {
		t.Fatalf("status on the instance ahead: %+v, %v", st, err)
	}
}
