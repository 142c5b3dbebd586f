// Package loadtest generates verification load against a Tessera server and
// serves a trivial baseline server that marks the machine's ceiling.
//
// One unit of load is a pair: initiate a verification with a forced code,
// then validate it with that code. Each worker runs pairs back to back over
// a shared keep-alive HTTP client; latencies are kept per worker (no locks
// in the hot path) and merged once the run is over.
package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Config describes one load run.
type Config struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Token is the API client bearer token; empty sends no Authorization header.
	Token string
	// Concurrency is the number of workers, each with at most one request in flight.
	Concurrency int
	// Duration bounds the run in time; it must be positive.
	Duration time.Duration
	// MaxPairs bounds the number of pairs attempted; 0 means unbounded.
	MaxPairs int64
	// Method is the verification method: "email" or "phone".
	Method string
	// RequestTimeout bounds each HTTP request; 0 means 10s.
	RequestTimeout time.Duration
}

// Result summarises a load run. Pairs counts successful pairs only; Errors
// counts failed pairs (a pair fails on its first bad response).
type Result struct {
	URL         string
	Method      string
	Concurrency int
	Elapsed     time.Duration

	Pairs    int64
	Requests int64
	Errors   int64

	PairsPerSec    float64
	RequestsPerSec float64

	RequestP50 time.Duration
	RequestP99 time.Duration
	RequestMax time.Duration
	PairP50    time.Duration
	PairP99    time.Duration

	// ErrorSamples holds the first few distinct error messages, oldest first.
	ErrorSamples []ErrorSample
}

// ErrorSample is one distinct error message and how often it occurred.
type ErrorSample struct {
	Message string `json:"message"`
	Count   int64  `json:"count"`
}

const (
	// maxErrorSamples is how many distinct messages a Result reports.
	maxErrorSamples = 5
	// maxDistinctPerWorker caps each worker's error map, so that messages
	// embedding unique values cannot grow memory without bound.
	maxDistinctPerWorker = 16
	// maxBody caps how much of a response is parsed; the rest is drained.
	maxBody = 64 << 10
)

// Run generates load as described by cfg until cfg.Duration elapses,
// cfg.MaxPairs pairs have been attempted or ctx is cancelled, whichever
// comes first. Requests cut off by the end of the run are not errors.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := newClient(cfg.Concurrency, timeout)
	defer client.CloseIdleConnections()

	base := strings.TrimRight(cfg.URL, "/")
	t := target{
		client:      client,
		token:       cfg.Token,
		method:      cfg.Method,
		concurrency: cfg.Concurrency,
		initiateURL: base + "/methods/" + cfg.Method + "/actions/initiate",
		verifierURL: base + "/methods/" + cfg.Method + "/verifiers/",
	}

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	// claimed is the only state shared between workers: one atomic add per
	// pair keeps -n exact without a lock.
	var claimed atomic.Int64
	seed := rand.Uint64()
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{
			id:      i,
			target:  &t,
			rng:     rand.New(rand.NewPCG(seed, uint64(i))),
			errs:    make(map[string]*errStat),
			reqLat:  make([]time.Duration, 0, 4096),
			pairLat: make([]time.Duration, 0, 2048),
		}
		workers[i] = w
		wg.Go(func() {
			for n := 0; runCtx.Err() == nil; n++ {
				if cfg.MaxPairs > 0 && claimed.Add(1) > cfg.MaxPairs {
					return
				}
				w.pair(runCtx, n)
			}
		})
	}
	wg.Wait()
	return merge(cfg, workers, time.Since(start)), nil
}

func (c Config) validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		return fmt.Errorf("invalid url %q: %w", c.URL, err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("invalid url %q: want http(s)://host[:port]", c.URL)
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency must be at least 1, got %d", c.Concurrency)
	case c.Duration <= 0:
		return fmt.Errorf("duration must be positive, got %s", c.Duration)
	case c.MaxPairs < 0:
		return fmt.Errorf("max pairs must not be negative, got %d", c.MaxPairs)
	case c.Method != "email" && c.Method != "phone":
		return fmt.Errorf("unsupported method %q: want email or phone", c.Method)
	}
	return nil
}

