package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tessera-id/tessera"
)

// Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) on the routes
// that send something: a request retried with the same key within
// idempotencyTTL gets the first request's answer, and nothing runs again.
const (
	idempotencyHeader = "Idempotency-Key"
	// idempotencyTTL is how long a key is remembered.
	idempotencyTTL = 24 * time.Hour
	// idempotencyStale is how long an unanswered claim holds its key: past
	// it (the request that claimed it died with its process, or could not
	// store its answer) a retry runs again. It is longer than any request
	// may run (the server's write timeout is 30 s).
	idempotencyStale = 2 * time.Minute
	// idempotencyWait is how long a retry waits for the first request with
	// its key to be answered before it gets 409 in_progress.
	idempotencyWait = 2 * time.Second
	// maxIdempotencyKey is the longest key accepted, in bytes.
	maxIdempotencyKey = 255
)

// The scopes a key belongs to: the caller, as each kind of route knows it.
func scopeClient(r *http.Request) string { return "client:" + clientFrom(r.Context()).ID }
func scopeUser(r *http.Request) string   { return "user:" + userFrom(r.Context()).user.ID }
func scopeIP(r *http.Request) string     { return "ip:" + clientIPFrom(r.Context()) }

// idempotent makes next honour the Idempotency-Key header. It runs after
// authentication, which scope reads. A request with a key first claims it
// (one atomic insert: of parallel requests with one key exactly one wins);
// the winner runs next and stores its answer when it is a success (2xx),
// sealed with the server's keys, or releases the key when it is not, so a
// retry after an error runs again. The others wait up to idempotencyWait
// for that answer, then get 409 in_progress. A key used before with
// another request (method, path, query or body) is 422
// idempotency_mismatch. Without the header, next runs as always.
func (s *Server) idempotent(scope func(*http.Request) string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(idempotencyHeader)
		if key == "" || s.Idempotency == nil || s.Keys == nil {
			next(w, r)
			return
		}
		if !validIdempotencyKey(key) {
			s.writeError(w, r, tessera.Invalid(tessera.FieldError{Path: idempotencyHeader, Error: "must be 1 to 255 visible ASCII characters (a UUID is best)"}))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
				s.writeError(w, r, tessera.Errorf(tessera.ETOOLARGE, "Request body is larger than %d bytes", maxBodyBytes))
				return
			}
			s.writeError(w, r, malformed("body", "could not be read"))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		now := s.now()
		requestParts := []string{"idempotency-request", r.Method, r.URL.Path, r.URL.RawQuery, string(body)}
		rec := &tessera.IdempotencyRecord{
			Scope: scope(r), Route: r.Pattern, Key: key,
			RequestHash: s.Keys.Hash(requestParts...),
			Claim:       newClaim(), CreatedAt: now, ExpiresAt: now.Add(idempotencyTTL),
		}
		ctx := r.Context()
		deadline := time.Now().Add(idempotencyWait)
		for {
			held, err := s.Idempotency.ClaimIdempotencyKey(ctx, rec, now.Add(-idempotencyStale))
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if held == nil {
				break // ours: run the request
			}
			if !s.Keys.Check(held.RequestHash, requestParts...) {
				s.writeError(w, r, tessera.Errorf(tessera.EIDEMMISMATCH, "This Idempotency-Key was used with another request: use a new key for a new request"))
				return
			}
			if held.Status != 0 {
				s.replay(w, r, held)
				return
			}
			if time.Now().After(deadline) {
				s.writeError(w, r, &tessera.Error{Code: tessera.EINPROGRESS, Message: "A request with this Idempotency-Key is in progress: retry shortly", RetryAfter: 1})
				return
			}
			select {
			case <-ctx.Done():
				s.writeError(w, r, ctx.Err())
				return
			case <-time.After(25 * time.Millisecond):
			}
		}

		// Store or release even if the client has gone: that is when a
		// retry is most likely.
		bg := context.WithoutCancel(ctx)
		defer func() {
			if p := recover(); p != nil {
				s.Idempotency.ReleaseIdempotencyKey(bg, rec) //nolint:errcheck // best effort: the claim goes stale otherwise
				panic(p)
			}
		}()
		cw := &captureWriter{header: http.Header{}, status: http.StatusOK}
		next(cw, r)
		if cw.status >= 200 && cw.status < 300 {
			sealed, err := s.Keys.Seal(cw.body.Bytes(), idempotencyAD(rec))
			if err == nil {
				err = s.Idempotency.AnswerIdempotencyKey(bg, rec, cw.status, sealed)
			}
			if err != nil {
				// The key stays claimed until idempotencyStale: retries
				// get 409 until then, and run again after.
				s.Log.WarnContext(ctx, "idempotency: answer not stored", "err", err, "request_id", requestID(ctx), "route", r.Pattern)
			}
		} else if err := s.Idempotency.ReleaseIdempotencyKey(bg, rec); err != nil {
			s.Log.WarnContext(ctx, "idempotency: key not released", "err", err, "request_id", requestID(ctx), "route", r.Pattern)
		}
		h := w.Header()
		for k, v := range cw.header {
			h[k] = v
		}
		w.WriteHeader(cw.status)
		w.Write(cw.body.Bytes())
	}
}

// replay answers with the stored answer of held.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, held *tessera.IdempotencyRecord) {
	body, err := s.Keys.Open(held.Sealed, idempotencyAD(held))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Idempotent-Replayed", "true")
	w.WriteHeader(held.Status)
	w.Write(body)
}

// idempotencyAD binds a sealed answer to its record and claim. Keys are
// visible ASCII and scopes and routes hold no NUL, so the parts cannot run
// into each other.
func idempotencyAD(rec *tessera.IdempotencyRecord) []byte {
	return []byte("idempotency\x00" + rec.Scope + "\x00" + rec.Route + "\x00" + rec.Key + "\x00" + rec.Claim)
}

func validIdempotencyKey(key string) bool {
	if len(key) == 0 || len(key) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

func newClaim() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// captureWriter keeps a handler's answer, to be stored before it is sent.
type captureWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(code int) {
	if !c.wrote {
		c.status, c.wrote = code, true
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	c.wrote = true
	return c.body.Write(b)
}
