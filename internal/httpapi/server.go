// Package httpapi is Tessera's HTTP layer: routes, handlers, middleware and
// the mapping of domain errors to HTTP. Handlers translate between JSON and
// domain calls; the rules live in the engine and the account model.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/account"
	"github.com/tessera-id/tessera/internal/apiclient"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/i18n"
	"github.com/tessera-id/tessera/internal/ratelimit"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/verify"
	"github.com/tessera-id/tessera/internal/web"
)

// Server holds what the handlers need. Build it with New.
type Server struct {
	Options
	mux        *http.ServeMux
	seenPaths  map[string]bool // paths that have a JSON 405 fallback
	textRoutes map[string]bool // patterns that answer something other than JSON (handleText)
	// inFlight holds a token per request being served, MaxInFlight at
	// most; nil: no bound. queue holds a token per request waiting for a
	// place, MaxInFlight at most.
	inFlight chan struct{}
	queue    chan struct{}
}

// Options are the parts a Server is built from.
type Options struct {
	Engine   *verify.Engine
	Clients  *apiclient.Registry
	Accounts *account.Service
	Store    tessera.Store
	Log      *slog.Logger
	// Ready reports whether the service can take traffic (database
	// reachable, migrations applied), for GET /readyz.
	Ready func(ctx context.Context) error
	// Metrics serves GET /metrics when set.
	Metrics http.Handler
	// Observe, when set, hears every request: its route pattern (never the
	// raw path), method, status and duration.
	Observe func(route, method string, status int, d time.Duration)

	// Limiter holds LimitIP (per client IP, on the public accounts
	// endpoints) and LimitClient (per API client, on the verification
	// API); nil means no limits.
	Limiter     ratelimit.Limiter
	LimitIP     ratelimit.Limit
	LimitClient ratelimit.Limit
	// TrustedProxies are the addresses whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix

	// Idempotency keeps Idempotency-Key records, answers sealed with Keys
	// and expiring on Now; without both the header is ignored.
	Idempotency tessera.IdempotencyStore
	Keys        *secret.Keyring
	Now         func() time.Time
	// DBTimeout bounds each request's work (its database work above all):
	// when it runs out the request answers 503 unavailable with
	// Retry-After instead of waiting out a silent database. Zero: no bound.
	DBTimeout time.Duration
	// MaxInFlight bounds the requests served at once; past it up to
	// MaxInFlight more wait at most QueueWait for a place, and the rest are
	// answered at once with 503 unavailable and Retry-After (see admit).
	// Zero: no bound.
	MaxInFlight int
	// QueueWait is how long a request past MaxInFlight waits for a place;
	// zero: it is refused at once. New sets DefaultQueueWait when
	// MaxInFlight is set and QueueWait is zero; negative: no waiting.
	QueueWait time.Duration

	// PublicURL and TwilioAuthToken verify Twilio's status callbacks
	// (POST /webhooks/twilio/status); without both, and a Store that is a
	// tessera.DeliveryStore, the route answers 404.
	PublicURL       string
	TwilioAuthToken string
	// ObserveDeliveryReport, when set, hears each recorded final report
	// (channel, status).
	ObserveDeliveryReport func(channel, status string)

	// NoAccountPages turns the hosted account pages (/account/...) off;
	// Brand is what they show, ReturnURLs where a login may return to.
	NoAccountPages bool
	Brand          web.Brand
	ReturnURLs     []string

	// CORSOrigins are the exact origins (scheme://host[:port]) whose
	// browser scripts may call the accounts API; empty: CORS is off.
	CORSOrigins []string
	// Inbox, when set, is shown at GET /dev/inbox (development only);
	// without it the route answers 404.
	Inbox *deliver.Inbox
}

