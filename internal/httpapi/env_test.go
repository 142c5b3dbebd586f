package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/httpapi"
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

// onEachStore runs fn once per store, the stores side by side: each run
// has an env of its own, and PostgreSQL's round trips leave the CPU to
// SQLite's run meanwhile.
func onEachStore(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
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

	// violations holds, by X-Request-Id, what the OpenAPI check found
	// wrong with an exchange; doWith fails the test with it.
	violations sync.Map
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

func newEnv(t *testing.T, store app.Storage) *env { return newEnvWith(t, store, nil) }

// newEnvWith is newEnv with a hook to adjust the app's options.
func newEnvWith(t *testing.T, store app.Storage, adjust func(*app.Options)) *env {
	t.Helper()
	key := func() []byte { b := make([]byte, 32); rand.Read(b); return b }
	keys, err := secret.NewKeyring(key(), []secret.Key{{ID: "k1", Key: key()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clock: &clock{t: time.Now().UTC().Truncate(time.Second)}, store: store, outbox: &lockedBuffer{}}
	sender := deliver.NewLogSender(e.outbox)
	opts := app.Options{
		Store: store, Keys: keys, Now: e.clock.Now,
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Senders: map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: sender, tessera.ChannelSMS: sender},
		// Cheap password hashing: the tests check behaviour, not cost.
		PasswordParams: password.Params{Memory: 64, Time: 1, Threads: 1},
		// Logins from new devices are told to the user; the tests log in
		// from many "devices", and TestNewDeviceNotice turns it on.
		NoNewDeviceNotices: true,
	}
	if adjust != nil {
		adjust(&opts)
	}
	e.app = app.New(opts)
	if err := e.app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	spec := loadOpenAPI(t)
	// Runs after the server is closed: reports what doWith did not see
	// (requests sent some other way, such as http.Get).
	t.Cleanup(func() {
		e.violations.Range(func(_, msg any) bool { t.Errorf("%s", msg); return true })
	})
	e.srv = httptest.NewServer(e.checkedAgainst(spec, e.app.HTTP))
	t.Cleanup(e.srv.Close)
	name := "test-client"
	if _, err := e.app.Clients.Find(context.Background(), name); err == nil {
		// A second env on the same store (a restart with other options).
		name = fmt.Sprintf("test-client-%d", time.Now().UnixNano())
	}
	e.token = e.newClient(name)
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
	if msg, found := e.violations.LoadAndDelete(res.Header.Get("X-Request-Id")); found {
		e.t.Fatalf("%s", msg)
	}
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
// first one sent to `to` that has a code, as a person reading their inbox
// would, skipping security notices.
func (e *env) codeFor(to string) string {
	e.t.Helper()
	var bodies []string
	for _, m := range e.deliver() {
		if m.To == to {
			if c := sixDigits.FindString(m.Body); c != "" {
				return c
			}
			bodies = append(bodies, m.Body)
		}
	}
	if len(bodies) > 0 {
		e.t.Fatalf("no message to %s has a code: %q", to, bodies)
	}
	e.t.Fatalf("no message was delivered to %s", to)
	return ""
}

// ---- every exchange is checked against the OpenAPI document ----

// openapiSpec is internal/httpapi/openapi.json, loaded and validated once.
type openapiSpec struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
}

var (
	openapiOnce   sync.Once
	openapiLoaded *openapiSpec
	openapiErr    error
)

var uuidFormat = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

// loadOpenAPI loads the document, validates it as OpenAPI 3.1 and builds a
// router for it; the test fails if any of that does not work.
func loadOpenAPI(t testing.TB) *openapiSpec {
	t.Helper()
	openapiOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(httpapi.OpenAPI())
		if err != nil {
			openapiErr = fmt.Errorf("load: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			openapiErr = fmt.Errorf("validate: %w", err)
			return
		}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			openapiErr = fmt.Errorf("router: %w", err)
			return
		}
		// The reference page and the passkey page are text/html and
		// text/javascript, which kin-openapi has no decoders for.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
		openapi3filter.RegisterBodyDecoder("text/javascript", openapi3filter.FileBodyDecoder)
		openapi3filter.RegisterBodyDecoder("text/css", openapi3filter.FileBodyDecoder)
		openapi3filter.RegisterBodyDecoder("text/plain", openapi3filter.FileBodyDecoder)
		openapiLoaded = &openapiSpec{doc: doc, router: router, opts: &openapi3filter.Options{
			IncludeResponseStatus:             true, // an undocumented status fails
			RejectWhenRequestBodyNotSpecified: true,
			SkipSettingDefaults:               true,
			AuthenticationFunc:                bearerPresent,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{
				openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(uuidFormat)),
			},
		}}
	})
	if openapiErr != nil {
		t.Fatalf("internal/httpapi/openapi.json: %v", openapiErr)
	}
	return openapiLoaded
}

