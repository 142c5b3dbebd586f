package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base32"
	bin "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/storetest"
)

// TestSeveralInstances runs three Tessera processes on one PostgreSQL
// database and one Redis, as behind a load balancer, and shows that state
// and every limit are shared: a verification started on one validates on
// another; the attempts cap, TOTP replay protection, refresh-token reuse
// detection and rate limits hold across them; an outbox message is sent by
// one instance only.
func TestSeveralInstances(t *testing.T) {
	t.Parallel() // mostly waits (for a timeout, a cache, a lease): let the others run
	redisURL := storetest.RedisURL(t)
	if redisURL == "" {
		t.Skip(storetest.RedisEnv + " not set")
	}
	dsn := storetest.PostgresSchema(t) // skips without PostgreSQL

	hook := newCountingReceiver()
	srv := httptest.NewServer(hook)
	defer srv.Close()

	prefix := make([]byte, 6)
	rand.Read(prefix)
	env := []string{
		"TESSERA_DATABASE_URL=" + dsn,
		"TESSERA_HMAC_KEY=iozc/to1PtvZfluMcTHEoOR8E2chhABeoIWmgF8L1xo=",
		"TESSERA_ENCRYPTION_KEYS=k1:tAzLQHJ1/w1voIPFSvoUldS+qiztdBPzJJQ9ksVf8Pg=",
		"TESSERA_REDIS_URL=" + redisURL, "TESSERA_REDIS_PREFIX=test-" + hex.EncodeToString(prefix) + ":",
		"TESSERA_LIMIT_IP=6/m", "TESSERA_REFRESH_GRACE=1s",
		"TESSERA_EMAIL_SENDER=webhook", "TESSERA_WEBHOOK_URL=" + srv.URL,
		"TESSERA_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	}
	dir := t.TempDir()
	out, err := command(dir, []string{"client", "create", "shop"}, env...).Output()
	if err != nil {
		t.Fatalf("client create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	token := lines[len(lines)-1]
	create := command(dir, []string{"user", "create", "multi@example.com"}, env...)
	create.Stdin = strings.NewReader("a long shared secret\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("user create: %v\n%s", err, out)
	}
	var inst [3]*server
	for i := range inst {
		inst[i] = startServer(t, t.TempDir(), env...)
	}

	t.Run("a verification started on one validates on another", func(t *testing.T) {
		status, body := inst[0].post(t, "/methods/email/actions/initiate", token, `{"consumer":"m1@example.com","policy":{"forcedCode":"902341"}}`)
		if status != 200 {
			t.Fatalf("initiate: %d %v", status, body)
		}
		if status, body := inst[1].post(t, "/methods/email/verifiers/"+body["verificationId"].(string)+"/actions/validate", token, `{"code":"902341"}`); status != 200 {
			t.Fatalf("validate on another instance: %d %v", status, body)
		}
	})

	t.Run("the attempts cap holds across instances", func(t *testing.T) {
		_, body := inst[0].post(t, "/methods/email/actions/initiate", token, `{"consumer":"m2@example.com","policy":{"forcedCode":"111111","maxAttempts":3}}`)
		id := body["verificationId"].(string)
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for i := 0; i < 30; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, b := inst[i%3].post(t, "/methods/email/verifiers/"+id+"/actions/validate", token, `{"code":"222222"}`)
				mu.Lock()
				counts[fmt.Sprint(b["code"])]++
				mu.Unlock()
			}(i)
		}
		wg.Wait()
		if counts["invalid_code"] != 3 || counts["locked"] != 27 {
			t.Fatalf("30 wrong codes over three instances: %v, want 3 counted and 27 locked", counts)
		}
		if status, _ := inst[2].post(t, "/methods/email/verifiers/"+id+"/actions/validate", token, `{"code":"111111"}`); status != 422 {
			t.Fatalf("the right code after the cap answered %d", status)
		}
	})

	t.Run("a TOTP code is accepted once, whichever instance sees it", func(t *testing.T) {
		_, body := inst[0].post(t, "/methods/google_auth/actions/initiate", token, `{"consumer":"m3@example.com","issuer":"Acme"}`)
		u, _ := url.Parse(body["totpUri"].(string))
		code := totp(u.Query().Get("secret"), time.Now())
		if status, b := inst[1].post(t, "/methods/google_auth/verifiers/"+body["verificationId"].(string)+"/actions/validate", token, `{"code":"`+code+`"}`); status != 200 {
			t.Fatalf("first use: %d %v", status, b)
		}
		_, again := inst[2].post(t, "/methods/google_auth/actions/initiate", token, `{"consumer":"m3@example.com","issuer":"Acme"}`)
		if status, _ := inst[0].post(t, "/methods/google_auth/verifiers/"+again["verificationId"].(string)+"/actions/validate", token, `{"code":"`+code+`"}`); status != 422 {
			t.Fatalf("the same TOTP code on another instance answered %d, want 422", status)
		}
	})

	t.Run("refresh-token reuse is caught across instances", func(t *testing.T) {
		_, login := inst[0].post(t, "/auth/login", "", `{"email":"multi@example.com","password":"a long shared secret"}`)
		first := login["refreshToken"].(string)
		status, rotated := inst[1].post(t, "/auth/login/refresh", "", `{"refreshToken":"`+first+`"}`)
		if status != 200 {
			t.Fatalf("refresh: %d %v", status, rotated)
		}
		time.Sleep(1500 * time.Millisecond) // past TESSERA_REFRESH_GRACE
		if status, _ := inst[2].post(t, "/auth/login/refresh", "", `{"refreshToken":"`+first+`"}`); status != 401 {
			t.Fatalf("reusing a spent token on a third instance answered %d", status)
		}
		if status, _ := inst[0].post(t, "/auth/login/refresh", "", `{"refreshToken":"`+rotated["refreshToken"].(string)+`"}`); status != 401 {
			t.Fatalf("after reuse the session still refreshes (%d)", status)
		}
	})

	t.Run("rate limits are shared through Redis", func(t *testing.T) {
		// TESSERA_LIMIT_IP=6/m; the logins above used 2 of them.
		statuses := []int{}
		for i := 0; i < 6; i++ {
			status, _ := inst[i%3].post(t, "/auth/login", "", `{"email":"nobody@example.com","password":"whatever it is"}`)
			statuses = append(statuses, status)
		}
		refused := 0
		for _, s := range statuses {
			if s == 429 {
				refused++
			}
		}
		if refused < 2 {
			t.Fatalf("statuses %v: the per-IP limit did not hold across instances", statuses)
		}
	})

	t.Run("each outbox message is sent by one instance", func(t *testing.T) {
		const n = 15
		for i := 0; i < n; i++ {
			if status, b := inst[i%3].post(t, "/methods/email/actions/initiate", token, fmt.Sprintf(`{"consumer":"out%d@example.com"}`, i)); status != 200 {
				t.Fatalf("initiate %d: %d %v", i, status, b)
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for hook.distinct("out") < n && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Second) // room for a duplicate to show up
		if got := hook.distinct("out"); got != n {
			t.Fatalf("%d of %d messages arrived", got, n)
		}
		if dup := hook.duplicates(); len(dup) > 0 {
			t.Fatalf("messages sent more than once: %v", dup)
		}
	})
}

// countingReceiver counts webhook deliveries per webhook-id.
type countingReceiver struct {
	mu   sync.Mutex
	seen map[string]int    // webhook-id → deliveries
	to   map[string]string // webhook-id → recipient
}

func newCountingReceiver() *countingReceiver {
	return &countingReceiver{seen: map[string]int{}, to: map[string]string{}}
}

func (c *countingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg struct {
		Data struct{ To string } `json:"data"`
	}
	json.Unmarshal(body, &msg)
	c.mu.Lock()
	id := r.Header.Get("webhook-id")
	c.seen[id]++
	c.to[id] = msg.Data.To
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (c *countingReceiver) distinct(toPrefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id := range c.seen {
		if strings.HasPrefix(c.to[id], toPrefix) {
			n++
		}
	}
	return n
}

func (c *countingReceiver) duplicates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id, n := range c.seen {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s×%d", c.to[id], n))
		}
	}
	return out
}

// totp is RFC 6238 (SHA1, 6 digits, 30 s), written from the RFC.
func totp(secret string, now time.Time) string {
	key, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	var msg [8]byte
	bin.BigEndian.PutUint64(msg[:], uint64(now.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	return fmt.Sprintf("%06d", (bin.BigEndian.Uint32(sum[off:off+4])&0x7fffffff)%1_000_000)
}
