package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usage = `Usage: tessera bench [flags]

Generates verification load against a Tessera server and reports throughput
and latency. Each of -c clients loops over pairs: initiate a verification
with a forced code (POST /methods/{method}/actions/initiate), then validate
it (POST /methods/{method}/verifiers/{id}/actions/validate). A pair succeeds
only if both answer HTTP 200 with JSON status 200. The run stops after -d or
after -n pairs, whichever comes first; requests cut off by the end of the
run are not counted as errors.

With -mode it measures something else instead:

  -mode login     password logins (POST /auth/login) of the account -email,
                  password in $TESSERA_BENCH_PASSWORD (no second factor)
  -mode refresh   refresh-token rotations (POST /auth/login/refresh): each
                  client logs in once, then rotates its session's token in
                  a loop; the rates of the first and last -window are
                  reported apart, to show a rate that falls over the run
  -mode argon2    no server: argon2id hashes with the service's parameters
                  on -c goroutines in this process, the raw rate logins are
                  compared with

With -serve-trivial ADDR it instead serves a trivial baseline that answers
the same routes with fixed bodies, to measure the machine's ceiling:

  tessera bench -serve-trivial 127.0.0.1:9090 &
  tessera bench -url http://127.0.0.1:9090

Flags:
`

// Command is the "tessera bench" CLI entry point. args excludes the
// command name. Results go to stdout, usage and diagnostics to stderr.
// A run that completes returns nil even if requests failed: failures are
// part of the report. SIGINT and SIGTERM end the run (or the trivial
// server) early, like ctx being cancelled.
// TokenEnv is the variable bench takes its API token from when -token is
// not given.
const TokenEnv = "TESSERA_TOKEN"

func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}

	var cfg Config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base `URL` of the server")
	// The env default is applied after parsing so -help never prints a secret.
	fs.StringVar(&cfg.Token, "token", "", "API client bearer `token` (default $TESSERA_TOKEN)")
	fs.IntVar(&cfg.Concurrency, "c", 32, "number of concurrent clients")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "run `duration`")
	fs.Int64Var(&cfg.MaxPairs, "n", 0, "stop after this many pairs (0: only -d bounds the run)")
	fs.StringVar(&cfg.Method, "method", "email", "verification `method`: email or phone")
	fs.DurationVar(&cfg.RequestTimeout, "timeout", 10*time.Second, "per-request `timeout`")
	trivialAddr := fs.String("serve-trivial", "", "serve the trivial baseline on `ADDR` (host:port) instead of generating load")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	mode := fs.String("mode", "pairs", "what to measure: pairs, login, refresh or argon2")
	email := fs.String("email", "", "account `email` for -mode login and refresh")
	window := fs.Duration("window", 10*time.Second, "first and last `stretch` reported apart in -mode login, refresh and argon2")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	if cfg.Token == "" {
		cfg.Token = os.Getenv(TokenEnv)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *trivialAddr != "" {
		return ServeTrivial(ctx, *trivialAddr, stdout)
	}

	if *mode != "pairs" {
		var res *OpsResult
		switch *mode {
		case "argon2":
			res = RunArgon2(ctx, cfg.Concurrency, cfg.Duration, *window)
		case "login", "refresh":
			res, err := RunAccounts(ctx, AccountConfig{URL: cfg.URL, Mode: *mode, Email: *email, Password: os.Getenv("TESSERA_BENCH_PASSWORD"),
				Concurrency: cfg.Concurrency, Duration: cfg.Duration, RequestTimeout: cfg.RequestTimeout, Window: *window})
			if err != nil {
				return err
			}
			return writeOps(stdout, res, *asJSON)
		default:
			return fmt.Errorf("unsupported -mode %q: want pairs, login, refresh or argon2", *mode)
		}
		return writeOps(stdout, res, *asJSON)
	}

	res, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return WriteJSON(stdout, res)
	}
	return WriteText(stdout, res)
}

func writeOps(w io.Writer, res *OpsResult, asJSON bool) error {
	if asJSON {
		return WriteOpsJSON(w, res)
	}
	return WriteOpsText(w, res)
}

// WriteText writes res as a short human-readable block.
func WriteText(w io.Writer, res *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "target      %s (method %s, %d clients, %s elapsed)\n",
		res.URL, res.Method, res.Concurrency, res.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "pairs       %d\n", res.Pairs)
	fmt.Fprintf(&b, "pairs/s     %.1f\n", res.PairsPerSec)
	fmt.Fprintf(&b, "requests/s  %.1f\n", res.RequestsPerSec)
	fmt.Fprintf(&b, "request     p50 %s  p99 %s  max %s\n",
		fmtDuration(res.RequestP50), fmtDuration(res.RequestP99), fmtDuration(res.RequestMax))
	fmt.Fprintf(&b, "pair        p50 %s  p99 %s\n", fmtDuration(res.PairP50), fmtDuration(res.PairP99))
	fmt.Fprintf(&b, "errors      %d\n", res.Errors)
	for _, s := range res.ErrorSamples {
		fmt.Fprintf(&b, "  %6d × %s\n", s.Count, s.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonResult is the -json shape: flat, snake_case, durations in
// milliseconds, so shell scripts can read fields without parsing units.
type jsonResult struct {
	URL            string        `json:"url"`
	Method         string        `json:"method"`
	Concurrency    int           `json:"concurrency"`
	ElapsedSec     float64       `json:"elapsed_s"`
	Pairs          int64         `json:"pairs"`
	Requests       int64         `json:"requests"`
	Errors         int64         `json:"errors"`
	PairsPerSec    float64       `json:"pairs_per_sec"`
	RequestsPerSec float64       `json:"requests_per_sec"`
	RequestP50Ms   float64       `json:"request_p50_ms"`
	RequestP99Ms   float64       `json:"request_p99_ms"`
	RequestMaxMs   float64       `json:"request_max_ms"`
	PairP50Ms      float64       `json:"pair_p50_ms"`
	PairP99Ms      float64       `json:"pair_p99_ms"`
	ErrorSamples   []ErrorSample `json:"error_samples"`
}

// WriteJSON writes res as one JSON object on one line.
func WriteJSON(w io.Writer, res *Result) error {
	samples := res.ErrorSamples
	if samples == nil {
		samples = []ErrorSample{} // [] rather than null for consumers
	}
	return json.NewEncoder(w).Encode(jsonResult{
		URL:            res.URL,
		Method:         res.Method,
		Concurrency:    res.Concurrency,
		ElapsedSec:     res.Elapsed.Seconds(),
		Pairs:          res.Pairs,
		Requests:       res.Requests,
		Errors:         res.Errors,
		PairsPerSec:    res.PairsPerSec,
		RequestsPerSec: res.RequestsPerSec,
		RequestP50Ms:   ms(res.RequestP50),
		RequestP99Ms:   ms(res.RequestP99),
		RequestMaxMs:   ms(res.RequestMax),
		PairP50Ms:      ms(res.PairP50),
		PairP99Ms:      ms(res.PairP99),
		ErrorSamples:   samples,
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtDuration rounds to microseconds: nanosecond digits are noise here.
// Zero means no samples: nothing real completes in zero time.
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	if d >= time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}
