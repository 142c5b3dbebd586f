package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tessera-id/tessera/internal/storetest"
	"github.com/tessera-id/tessera/internal/verify"
)

// TestSMSBreakerCommand: an operator sees the prefix the instances opened
// in Redis, clears it, and the clearing is in the audit log.
func TestSMSBreakerCommand(t *testing.T) {
	redisURL := storetest.RedisURL(t)
	if redisURL == "" {
		t.Skip(storetest.RedisEnv + " not set")
	}
	dir := t.TempDir()
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "test-" + hex.EncodeToString(b) + ":"
	env := []string{"TESSERA_REDIS_URL=" + redisURL, "TESSERA_REDIS_PREFIX=" + prefix, "TESSERA_SMS_BREAKER=10,0.2,1h"}
	run := func(args ...string) (string, error) {
		out, err := command(dir, args, env...).CombinedOutput()
		return string(out), err
	}

	// No serve has made this data directory: make it as an operator would.
	if out, err := command(dir, []string{"migrate", "--init"}).CombinedOutput(); err != nil {
		t.Fatalf("migrate --init: %v\n%s", err, out)
	}
	// Without Redis the command says where the state is.
	if out, err := command(dir, []string{"sms-breaker", "status"}).CombinedOutput(); err != nil || !strings.Contains(string(out), "TESSERA_REDIS_URL") {
		t.Fatalf("status without Redis: %v\n%s", err, out)
	}
	if out, err := command(dir, []string{"sms-breaker", "clear", "+44 7800"}).CombinedOutput(); err == nil || !strings.Contains(string(out), "TESSERA_REDIS_URL") {
		t.Fatalf("clear without Redis: %v\n%s", err, out)
	}
	if out, err := run("sms-breaker", "status"); err != nil || !strings.Contains(out, "No prefix is open") {
		t.Fatalf("status before any trip: %v\n%s", err, out)
	}

	// An instance opens +44 7800 in the shared Redis.
	opts, _ := redis.ParseURL(redisURL)
	client := redis.NewClient(opts)
	defer client.Close()
	t.Cleanup(func() {
		keys, _ := client.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
	})
	br := &verify.Breaker{MinSends: 10, MinConversion: 0.2, Window: time.Hour, Store: &verify.RedisBreakerStore{Client: client, Prefix: prefix}}
	for i := 0; i < 10; i++ {
		if _, err := br.Send(context.Background(), fmt.Sprintf("+4478001%05d", i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if tr, _ := br.Send(context.Background(), "+447800199999", time.Now()); tr == nil {
		t.Fatal("the prefix did not open")
	}

	out, err := run("sms-breaker", "status")
	if err != nil || !strings.Contains(out, "+44 7800") || !strings.Contains(out, "open") || !strings.Contains(out, "0%") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if out, err := run("sms-breaker", "status", "+447400"); err != nil || !strings.Contains(out, "+44 7400 is closed") {
		t.Fatalf("status of a healthy prefix: %v\n%s", err, out)
	}
	if out, err := run("sms-breaker", "clear", "+44 78 00"); err != nil || !strings.Contains(out, "Cleared +44 7800") {
		t.Fatalf("clear: %v\n%s", err, out)
	}
	if tr, _ := br.Send(context.Background(), "+447800199999", time.Now()); tr != nil {
		t.Fatalf("still refused after clear: %+v", tr)
	}
	if out, err := run("sms-breaker", "status"); err != nil || !strings.Contains(out, "No prefix is open") {
		t.Fatalf("status after clear: %v\n%s", err, out)
	}
	if out, err := run("audit", "--kind", "sms_breaker.cleared"); err != nil || !strings.Contains(out, "+44 7800: cleared by an operator") {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	if out, err := run("sms-breaker", "clear", "44"); err == nil || !strings.Contains(out, "is not a prefix") {
		t.Fatalf("a prefix without +: %v\n%s", err, out)
	}
}