// newClient returns a client whose pool keeps a connection per worker alive:
// the default transport keeps only 2 idle connections per host, which would
// make most requests pay for a new TCP connection and measure the wrong thing.
func newClient(concurrency int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy: nil, // loopback benchmarks must not detour through a proxy
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        2 * concurrency,
		MaxIdleConnsPerHost: 2 * concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // bodies are tiny; gzip would only cost CPU
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// target is the immutable, shared description of what the workers hit.
type target struct {
	client      *http.Client
	token       string
	method      string
	concurrency int
	initiateURL string
	verifierURL string // + escaped id + "/actions/validate"
}

// worker holds one goroutine's private state; nothing here is shared.
type worker struct {
	id     int
	target *target
	rng    *rand.Rand
	buf    []byte // request body, reused across requests

	requests int64
	pairs    int64
	errors   int64
	reqLat   []time.Duration
	pairLat  []time.Duration
	errs     map[string]*errStat
}

type errStat struct {
	count int64
	first time.Time
}

// outcome of one request.
type outcome int

const (
	ok     outcome = iota
	failed         // counted as an error
	cutOff         // the run ended mid-request; neither success nor error
)

// reply is the subset of Tessera's JSON response the load checks.
type reply struct {
	Status         int    `json:"status"`
	VerificationID string `json:"verificationId"`
}

// pair runs one initiate+validate pair; n numbers the worker's pairs.
func (w *worker) pair(ctx context.Context, n int) {
	code := w.rng.IntN(1_000_000)
	start := time.Now()

	w.buf = w.initiateBody(w.buf[:0], n, code)
	var r reply
	if w.do(ctx, "initiate", w.target.initiateURL, w.buf, &r) != ok {
		return
	}
	if r.VerificationID == "" {
		w.fail("initiate: response has no verificationId")
		return
	}

	w.buf = append(w.buf[:0], `{"code":"`...)
	w.buf = appendCode(w.buf, code)
	w.buf = append(w.buf, `"}`...)
	validateURL := w.target.verifierURL + url.PathEscape(r.VerificationID) + "/actions/validate"
	r = reply{}
	if w.do(ctx, "validate", validateURL, w.buf, &r) != ok {
		return
	}
	w.pairs++
	w.pairLat = append(w.pairLat, time.Since(start))
}

// initiateBody appends the initiate request body for the worker's n-th pair.
// Consumers vary per request so that per-consumer state on the server (rate
// limits, pending verifications) does not serialise the load.
func (w *worker) initiateBody(b []byte, n, code int) []byte {
	b = append(b, `{"consumer":"`...)
	if w.target.method == "phone" {
		// +1 415 555 xxxx parses as a valid US number with libphonenumber.
		// Workers interleave over the 10,000 numbers, so pairs in flight at
		// the same time never share one unless workers drift ~10000/c
		// pairs apart.
		b = append(b, "+1415555"...)
		b = appendDigits(b, (n*w.target.concurrency+w.id)%10000, 4)
	} else {
		b = append(b, "load-"...)
		b = strconv.AppendInt(b, int64(w.id), 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, "@example.com"...)
	}
	b = append(b, `","issuer":"bench","policy":{"expiredOn":"00:05:00","forcedCode":"`...)
	b = appendCode(b, code)
	return append(b, `"}}`...)
}

// do sends one POST, reads and closes the whole body, and checks for HTTP
// 200 with a JSON body whose status is 200, decoded into out.
func (w *worker) do(ctx context.Context, op, u string, body []byte, out *reply) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		w.fail(op + ": " + err.Error())
		return failed
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if w.target.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.target.token)
	}

	start := time.Now()
	resp, err := w.target.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return cutOff
		}
		w.fail(op + ": " + shortError(err))
		return failed
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err == nil {
		// Drain what the limit left so the connection can be reused.
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil {
		if ctx.Err() != nil {
			return cutOff
		}
		w.fail(op + ": reading body: " + shortError(err))
		return failed
	}
	w.requests++
	w.reqLat = append(w.reqLat, time.Since(start))

	if resp.StatusCode != http.StatusOK {
		w.fail(fmt.Sprintf("%s: HTTP %d: %s", op, resp.StatusCode, snippet(data)))
		backOff(ctx, resp)
		return failed
	}
	if err := json.Unmarshal(data, out); err != nil {
		w.fail(fmt.Sprintf("%s: invalid JSON: %s", op, snippet(data)))
		return failed
	}
	if out.Status != http.StatusOK {
		w.fail(fmt.Sprintf("%s: JSON status %d: %s", op, out.Status, snippet(data)))
		return failed
	}
	return ok
}

