// Command testsum turns the event stream of `go test -json` into what a
// person reads: the usual `ok`/`FAIL` line per package, the output of every
// failed test (and of tests cut short by a crash or timeout), and, when
// asked, the summary scripts/test ends with.
//
//	go test -json ./... | testsum -record events.json   render, keeping the events
//	testsum -summary events.json [more.json...]          the last lines of a run
//
// The events are kept in a file so scripts/test can add the fuzz stage's
// events to the same count and print one summary at the very end.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (see go doc test2json).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string // build-output and build-fail events
	Test       string
	Elapsed    float64
	Output     string
}

func main() {
	record := flag.String("record", "", "append every event read from standard input to this file")
	summary := flag.Bool("summary", false, "print the summary of the test event files named as arguments")
	fuzz := flag.String("fuzz", "", "with -summary, a file of fuzzing events, counted as fuzz targets")
	slowest := flag.Int("slowest", 5, "with -summary, name this many slowest packages and tests")
	since := flag.Int64("since", 0, "with -summary, the Unix time the run started, for its duration")
	flag.Parse()
	if *summary {
		tests, err := tallyFiles(flag.Args()...)
		if err != nil {
			fail(err)
		}
		var fuzzed *tally
		if *fuzz != "" {
			if fuzzed, err = tallyFiles(*fuzz); err != nil {
				fail(err)
			}
		}
		var took time.Duration
		if *since > 0 {
			took = time.Since(time.Unix(*since, 0))
		}
		if !printSummary(os.Stdout, tests, fuzzed, *slowest, took) {
			os.Exit(1)
		}
		return
	}
	var rec io.Writer = io.Discard
	if *record != "" {
		f, err := os.OpenFile(*record, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		rec = f
	}
	if err := render(os.Stdin, os.Stdout, rec); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "testsum:", err)
	os.Exit(2)
}

// render prints the human-readable form of the events on in to out as
// they arrive, copying each line to rec.
func render(in io.Reader, out, rec io.Writer) error {
	type key struct{ pkg, test string }
	pending := map[key][]string{} // output of tests still running
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		fmt.Fprintf(rec, "%s\n", line)
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			// Not an event (go vet or the linker writing to stdout): show it.
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		k := key{e.Package, e.Test}
		switch {
		case e.Action == "build-output":
			fmt.Fprint(out, e.Output)
		case e.Test != "" && e.Action == "output":
			pending[k] = append(pending[k], e.Output)
		case e.Test != "" && e.Action == "fail":
			fmt.Fprint(out, strings.Join(pending[k], ""))
			delete(pending, k)
		case e.Test != "" && (e.Action == "pass" || e.Action == "skip"):
			delete(pending, k)
		case e.Test == "" && e.Action == "output":
			if o := strings.TrimSpace(e.Output); o != "PASS" && o != "FAIL" && !strings.HasPrefix(o, "=== ") {
				fmt.Fprint(out, e.Output)
			}
		case e.Test == "" && e.Action == "fail":
			// A crash or timeout ends the package without ending its
			// tests: what they printed is the clue.
			for pk, lines := range pending {
				if pk.pkg == e.Package {
					fmt.Fprint(out, strings.Join(lines, ""))
					delete(pending, pk)
				}
			}
		}
	}
	return sc.Err()
}

// tally counts what a stream of events says ran.
type tally struct {
	packages                  map[string]bool // import path → passed
	noTests                   int
	passed, failed, skipped   int
	failedNames, skippedNames []string
	pkgTime, testTime         map[string]float64
	started                   map[string]time.Time // top-level tests by name
	testFails                 map[string]int       // failed tests by package
}