// New returns a server with every route registered.
func New(o Options) *Server {
	s := &Server{Options: o, mux: http.NewServeMux(), seenPaths: map[string]bool{}, textRoutes: map[string]bool{}}
	if o.MaxInFlight > 0 {
		s.inFlight = make(chan struct{}, o.MaxInFlight)
		s.queue = make(chan struct{}, o.MaxInFlight)
		if s.QueueWait == 0 {
			s.QueueWait = DefaultQueueWait
		}
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.handle("GET /healthz", s.handleHealthz)
	s.handle("GET /readyz", s.handleReadyz)
	if s.Metrics != nil {
		// Prometheus's handler picks the text format or OpenMetrics from
		// the scraper's Accept.
		s.handleText("GET /metrics", s.Metrics.ServeHTTP)
	}

	// The verification API (service to service, API-client bearer token).
	s.handle("POST /methods/{method}/actions/initiate", s.requireClient(s.idempotent(scopeClient, s.handleInitiate)))
	s.handle("POST /methods/{method}/verifiers/{id}/actions/validate", s.requireClient(s.handleValidate))
	s.handle("GET /methods/{method}/verifiers/{id}", s.requireClient(s.handleGetVerification))
	s.handle("DELETE /methods/{method}/verifiers/{id}", s.requireClient(s.handleDeleteVerification))
	s.handle("POST /methods/{method}/verifiers/{id}/actions/resend", s.requireClient(s.idempotent(scopeClient, s.handleResend)))

	// Provider callbacks (signed by the provider, no token).
	s.handle("POST "+deliver.TwilioStatusPath, s.handleTwilioStatus)

	// The accounts API (end users, ID-token bearer).
	s.accountRoutes()
	// The admin API (API clients with the admin scope).
	s.adminRoutes()
	s.openapiRoutes()
	web.Routes(s.handleText) // the minimal passkey page
	if !s.NoAccountPages {
		pages := &web.Pages{Accounts: s.Accounts, Keys: s.Keys, Brand: s.Brand, ReturnURLs: s.ReturnURLs, Meta: meta, Log: s.Log,
			Allow: func(r *http.Request) error { return s.allow(r.Context(), "ip:"+clientIPFrom(r.Context()), s.LimitIP) }}
		if pages.Brand.Name == "" {
			pages.Brand.Name = s.Accounts.ServiceName
		}
		if pages.Brand.Color == "" {
			pages.Brand.Color = "#1f5fbf"
		}
		pages.Routes(s.handleText)
	}
	s.devInboxRoutes()

	// Anything else: JSON 404, never the mux's plain-text page.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, tessera.Errorf(tessera.ENOTFOUND, "Not found"))
	})
}

// handle registers h for pattern ("METHOD /path"), and a JSON 405 for the
// same path with any other method.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, h)
	_, path, _ := strings.Cut(pattern, " ")
	if s.seenPaths[path] {
		return
	}
	s.seenPaths[path] = true
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, tessera.Errorf(tessera.EBADMETHOD, "Method %s not allowed here", r.Method))
	})
}

// handleText is handle for a route that does not answer JSON (a page,
// metrics): the JSON APIs' Accept rule does not apply to it.
func (s *Server) handleText(pattern string, h http.HandlerFunc) {
	s.handle(pattern, h)
	s.textRoutes[pattern] = true
}

// ServeHTTP runs the middleware chain around the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// The client's id is echoed and logged: one that would not survive
	// headerValue unchanged (too long, not UTF-8) is replaced.
	id := r.Header.Get("X-Request-Id")
	if id == "" || headerValue(id, maxRequestID) != id {
		id = newRequestID()
	}
	h := w.Header()
	h.Set("X-Request-Id", id)
	// Hardening for every answer; a handler may loosen one (JWKS caching,
	// the docs page's own policy).
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	ctx := context.WithValue(r.Context(), requestIDKey{}, id)
	// The messages a request causes speak its language, unless the user
	// chose one (i18n.For).
	ctx = i18n.WithLanguage(ctx, i18n.Negotiate("", headerValue(r.Header.Get("Accept-Language"), maxHeaderValue)))
	if s.DBTimeout > 0 {
		// One deadline for the whole request, so the answer comes within
		// it however many statements the request runs.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.DBTimeout)
		defer cancel()
	}
	r = r.WithContext(context.WithValue(ctx, clientIPKey{}, clientIP(r, s.TrustedProxies)))
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("panic", "panic", p, "request_id", id, "stack", string(debug.Stack()))
			if !rec.wrote {
				s.writeError(rec, r, tessera.Errorf(tessera.EINTERNAL, "panic"))
			}
		}
		d := time.Since(start)
		s.Log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Int("status", rec.status),
			slog.Duration("duration", d), slog.String("request_id", id))
		if s.Observe != nil {
			s.Observe(r.Pattern, r.Method, rec.status, d)
		}
	}()
	if s.cors(rec, r) {
		return
	}
	release, ok := s.admit(r)
	if !ok {
		s.writeError(rec, r, &tessera.Error{Code: tessera.EUNAVAILABLE, Message: "Overloaded: too many requests in progress, retry shortly", RetryAfter: 1})
		return
	}
	defer release()
	if _, pattern := s.mux.Handler(r); !s.textRoutes[pattern] && !acceptsJSON(r.Header.Get("Accept")) {
		s.writeError(rec, r, tessera.Errorf(tessera.ENOTACCEPT, "This API answers application/json only"))
		return
	}
	s.mux.ServeHTTP(rec, r)
}