// backOff waits as a well-behaved client does before its next request
// after a 503 with Retry-After (in seconds), so that a run against an
// overloaded server measures what such clients get rather than a storm of
// immediate retries.
func backOff(ctx context.Context, resp *http.Response) {
	if resp.StatusCode != http.StatusServiceUnavailable {
		return
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(secs) * time.Second)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// fail records a failed pair.
func (w *worker) fail(msg string) {
	w.errors++
	if s, found := w.errs[msg]; found {
		s.count++
	} else if len(w.errs) < maxDistinctPerWorker {
		w.errs[msg] = &errStat{count: 1, first: time.Now()}
	}
}

// shortError drops the *url.Error wrapper, whose method and URL (with a
// verification id in it) would make every message distinct.
func shortError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// snippet returns a one-line prefix of a response body for error messages.
func snippet(b []byte) string {
	const limit = 120
	s := strings.Join(strings.FieldsFunc(string(b), unicode.IsSpace), " ")
	if s == "" {
		return "(empty body)"
	}
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

// appendCode appends a 6-digit, zero-padded verification code.
func appendCode(b []byte, code int) []byte { return appendDigits(b, code, 6) }

// appendDigits appends n zero-padded to width digits.
func appendDigits(b []byte, n, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// merge combines the workers' private records into a Result.
func merge(cfg Config, workers []*worker, elapsed time.Duration) *Result {
	res := &Result{
		URL:         cfg.URL,
		Method:      cfg.Method,
		Concurrency: cfg.Concurrency,
		Elapsed:     elapsed,
	}
	var reqLat, pairLat []time.Duration
	type sample struct {
		msg string
		errStat
	}
	byMsg := map[string]*sample{}
	for _, w := range workers {
		res.Pairs += w.pairs
		res.Requests += w.requests
		res.Errors += w.errors
		reqLat = append(reqLat, w.reqLat...)
		pairLat = append(pairLat, w.pairLat...)
		for msg, st := range w.errs {
			s, found := byMsg[msg]
			if !found {
				byMsg[msg] = &sample{msg: msg, errStat: *st}
				continue
			}
			s.count += st.count
			if st.first.Before(s.first) {
				s.first = st.first
			}
		}
	}

	if secs := elapsed.Seconds(); secs > 0 {
		res.PairsPerSec = float64(res.Pairs) / secs
		res.RequestsPerSec = float64(res.Requests) / secs
	}
	slices.Sort(reqLat)
	slices.Sort(pairLat)
	res.RequestP50 = Percentile(reqLat, 50)
	res.RequestP99 = Percentile(reqLat, 99)
	res.RequestMax = Percentile(reqLat, 100)
	res.PairP50 = Percentile(pairLat, 50)
	res.PairP99 = Percentile(pairLat, 99)

	samples := make([]*sample, 0, len(byMsg))
	for _, s := range byMsg {
		samples = append(samples, s)
	}
	slices.SortFunc(samples, func(a, b *sample) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		return strings.Compare(a.msg, b.msg)
	})
	for _, s := range samples[:min(len(samples), maxErrorSamples)] {
		res.ErrorSamples = append(res.ErrorSamples, ErrorSample{Message: s.msg, Count: s.count})
	}
	return res
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted samples
// using the nearest-rank method: the smallest sample such that at least p%
// of the samples are less than or equal to it. It is exact, not estimated,
// and returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// Multiply before dividing: p*n is exact for whole p, so exact ranks
	// such as p99 of 100 samples do not round up to the next sample.
	rank := int(math.Ceil(p * float64(n) / 100))
	return sorted[min(max(rank, 1), n)-1]
}
