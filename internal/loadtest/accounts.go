package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/tessera-id/tessera/internal/password"
)

// AccountConfig describes a run of account load: password logins, or
// refresh-token rotations of sessions opened by one login each.
type AccountConfig struct {
	URL             string
	Mode            string // "login" or "refresh"
	Email, Password string // an existing account without a second factor
	Concurrency     int
	Duration        time.Duration
	RequestTimeout  time.Duration
	// Window is the length of the first and the last stretch of the run
	// whose rates are reported apart (at most half the run): a rate that
	// falls over the run shows there.
	Window time.Duration
}

// OpsResult summarises a run of logins, refreshes or raw hashes.
type OpsResult struct {
	Mode        string
	Concurrency int
	Elapsed     time.Duration
	Ops, Errors int64
	OpsPerSec   float64
	P50, P99    time.Duration
	// FirstPerSec and LastPerSec are the rates in the run's first and last
	// Window.
	FirstPerSec, LastPerSec float64
	ErrorSamples            []ErrorSample
}

// RunAccounts runs cfg until its Duration ends or ctx is cancelled.
func RunAccounts(ctx context.Context, cfg AccountConfig) (*OpsResult, error) {
	if cfg.Mode != "login" && cfg.Mode != "refresh" {
		return nil, fmt.Errorf("unsupported mode %q", cfg.Mode)
	}
	if cfg.Email == "" || cfg.Password == "" {
		return nil, errors.New("-mode " + cfg.Mode + " needs -email and a password ($TESSERA_BENCH_PASSWORD)")
	}
	if cfg.Concurrency < 1 || cfg.Duration <= 0 {
		return nil, errors.New("concurrency and duration must be positive")
	}
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := newClient(cfg.Concurrency, timeout)
	defer client.CloseIdleConnections()
	base := strings.TrimRight(cfg.URL, "/")
	login, _ := json.Marshal(map[string]string{"email": cfg.Email, "password": cfg.Password})

	// post sends body and returns the refresh token of a 200 answer.
	post := func(ctx context.Context, path string, body []byte) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: HTTP %d %s", path, resp.StatusCode, snippet(raw))
		}
		var out struct {
			RefreshToken string `json:"refreshToken"`
		}
		if err := json.Unmarshal(raw, &out); err != nil || out.RefreshToken == "" {
			return "", fmt.Errorf("%s: no refresh token in %s", path, snippet(raw))
		}
		return out.RefreshToken, nil
	}

	// Refresh mode: each client's session is opened before the clock starts.
	tokens := make([]string, cfg.Concurrency)
	if cfg.Mode == "refresh" {
		for i := range tokens {
			t, err := post(ctx, "/auth/login", login)
			if err != nil {
				return nil, fmt.Errorf("opening the sessions: %w", err)
			}
			tokens[i] = t
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	return runOps(runCtx, cfg.Mode, cfg.Concurrency, cfg.Window, start, func(ctx context.Context, i int) error {
		if cfg.Mode == "login" {
			_, err := post(ctx, "/auth/login", login)
			return err
		}
		body, _ := json.Marshal(map[string]string{"refreshToken": tokens[i]})
		t, err := post(ctx, "/auth/login/refresh", body)
		if err == nil {
			tokens[i] = t
		}
		return err
	}), nil
}

// RunArgon2 hashes with the service's argon2id parameters (password.OWASP)
// on goroutines for d, in this process: the raw rate logins are compared
// with.
func RunArgon2(ctx context.Context, goroutines int, d time.Duration, window time.Duration) *OpsResult {
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	p := password.OWASP
	salt := []byte("tessera-bench-salt")
	return runOps(runCtx, "argon2id", goroutines, window, time.Now(), func(context.Context, int) error {
		argon2.IDKey([]byte("correct horse battery staple"), salt, p.Time, p.Memory, p.Threads, 32)
		return nil
	})
}

// runOps runs op on n goroutines until ctx ends and summarises. An op cut
// off by the end of the run is not counted, as in Run.
func runOps(ctx context.Context, mode string, n int, window time.Duration, start time.Time, op func(ctx context.Context, i int) error) *OpsResult {
	type sample struct{ end, took time.Duration }
	samples := make([][]sample, n)
	var errCount atomic.Int64
	var mu sync.Mutex
	errs := map[string]int64{}
	var order []string
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				err := op(ctx, i)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					errCount.Add(1)
					msg := shortError(err)
					mu.Lock()
					if _, ok := errs[msg]; !ok && len(order) < maxErrorSamples {
						order = append(order, msg)
					}
					errs[msg]++
					mu.Unlock()
					continue
				}
				samples[i] = append(samples[i], sample{time.Since(start), time.Since(t)})
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := &OpsResult{Mode: mode, Concurrency: n, Elapsed: elapsed, Errors: errCount.Load()}
	var lat []time.Duration
	if window <= 0 || window > elapsed/2 {
		window = elapsed / 2
	}
	var first, last int64
	for _, ws := range samples {
		for _, s := range ws {
			lat = append(lat, s.took)
			if s.end <= window {
				first++
			}
			if s.end > elapsed-window {
				last++
			}
		}
	}
	slices.Sort(lat)
	res.Ops = int64(len(lat))
	if elapsed > 0 {
		res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	}
	if window > 0 {
		res.FirstPerSec, res.LastPerSec = float64(first)/window.Seconds(), float64(last)/window.Seconds()
	}
	res.P50, res.P99 = Percentile(lat, 50), Percentile(lat, 99)
	for _, msg := range order {
		res.ErrorSamples = append(res.ErrorSamples, ErrorSample{Message: msg, Count: errs[msg]})
	}
	return res
}

// WriteOpsJSON writes res as one JSON object, in WriteJSON's style.
func WriteOpsJSON(w io.Writer, res *OpsResult) error {
	samples := res.ErrorSamples
	if samples == nil {
		samples = []ErrorSample{}
	}
	return json.NewEncoder(w).Encode(map[string]any{
		"mode": res.Mode, "concurrency": res.Concurrency, "elapsed_s": res.Elapsed.Seconds(),
		"ops": res.Ops, "errors": res.Errors, "ops_per_sec": res.OpsPerSec,
		"p50_ms": ms(res.P50), "p99_ms": ms(res.P99),
		"first_window_per_sec": res.FirstPerSec, "last_window_per_sec": res.LastPerSec,
		"error_samples": samples,
	})
}

// WriteOpsText writes res as a short human-readable block.
func WriteOpsText(w io.Writer, res *OpsResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "mode        %s (%d clients, %s elapsed)\n", res.Mode, res.Concurrency, res.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "ops         %d\n", res.Ops)
	fmt.Fprintf(&b, "ops/s       %.1f (first window %.1f, last window %.1f)\n", res.OpsPerSec, res.FirstPerSec, res.LastPerSec)
	fmt.Fprintf(&b, "latency     p50 %s  p99 %s\n", fmtDuration(res.P50), fmtDuration(res.P99))
	fmt.Fprintf(&b, "errors      %d\n", res.Errors)
	for _, s := range res.ErrorSamples {
		fmt.Fprintf(&b, "  %6d × %s\n", s.Count, s.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
