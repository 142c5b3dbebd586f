// Package ratelimit limits how often things may happen: per client IP, per
// API client, per destination, per country. Two backends implement one
// interface with the same algorithm (GCRA, the generic cell rate
// algorithm): in memory for a single instance, and in Redis (redis_rate)
// so several instances share every limit.
package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limit allows Rate events per Period, in bursts of up to Burst.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// Disabled is a limit switched off on purpose, unlike the zero Limit,
// which callers may read as "not set".
var Disabled = Limit{Rate: -1}

// Off reports whether the limit allows everything.
func (l Limit) Off() bool { return l.Rate <= 0 || l.Period <= 0 }

func (l Limit) String() string {
	if l.Off() {
		return "off"
	}
	return fmt.Sprintf("%d/%s burst %d", l.Rate, l.Period, l.Burst)
}

// Parse reads a limit written as "RATE/PERIOD" or "RATE/PERIOD,BURST", the
// period a Go duration or s, m, h, d ("10/m", "50/24h", "30/15m,30"). The
// burst defaults to the rate. "off" disables the limit (as Disabled).
func Parse(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Disabled, nil
	}
	spec, burstText, hasBurst := strings.Cut(s, ",")
	rateText, periodText, ok := strings.Cut(spec, "/")
	rate, err := strconv.Atoi(strings.TrimSpace(rateText))
	if !ok || err != nil || rate < 1 {
		return Limit{}, fmt.Errorf("want RATE/PERIOD[,BURST] such as 10/m, not %q", s)
	}
	periodText = strings.TrimSpace(periodText)
	var period time.Duration
	switch periodText {
	case "s":
		period = time.Second
	case "m":
		period = time.Minute
	case "h":
		period = time.Hour
	case "d":
		period = 24 * time.Hour
	default:
		if period, err = time.ParseDuration(periodText); err != nil || period <= 0 {
			return Limit{}, fmt.Errorf("bad period in %q: use s, m, h, d or a duration such as 15m", s)
		}
	}
	burst := rate
	if hasBurst {
		if burst, err = strconv.Atoi(strings.TrimSpace(burstText)); err != nil || burst < 1 {
			return Limit{}, fmt.Errorf("bad burst in %q", s)
		}
	}
	return Limit{Rate: rate, Period: period, Burst: burst}, nil
}

// Result is the outcome of Allow.
type Result struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration // when not allowed: how long until one event is
}

// Limiter counts events per key.
type Limiter interface {
	// Allow counts one event for key if limit allows it now.
	Allow(ctx context.Context, key string, limit Limit) (Result, error)
}

// Memory is a Limiter for one instance.
type Memory struct {
	Now func() time.Time

	mu  sync.Mutex
	tat map[string]time.Time // theoretical arrival time of the next event, per key
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns an in-memory limiter on clock now (time.Now if nil).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{Now: now, tat: map[string]time.Time{}}
}

// maxKeys bounds memory: past it, keys whose state has fully decayed are
// dropped.
const maxKeys = 100_000

// Allow applies GCRA: each event moves the key's theoretical arrival time
// one emission interval (Period/Rate) ahead; an event is allowed while that
// time is no more than Burst intervals ahead of now.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	if l.Off() {
		return Result{Allowed: true}, nil
	}
	now := m.Now()
	interval := l.Period / time.Duration(l.Rate)
	tolerance := interval * time.Duration(l.Burst)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.tat) > maxKeys {
		for k, t := range m.tat {
			if t.Before(now) {
				delete(m.tat, k)
			}
		}
	}
	tat := m.tat[key]
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	allowAt := next.Add(-tolerance)
	if now.Before(allowAt) {
		return Result{RetryAfter: allowAt.Sub(now)}, nil
	}
	m.tat[key] = next
	return Result{Allowed: true, Remaining: int(now.Sub(allowAt) / interval)}, nil
}

// Redis is a Limiter shared by every instance using the same Redis.
type Redis struct {
	limiter *redis_rate.Limiter
	prefix  string
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter on the Redis at url ("redis://host:6379/0"),
// keys prefixed with prefix. It checks the server answers.
func NewRedis(ctx context.Context, url, prefix string) (*Redis, *redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, fmt.Errorf("redis url: %w", err)
	}
	client := redis.NewClient(opts)
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("redis: %w", err)
	}
	return &Redis{limiter: redis_rate.NewLimiter(client), prefix: prefix}, client, nil
}

// Allow counts an event in Redis (GCRA in a Lua script, atomic across
// instances).
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	if l.Off() {
		return Result{Allowed: true}, nil
	}
	res, err := r.limiter.Allow(ctx, r.prefix+key, redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: l.Burst})
	if err != nil {
		return Result{}, fmt.Errorf("redis rate limit: %w", err)
	}
	out := Result{Allowed: res.Allowed > 0, Remaining: res.Remaining}
	if !out.Allowed {
		out.RetryAfter = res.RetryAfter
	}
	return out, nil
}
