package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/password"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/storetest"
)

// stores lists the stores every scenario runs on. PostgreSQL skips without
// TESSERA_TEST_POSTGRES_URL.
var stores = []struct {
	name string
	open func(t testing.TB) app.Storage
}{
	{"sqlite", func(t testing.TB) app.Storage { return storetest.OpenSQLite(t) }},
	{"postgres", func(t testing.TB) app.Storage { return storetest.OpenPostgres(t) }},
}

// onEachStore runs fn once per store.
func onEachStore(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			fn(t, newEnv(t, s.open(t)))
		})
	}
}

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a whole Tessera behind a real HTTP server, delivering through the
// real log sender into a buffer the test reads like an inbox.
type env struct {
	t      *testing.T
	app    *app.App
	srv    *httptest.Server
	clock  *clock
	store  app.Storage
	token  string
	outbox *lockedBuffer
	read   int // bytes of outbox already read
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func newEnv(t *testing.T, store app.Storage) *env {
	t.Helper()
	key := func() []byte { b := make([]byte, 32); rand.Read(b); return b }
	keys, err := secret.NewKeyring(key(), []secret.Key{{ID: "k1", Key: key()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clock: &clock{t: time.Now().UTC().Truncate(time.Second)}, store: store, outbox: &lockedBuffer{}}
	sender := deliver.NewLogSender(e.outbox)
	e.app = app.New(app.Options{
		Store: store, Keys: keys, Now: e.clock.Now,
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Senders: map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: sender, tessera.ChannelSMS: sender},
		// Cheap password hashing: the tests check behaviour, not cost.
		PasswordParams: password.Params{Memory: 64, Time: 1, Threads: 1},
	})
	if err := e.app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.app.HTTP)
	t.Cleanup(e.srv.Close)
	e.token = e.newClient("test-client")
	return e
}

func (e *env) newClient(name string) string {
	e.t.Helper()
	_, token, err := e.app.Clients.Create(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return token
}

// response is a decoded JSON answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request with the env's token and a JSON body (a string is
// sent as is, anything else is marshalled).
func (e *env) do(method, path string, body any) *response {
	e.t.Helper()
	return e.doWith(method, path, body, map[string]string{"Authorization": "Bearer " + e.token})
}

func (e *env) doWith(method, path string, body any, headers map[string]string) *response {
	e.t.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = strings.NewReader(b)
	case []byte:
		rdr = bytes.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rdr = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rdr)
	if err != nil {
		e.t.Fatal(err)
	}
	if rdr != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := &response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Fatalf("%s %s: Content-Type %q, want JSON; body %s", method, path, ct, raw)
	}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		e.t.Fatalf("%s %s: body is not a JSON object: %s", method, path, raw)
	}
	// The verification API and every error carry the HTTP status in the
	// body; the accounts API's success bodies follow its reference, where
	// "status" is the user's status.
	if got, isNumber := out.body["status"].(float64); (isNumber || res.StatusCode >= 400 || !strings.HasPrefix(path, "/auth/") && !strings.HasPrefix(path, "/api/v1/")) && got != float64(res.StatusCode) {
		e.t.Fatalf("%s %s: body status %v, HTTP status %d", method, path, got, res.StatusCode)
	}
	return out
}

func (r *response) want(t *testing.T, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	return r
}

func (r *response) str(key string) string { s, _ := r.body[key].(string); return s }

func (r *response) data() map[string]any { d, _ := r.body["data"].(map[string]any); return d }

// detail returns the first details entry's path and error.
func (r *response) detail() (string, string) {
	ds, _ := r.body["details"].([]any)
	if len(ds) == 0 {
		return "", ""
	}
	d := ds[0].(map[string]any)
	return d["path"].(string), d["error"].(string)
}

// delivered is one message as the log sender wrote it.
type delivered struct {
	Channel, To, Subject, Body string
}

// deliver runs the outbox worker once and returns the messages it sent.
func (e *env) deliver() []delivered {
	e.t.Helper()
	e.app.Accounts.Drain() // sends that run after their request was answered
	if _, err := e.app.Worker.DeliverDue(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	all := e.outbox.String()
	fresh := all[e.read:]
	e.read = len(all)
	var out []delivered
	sc := bufio.NewScanner(strings.NewReader(fresh))
	for sc.Scan() {
		var m delivered
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			e.t.Fatalf("log sender wrote a line that is not JSON: %s", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// codeFor delivers pending messages and returns the 6-digit code from the
// one sent to `to`, as a person reading it would.
func (e *env) codeFor(to string) string {
	e.t.Helper()
	for _, m := range e.deliver() {
		if m.To == to {
			if c := sixDigits.FindString(m.Body); c != "" {
				return c
			}
			e.t.Fatalf("message to %s has no code: %q", to, m.Body)
		}
	}
	e.t.Fatalf("no message was delivered to %s", to)
	return ""
}
