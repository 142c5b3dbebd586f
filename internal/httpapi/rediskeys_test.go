package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/ratelimit"
	"github.com/tessera-id/tessera/internal/storetest"
)

// TestRedisKeysHoldNoAddresses sends codes to an email address and a phone
// number with the limits in the real Redis, then SCANs it: every key
// written starts with TESSERA_REDIS_PREFIX, and none holds the address,
// the number, the client's IP or the client's id.
func TestRedisKeysHoldNoAddresses(t *testing.T) {
	url := storetest.RedisURL(t)
	if url == "" {
		t.Skip(storetest.RedisEnv + " is not set")
	}
	b := make([]byte, 6)
	rand.Read(b)
	tag := hex.EncodeToString(b)
	prefix := "tessera-" + tag + ":"
	email := "person." + tag + "@example.com"
	phone := fmt.Sprintf("+1415555%04d", (int(b[0])<<8|int(b[1]))%10000)
	var rdb *redis.Client
	e := newEnvWith(t, storetest.OpenSQLite(t), func(o *app.Options) {
		r, c, err := ratelimit.NewRedis(context.Background(), url, prefix, o.Keys.MAC)
		if err != nil {
			t.Fatal(err)
		}
		rdb, o.Limiter = c, r
	})
	defer rdb.Close()

	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": email}).want(t, 200)
	e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": phone}).want(t, 200)
	e.do("POST", "/auth/login", map[string]any{"email": email, "password": "not the password"})
	e.codeFor(email)

	var ours []string
	iter := rdb.Scan(context.Background(), 0, "*", 1000).Iterator()
	for iter.Next(context.Background()) {
		k := iter.Val()
		if strings.Contains(k, email) || strings.Contains(k, strings.ToLower(email)) {
			t.Errorf("Redis key %q holds the email address", k)
		}
		if strings.Contains(k, prefix) {
			ours = append(ours, k)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	// The client's id and the IP: a key of this test must not name them.
	c, err := e.app.Clients.Find(context.Background(), "test-client")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keys under the prefix: %q", ours)
	// dest-hour, dest-day (email, phone), sms-country, client, ip at least.
	if len(ours) < 6 {
		t.Fatalf("only %d keys carry the prefix: %q", len(ours), ours)
	}
	for _, k := range ours {
		if !strings.HasPrefix(k, prefix+"rate:") {
			t.Errorf("key %q does not start with the prefix %q", k, prefix)
		}
		for _, private := range []string{phone, phone[1:], c.ID, "127.0.0.1", "::1"} {
			if strings.Contains(k, private) {
				t.Errorf("key %q holds %q", k, private)
			}
		}
	}
	if len(ours) > 0 {
		rdb.Del(context.Background(), ours...)
	}
}
