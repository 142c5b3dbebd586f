package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"golang.org/x/term"

	"github.com/tessera-id/tessera/internal/config"
	"github.com/tessera-id/tessera/internal/loadtest"
)

// What every command shares, so that none surprises: --help anywhere
// prints help and does nothing else, flags go before or after the
// arguments, and only serve (or --init) creates a data directory.

// helpAsked reports whether args (after the command) ask for help: -h,
// -help or --help anywhere before a "--", or "help" as the subcommand.
func helpAsked(args []string) bool {
	if len(args) > 0 && args[0] == "help" {
		return true
	}
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

// printHelp prints the help of topic (a command and maybe a subcommand),
// or the general usage for an unknown or empty topic.
func printHelp(ctx context.Context, w io.Writer, topic []string) {
	if len(topic) == 0 {
		fmt.Fprint(w, usage)
		return
	}
	if topic[0] == "bench" {
		_ = loadtest.Command(ctx, []string{"-h"}, w, w)
		return
	}
	if len(topic) > 1 {
		if text, ok := commandHelp[topic[0]+" "+topic[1]]; ok {
			fmt.Fprint(w, text)
			return
		}
	}
	if text, ok := commandHelp[topic[0]]; ok {
		fmt.Fprint(w, text)
		return
	}
	fmt.Fprint(w, usage)
}

// parseFlags parses args with fs, flags allowed before, between and after
// the positional arguments (the flag package stops at the first
// positional one), and returns the positional arguments. Everything after
// "--" is positional. A flag error comes with usage.
func parseFlags(fs *flag.FlagSet, args []string, usage string) ([]string, error) {
	fs.SetOutput(io.Discard) // the error is returned instead, with usage
	var positional []string
	for len(args) > 0 {
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%v\n%s", err, usage)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(positional, rest...), nil // Parse took the "--"
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return positional, nil
}

// initKey marks a context whose command was given --init.
type initKey struct{}

// takeInit removes --init from args and records it in the context.
func takeInit(ctx context.Context, args []string) (context.Context, []string) {
	out := args[:0:0]
	for i, a := range args {
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if a == "--init" || a == "-init" {
			ctx = context.WithValue(ctx, initKey{}, true)
			continue
		}
		out = append(out, a)
	}
	return ctx, out
}

// environ is the process environment, for reporting unknown variables.
var environ = os.Environ

// loadConfig loads the configuration for a command other than serve: it
// works on an existing data directory and creates one only with --init.
func loadConfig(ctx context.Context, getenv func(string) string, stderr io.Writer) (*config.Config, error) {
	mode := config.Existing
	if ctx.Value(initKey{}) != nil {
		mode = config.Create
	}
	cfg, err := config.LoadMode(getenv, mode)
	if errors.Is(err, config.ErrNoData) {
		return nil, fmt.Errorf("%w\nThis command works on the data of a Tessera that serve has already started: run it in the directory serve runs in, or set TESSERA_DATA_DIR to serve's data directory. Add --init to create a new, empty Tessera there", err)
	}
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	for _, w := range cfg.UnknownVariables(environ(), loadtest.TokenEnv) {
		fmt.Fprintln(stderr, "tessera: warning:", w)
	}
	return cfg, nil
}

// versionCommand prints what this binary was built from.
func versionCommand(w io.Writer) error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintf(w, "tessera (unknown version) %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}
	fmt.Fprintf(w, "tessera %s %s %s/%s\n", info.Main.Version, info.GoVersion, runtime.GOOS, runtime.GOARCH)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		line := "commit " + rev
		if t := settings["vcs.time"]; t != "" {
			line += " (" + t + ")"
		}
		if settings["vcs.modified"] == "true" {
			line += ", with uncommitted changes"
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "module", info.Main.Path)
	return nil
}

// readPassword reads the new account's password: on a terminal it asks
// twice without echo; otherwise it reads the first line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer, email string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "Password for %s: ", email)
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		fmt.Fprint(stderr, "Repeat it: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		if string(pw) != string(again) {
			return "", errors.New("the passwords differ; nothing was created")
		}
		return string(pw), nil
	}
	pw, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	return strings.TrimRight(pw, "\r\n"), nil
}

// selfCommand is how to run this program again in the same shell: "go run
// ./cmd/tessera" when go run started it, else its path.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "tessera"
	}
	if builtByGoRun(exe) {
		return "go run ./cmd/tessera"
	}
	if !strings.Contains(os.Args[0], string(filepath.Separator)) {
		return os.Args[0] // found in PATH: the name works
	}
	return shellQuote(exe)
}

// builtByGoRun reports whether exe is a binary go run built: it lives in
// go's temporary build directory (/tmp/go-build…/b001/exe/) or, when go
// run reused it, in the build cache (…/go-build/ab/…-d/).
func builtByGoRun(exe string) bool {
	for d := filepath.Dir(exe); d != filepath.Dir(d); d = filepath.Dir(d) {
		if strings.HasPrefix(filepath.Base(d), "go-build") {
			return true
		}
	}
	return false
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
