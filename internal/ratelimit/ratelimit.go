// Package ratelimit limits how often things may happen: per client IP, per
// API client, per destination, per country. Two backends implement one
// interface with the same algorithm (GCRA, the generic cell rate
// algorithm): in memory for a single instance, and in Redis (redis_rate)
// so several instances share every limit.
package ratelimit

import (
	"context"
	"encoding/base64"
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
//
// Its keys name no person: a limit's key holds email addresses, phone
// numbers, IP addresses and user ids, and Redis is often shared, dumped
// and inspected, so the key is stored as an HMAC under the server key,
// after the kind of limit ("dest-hour", "ip", …) and the operator's
// prefix: "tessera:rate:dest-hour:<HMAC>". Every instance has the same
// server key, so they count on the same keys.
type Redis struct {
	limiter *redis_rate.Limiter
	hash    func(parts ...string) []byte
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a limiter on the Redis at url ("redis://host:6379/0"),
// every key starting with prefix and hashed with hash (the server's
// Keyring.MAC). It checks the server answers.
func NewRedis(ctx context.Context, url, prefix string, hash func(parts ...string) []byte) (*Redis, *redis.Client, error) {
	if hash == nil {
		return nil, nil, fmt.Errorf("redis: no key to hash limit keys with")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, fmt.Errorf("redis url: %w", err)
	}
	client := redis.NewClient(opts)
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("redis: %w", err)
	}
	return &Redis{limiter: redis_rate.NewLimiter(prefixed{client, prefix}), hash: hash}, client, nil
}

// RedisKey is what key is stored as, after the prefix and redis_rate's
// "rate:": its kind (the text before the first ':', a fixed word) and the
// HMAC of the whole key.
func (r *Redis) RedisKey(key string) string {
	kind, _, _ := strings.Cut(key, ":")
	if len(kind) > 32 {
		kind = "key"
	}
	return kind + ":" + base64.RawURLEncoding.EncodeToString(r.hash("ratelimit", key)[:18])
}

// Allow counts an event in Redis (GCRA in a Lua script, atomic across
// instances).
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	if l.Off() {
		return Result{Allowed: true}, nil
	}
	res, err := r.limiter.Allow(ctx, r.RedisKey(key), redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: l.Burst})
	if err != nil {
		return Result{}, fmt.Errorf("redis rate limit: %w", err)
	}
	out := Result{Allowed: res.Allowed > 0, Remaining: res.Remaining}
	if !out.Allowed {
		out.RetryAfter = res.RetryAfter
	}
	return out, nil
}

// prefixed puts prefix before every key redis_rate uses, which itself
// only adds "rate:", so TESSERA_REDIS_PREFIX is a true prefix of every
// key Tessera writes.
type prefixed struct {
	*redis.Client
	prefix string
}

func (p prefixed) keys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = p.prefix + k
	}
	return out
}

func (p prefixed) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.Client.Eval(ctx, script, p.keys(keys), args...)
}

func (p prefixed) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.Client.EvalSha(ctx, sha1, p.keys(keys), args...)
}

func (p prefixed) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.Client.EvalRO(ctx, script, p.keys(keys), args...)
}

func (p prefixed) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.Client.EvalShaRO(ctx, sha1, p.keys(keys), args...)
}

func (p prefixed) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return p.Client.Del(ctx, p.keys(keys)...)
}