// bearerPresent is the security check of the document: a bearer token must
// be there. Whether it is a valid one is the server's business; the tests
// send bad tokens on purpose.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme.Type != "http" || !strings.EqualFold(in.SecurityScheme.Scheme, "bearer") {
		return fmt.Errorf("security scheme %s: only http bearer is checked", in.SecuritySchemeName)
	}
	scheme, token, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return fmt.Errorf("%s: no Authorization: Bearer <token>", in.SecuritySchemeName)
	}
	return nil
}

// checkedAgainst wraps h so that every exchange is checked against the
// document. What is wrong is kept by the answer's X-Request-Id, for doWith
// to fail the test with (or the cleanup, for other requests).
func (e *env) checkedAgainst(spec *openapiSpec, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		check := r.Clone(context.Background())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if msg := spec.check(check, reqBody, rec.Code, rec.Header(), rec.Body.Bytes()); msg != "" {
			e.violations.Store(rec.Header().Get("X-Request-Id"), msg)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

// check returns what is wrong with one exchange, or "".
//
// A request that does not match the document is one a test sends on
// purpose (malformed JSON, a wrong type, no token, an unknown route): its
// answer must be a 4xx, and it must still match the document. A request
// that matches must get an answer the document describes for its
// operation: a documented status, headers and body.
func (s *openapiSpec) check(r *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) string {
	ctx := context.Background()
	what := r.Method + " " + r.URL.RequestURI()
	// A CORS preflight is the middleware's, for every path of the accounts
	// API, and no operation of the document: 204 when the origin is
	// allowed, the error shape when not (or 405 with CORS off).
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" && status == http.StatusNoContent {
		if len(respBody) > 0 {
			return fmt.Sprintf("openapi: %s → 204 with a body: %s", what, clipBody(respBody))
		}
		return ""
	}
	if r.Method == http.MethodOptions && status == http.StatusForbidden {
		return s.checkErrorBody(what, status, header, respBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
	r.ContentLength = int64(len(reqBody))
	route, params, err := s.router.FindRoute(r)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		if status != http.StatusNotFound && status != http.StatusNotAcceptable {
			return fmt.Sprintf("openapi: %s → %d: internal/httpapi/openapi.json does not describe this path: document it", what, status)
		}
		return s.checkErrorBody(what, status, header, respBody)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if status != http.StatusMethodNotAllowed && status != http.StatusNotAcceptable {
			return fmt.Sprintf("openapi: %s → %d: internal/httpapi/openapi.json has no %s operation on this path: document it", what, status, r.Method)
		}
		return s.checkErrorBody(what, status, header, respBody)
	case err != nil:
		return fmt.Sprintf("openapi: %s: %v", what, err)
	}
	op := fmt.Sprintf("%s %s (%s)", r.Method, route.Path, route.Operation.OperationID)
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: s.opts}
	if reqErr := openapi3filter.ValidateRequest(ctx, in); reqErr != nil && (status < 400 || status >= 500) {
		return fmt.Sprintf("openapi: %s → %d: the request does not match the document, yet the server did not answer 4xx: the document is stricter than the server, or the server accepts a bad request.\nrequest: %s\n%v", op, status, clipBody(reqBody), reqErr)
	}
	res := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(respBody)), Options: s.opts}
	if err := openapi3filter.ValidateResponse(ctx, res); err != nil {
		return fmt.Sprintf("openapi: %s → %d: the answer does not match the document.\nanswer: %s\n%v", op, status, clipBody(respBody), err)
	}
	return ""
}

// checkErrorBody checks an answer outside any operation (an unknown path, a
// wrong HTTP method) against the common error shape.
func (s *openapiSpec) checkErrorBody(what string, status int, header http.Header, body []byte) string {
	var v any
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Sprintf("openapi: %s → %d: Content-Type %q, want the JSON error shape", what, status, ct)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Sprintf("openapi: %s → %d: body is not JSON: %s", what, status, clipBody(body))
	}
	if err := s.doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Sprintf("openapi: %s → %d: the answer is not the Error schema.\nanswer: %s\n%v", what, status, clipBody(body), err)
	}
	return ""
}

func clipBody(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}