func tallyFiles(names ...string) (*tally, error) {
	t := &tally{packages: map[string]bool{}, pkgTime: map[string]float64{}, testTime: map[string]float64{}, started: map[string]time.Time{}, testFails: map[string]int{}}
	for _, name := range names {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a stage that did not run
		}
		if err != nil {
			return nil, err
		}
		err = t.read(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return t, nil
}

func (t *tally) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		name := short(e.Package)
		if e.Test != "" {
			name += "." + e.Test
		}
		switch {
		case e.Action == "build-fail":
			t.packages[e.ImportPath] = false
			t.failedNames = append(t.failedNames, short(e.ImportPath)+" (build)")
		case e.Test == "" && e.Action == "pass":
			if _, seen := t.packages[e.Package]; !seen {
				t.packages[e.Package] = true
			}
			t.pkgTime[e.Package] += e.Elapsed
		case e.Test == "" && e.Action == "skip": // [no test files]
			t.packages[e.Package] = true
			t.noTests++
		case e.Test == "" && e.Action == "fail":
			t.packages[e.Package] = false
			t.pkgTime[e.Package] += e.Elapsed
			if !slices.ContainsFunc(t.failedNames, func(n string) bool { return strings.HasPrefix(n, short(e.Package)) }) {
				t.failedNames = append(t.failedNames, short(e.Package)) // a crash or build failure
			}
		case e.Test != "" && e.Action == "run":
			t.started[name] = e.Time
		case e.Test != "" && e.Action == "pass":
			t.passed++
			// From start to end, not Elapsed: a test's Elapsed leaves out
			// its parallel subtests.
			if !strings.Contains(e.Test, "/") && !t.started[name].IsZero() {
				t.testTime[name] = e.Time.Sub(t.started[name]).Seconds()
			}
		case e.Test != "" && e.Action == "fail":
			t.failed++
			t.testFails[e.Package]++
			t.failedNames = append(t.failedNames, name)
		case e.Test != "" && e.Action == "skip":
			t.skipped++
			t.skippedNames = append(t.skippedNames, name)
		}
	}
	return sc.Err()
}

func (t *tally) packagesFailed() int {
	n := 0
	for _, ok := range t.packages {
		if !ok {
			n++
		}
	}
	return n
}

// failures counts the failed tests, and the failed packages without a
// failed test (a build error, a crash in TestMain) as one each.
func (t *tally) failures() int {
	n := t.failed
	for pkg, ok := range t.packages {
		if !ok && t.testFails[pkg] == 0 {
			n++
		}
	}
	return n
}

func (t *tally) ok() bool { return t.failed == 0 && t.packagesFailed() == 0 }

// short leaves out the module path every package of Tessera shares.
func short(pkg string) string {
	return strings.TrimPrefix(strings.TrimPrefix(pkg, "github.com/tessera-id/tessera"), "/")
}

// printSummary prints what ran, the last line a one-line verdict, and
// reports whether everything passed.
func printSummary(w io.Writer, tests, fuzzed *tally, slowest int, took time.Duration) bool {
	if slowest > 0 && len(tests.pkgTime) > 0 {
		fmt.Fprintf(w, "slowest packages: %s\n", top(tests.pkgTime, slowest, func(p string) string { return short(p) }))
		fmt.Fprintf(w, "slowest tests: %s\n", top(tests.testTime, slowest, func(n string) string { return n }))
	}
	ok := tests.ok()
	var skipped, failed []string
	skipped = append(skipped, tests.skippedNames...)
	failed = append(failed, tests.failedNames...)
	passed, failedN, skippedN := tests.passed, tests.failures(), tests.skipped
	ran := fmt.Sprintf("ran %d packages (%d without tests, %d failed) and %d tests (%d passed, %d failed, %d skipped)",
		len(tests.packages), tests.noTests, tests.packagesFailed(), tests.passed+tests.failed+tests.skipped, tests.passed, tests.failed, tests.skipped)
	if fuzzed != nil {
		ok = ok && fuzzed.ok()
		failed = append(failed, fuzzed.failedNames...)
		fuzzFailed := fuzzed.failures()
		ran += fmt.Sprintf(", fuzzed %d targets (%d passed, %d failed)", fuzzed.passed+fuzzFailed, fuzzed.passed, fuzzFailed)
		passed, failedN = passed+fuzzed.passed, failedN+fuzzFailed
	}
	if took > 0 {
		ran += " in " + took.Round(time.Second).String()
	}
	if len(skipped) > 0 {
		fmt.Fprintf(w, "skipped: %s\n", strings.Join(skipped, ", "))
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "failed: %s\n", strings.Join(failed, ", "))
	}
	fmt.Fprintln(w, ran)
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	// The last line in the plain form CI systems read: "N passed, N
	// failed, N skipped", one word and a colon before it.
	fmt.Fprintf(w, "%s: %d passed, %d failed, %d skipped\n", verdict, passed, failedN, skippedN)
	return ok
}

func top(times map[string]float64, n int, name func(string) string) string {
	keys := make([]string, 0, len(times))
	for k := range times {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return times[keys[i]] > times[keys[j]] })
	if len(keys) > n {
		keys = keys[:n]
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.1fs", name(k), times[k])
	}
	return strings.Join(parts, ", ")
}
