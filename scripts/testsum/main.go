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
	"flag"
	"fmt"
	"io"
	"os"
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
	summary := flag.Bool("summary", false, "print the summary of the event files named as arguments")
	slowest := flag.Int("slowest", 5, "with -summary, name this many slowest packages and tests")
	since := flag.Int64("since", 0, "with -summary, the Unix time the run started, for its duration (default: the first event's)")
	flag.Parse()
	if *summary {
		t, err := tallyFiles(flag.Args())
		if err == nil && *since > 0 {
			t.first = time.Unix(*since, 0)
			t.last = time.Now()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsum:", err)
			os.Exit(2)
		}
		t.print(os.Stdout, *slowest)
		if t.anyFailed() {
			os.Exit(1)
		}
		return
	}
	var rec io.Writer = io.Discard
	if *record != "" {
		f, err := os.OpenFile(*record, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsum:", err)
			os.Exit(2)
		}
		defer f.Close()
		rec = f
	}
	if err := render(os.Stdin, os.Stdout, rec); err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
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

type tally struct {
	packages, noTests, packagesFailed int
	passed, failed, skipped           int
	failedNames, skippedNames         []string
	pkgTime                           map[string]float64
	testTime                          map[string]float64
	first, last                       time.Time
}

func tallyFiles(names []string) (*tally, error) {
	t := &tally{pkgTime: map[string]float64{}, testTime: map[string]float64{}}
	for _, name := range names {
		f, err := os.Open(name)
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
		if !e.Time.IsZero() {
			if t.first.IsZero() || e.Time.Before(t.first) {
				t.first = e.Time
			}
			if e.Time.After(t.last) {
				t.last = e.Time
			}
		}
		name := strings.TrimPrefix(e.Package, modulePrefix(e.Package))
		if e.Test != "" {
			name += "." + e.Test
		}
		switch {
		case e.Action == "build-fail":
			t.packagesFailed++
			t.failedNames = append(t.failedNames, e.ImportPath+" (build)")
		case e.Test == "" && e.Action == "pass":
			t.packages++
			t.pkgTime[e.Package] += e.Elapsed
		case e.Test == "" && e.Action == "skip": // [no test files]
			t.packages++
			t.noTests++
		case e.Test == "" && e.Action == "fail":
			t.packages++
			t.packagesFailed++
			t.pkgTime[e.Package] += e.Elapsed
		case e.Test != "" && e.Action == "pass":
			t.passed++
			t.testTime[name] = e.Elapsed
		case e.Test != "" && e.Action == "fail":
			t.failed++
			t.failedNames = append(t.failedNames, name)
		case e.Test != "" && e.Action == "skip":
			t.skipped++
			t.skippedNames = append(t.skippedNames, name)
		}
	}
	return sc.Err()
}

// modulePrefix is the part of an import path every package of this
// module shares, left out of names to keep lines short.
func modulePrefix(pkg string) string {
	const mod = "github.com/tessera-id/tessera/"
	if strings.HasPrefix(pkg, mod) {
		return mod
	}
	return ""
}

func (t *tally) anyFailed() bool { return t.failed > 0 || t.packagesFailed > 0 }

func (t *tally) print(w io.Writer, slowest int) {
	if slowest > 0 {
		fmt.Fprintf(w, "slowest packages: %s\n", top(t.pkgTime, slowest))
		fmt.Fprintf(w, "slowest tests: %s\n", top(t.testTime, slowest))
	}
	if len(t.skippedNames) > 0 {
		fmt.Fprintf(w, "skipped: %s\n", strings.Join(t.skippedNames, ", "))
	}
	if len(t.failedNames) > 0 {
		fmt.Fprintf(w, "failed: %s\n", strings.Join(t.failedNames, ", "))
	}
	verdict := "PASS"
	if t.anyFailed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s: %d packages (%d without tests, %d failed), %d tests run: %d passed, %d failed, %d skipped in %s\n",
		verdict, t.packages, t.noTests, t.packagesFailed, t.passed+t.failed+t.skipped, t.passed, t.failed, t.skipped,
		t.last.Sub(t.first).Round(time.Second))
}

func top(times map[string]float64, n int) string {
	names := make([]string, 0, len(times))
	for name := range times {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return times[names[i]] > times[names[j]] })
	if len(names) > n {
		names = names[:n]
	}
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s %.1fs", strings.TrimPrefix(name, modulePrefix(name)), times[name])
	}
	return strings.Join(parts, ", ")
}