type requestIDKey struct{}

// maxRequestID is the longest X-Request-Id of a client that is kept, in bytes.
const maxRequestID = 64

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// handleHealthz handles GET /healthz: 200 while the process is up. Load
// balancers use it as the liveness check; it touches nothing else, so a
// database outage does not get healthy instances restarted.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": http.StatusOK})
}

// handleReadyz handles GET /readyz: 200 when the database answers and its
// migrations are applied, 503 otherwise (take the instance out of rotation).
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// Ready reads the schema version, which proves the database answers
	// too; without it a ping does.
	ready := s.Store.Ping
	if s.Ready != nil {
		ready = s.Ready
	}
	err := ready(ctx)
	if err != nil {
		s.Log.Warn("readyz: not ready", "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": http.StatusServiceUnavailable, "error": "Not ready: database unreachable or not migrated", "code": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": http.StatusOK})
}

type clientKey struct{}

// requireClient lets a request through only with a valid API-client
// bearer token, and puts the client in its context.
func (s *Server) requireClient(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tessera"`)
			s.writeError(w, r, tessera.Errorf(tessera.EUNAUTHORIZED, "Authorization: Bearer <token> is required"))
			return
		}
		c, err := s.Clients.Authenticate(r.Context(), token)
		if err != nil {
			if tessera.ErrorCode(err) == tessera.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tessera", error="invalid_token"`)
			}
			s.writeError(w, r, err)
			return
		}
		if err := s.allow(r.Context(), "client:"+c.ID, s.LimitClient); err != nil {
			s.writeError(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
	}
}

func clientFrom(ctx context.Context) *tessera.Client { return ctx.Value(clientKey{}).(*tessera.Client) }

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

type clientIPKey struct{}

// clientIP is the address of whoever sent r: the peer, or, when the peer
// is a trusted proxy, the last address in X-Forwarded-For that is not one
// of the trusted proxies (addresses before it are the client's to forge).
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !isTrusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		hop = hop.Unmap()
		if !isTrusted(hop) {
			return hop.String()
		}
		addr = hop
	}
	return addr.String()
}

func clientIPFrom(ctx context.Context) string {
	ip, _ := ctx.Value(clientIPKey{}).(string)
	return ip
}

// allow applies a limit to key; ETOOMANY when it is used up.
func (s *Server) allow(ctx context.Context, key string, l ratelimit.Limit) error {
	if s.Limiter == nil || l.Off() {
		return nil
	}
	res, err := s.Limiter.Allow(ctx, key, l)
	if err != nil {
		return err
	}
	if !res.Allowed {
		return &tessera.Error{Code: tessera.ETOOMANY, Message: "Too many requests: slow down", RetryAfter: int((res.RetryAfter + time.Second - 1) / time.Second)}
	}
	return nil
}

// limitIP applies the per-IP limit to a public endpoint.
func (s *Server) limitIP(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.allow(r.Context(), "ip:"+clientIPFrom(r.Context()), s.LimitIP); err != nil {
			s.writeError(w, r, err)
			return
		}
		next(w, r)
	}
}
