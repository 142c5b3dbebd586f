package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The surprises of issue 15, each as an operator met it.

// newData makes a data directory the way an operator does: with a command
// and --init. It returns the directory and the client's token.
func newData(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	out, err := command(dir, []string{"client", "create", "shop", "--init"}).Output()
	if err != nil {
		t.Fatalf("client create --init: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return dir, lines[len(lines)-1]
}

func TestHelpDoesNothingElse(t *testing.T) {
	dir, _ := newData(t)
	for _, args := range [][]string{
		{"client", "create", "--help"}, {"client", "create", "-h"}, {"client", "revoke", "--help"},
		{"client", "revoke", "shop", "--help"}, {"client", "list", "--help"}, {"client", "help"},
		{"client", "policy", "shop", "--clear", "--help"}, {"client", "--help"},
		{"user", "create", "--help"}, {"user", "create", "x@example.com", "-h"}, {"user", "--help"},
		{"keys", "rotate", "--help"}, {"template", "add", "x", "--body", "{{{CODE}}}", "--help"},
		{"template", "remove", "x", "-help"}, {"audit", "--help"}, {"migrate", "--help"},
		{"serve", "--help"}, {"config", "--help"}, {"bench", "--help"}, {"help", "client"},
	} {
		cmd := command(dir, args)
		cmd.Stdin = strings.NewReader("a long enough password\n")
		out, err := cmd.Output()
		if err != nil || !strings.HasPrefix(string(out), "Usage:") {
			t.Errorf("tessera %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	out, err := command(dir, []string{"client", "list"}).Output()
	if err != nil {
		t.Fatal(err)
	}
	// Only shop, and not revoked: no client called --help, no revocation.
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 2 || !strings.HasSuffix(lines[1], "-") {
		t.Errorf("after the --help runs, client list printed:\n%s", out)
	}
	if out, _ := command(dir, []string{"keys", "list"}).Output(); strings.Count(string(out), "\n") != 1 { // the header: no key yet
		t.Errorf("keys rotate --help rotated:\n%s", out)
	}
	if out, _ := command(dir, []string{"template", "list"}).Output(); strings.Count(string(out), "\n") != 1 {
		t.Errorf("template add --help added:\n%s", out)
	}
	// --help on a directory that does not exist creates nothing.
	empty := filepath.Join(t.TempDir(), "none")
	if out, err := command(empty, []string{"client", "create", "--help"}).Output(); err != nil || !strings.HasPrefix(string(out), "Usage:") {
		t.Errorf("client create --help without data: %v\n%s", err, out)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("--help created %s", empty)
	}
}

func TestVersion(t *testing.T) {
	out, err := command(t.TempDir(), []string{"version"}).Output()
	if err != nil || !strings.HasPrefix(string(out), "tessera ") || !strings.Contains(string(out), "go1.") ||
		!strings.Contains(string(out), "github.com/tessera-id/tessera") {
		t.Fatalf("tessera version: %v\n%s", err, out)
	}
}

// TestFlagsWhereverHelpShowsThem: flags go before or after the arguments.
func TestFlagsWhereverHelpShowsThem(t *testing.T) {
	dir, _ := newData(t)
	for _, args := range [][]string{
		{"user", "create", "--verified", "a@example.com"},
		{"user", "create", "b@example.com", "--verified"},
	} {
		cmd := command(dir, args)
		cmd.Stdin = strings.NewReader("a long enough password\n")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Created user") {
			t.Errorf("tessera %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := command(dir, args).CombinedOutput()
		if err != nil {
			t.Fatalf("tessera %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("template", "add", "--body", "Code {{{CODE}}}", "--locale", "de", "login")
	if out := run("template", "list"); !strings.Contains(out, "login  de") {
		t.Errorf("template add with the ID last:\n%s", out)
	}
	if out := run("client", "policy", "--templates-only", "shop"); !strings.Contains(out, "templates only") {
		t.Errorf("client policy with the flag first:\n%s", out)
	}
	if out, err := command(dir, []string{"client", "create", "--bogus", "x"}).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "-bogus") || !strings.Contains(string(out), "Usage:") {
		t.Errorf("an unknown flag: %v\n%s", err, out)
	}
}

// TestCommandsRefuseANewDataDirectory: a command run from the wrong
// directory says so instead of making a second, empty Tessera.
func TestCommandsRefuseANewDataDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tessera-data")
	for _, args := range [][]string{
		{"client", "create", "shop"}, {"client", "list"}, {"keys", "rotate"}, {"migrate"},
		{"template", "list"}, {"audit"}, {"user", "create", "x@example.com"},
	} {
		cmd := command(dir, args)
		cmd.Stdin = strings.NewReader("a long enough password\n")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("tessera %s worked on a directory that does not exist:\n%s", strings.Join(args, " "), out)
			continue
		}
		for _, want := range []string{dir, "TESSERA_DATA_DIR", "--init"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("tessera %s: the error does not name %s:\n%s", strings.Join(args, " "), want, out)
			}
		}
	}
	if out, err := command(dir, []string{"config"}).CombinedOutput(); err != nil || !strings.Contains(string(out), "none yet") {
		t.Errorf("tessera config: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a command created %s", dir)
	}
	// An empty directory (mkdir by hand, a mount) is no Tessera either.
	os.Mkdir(dir, 0o700)
	if out, err := command(dir, []string{"client", "list"}).CombinedOutput(); err == nil {
		t.Errorf("client list on an empty directory:\n%s", out)
	}
	if out, err := command(dir, []string{"client", "list", "--init"}).CombinedOutput(); err != nil {
		t.Errorf("client list --init: %v\n%s", err, out)
	}
}

// TestUserCreateAsksOnATerminal: on a terminal, user create asks for the
// password twice, and the terminal does not show it.
func TestUserCreateAsksOnATerminal(t *testing.T) {
	dir, _ := newData(t)
	master, tty := openPTY(t)
	cmd := command(dir, []string{"user", "create", "tty@example.com"})
	var stdout bytes.Buffer
	cmd.Stdin, cmd.Stderr, cmd.Stdout = tty, tty, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	screen := &lockedScreen{changed: make(chan struct{}, 1)}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(screen, master) // ends when every copy of the terminal is closed
	}()
	const password = "typed on a terminal 42"
	for _, prompt := range []string{"Password for tty@example.com: ", "Repeat it: "} {
		screen.waitFor(t, prompt)
		// Typed before the program turns echo off, the password would show
		// whatever the program does: wait for it.
		waitForEchoOff(t, tty)
		if _, err := master.Write([]byte(password + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("user create on a terminal: %v\n%s", err, stdout.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("user create did not finish")
	}
	tty.Close()
	<-drained
	if !strings.Contains(stdout.String(), "Created user tty@example.com") {
		t.Fatalf("stdout: %q", stdout.String())
	}
	if strings.Contains(screen.String(), password) {
		t.Fatalf("the terminal showed the password: %q", screen.String())
	}
}

// lockedScreen is what the terminal showed, for one writer and a reader.
type lockedScreen struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (s *lockedScreen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

func (s *lockedScreen) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func (s *lockedScreen) waitFor(t *testing.T, text string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for !strings.Contains(s.String(), text) {
		select {
		case <-s.changed:
		case <-timeout:
			t.Fatalf("the terminal never showed %q; it shows %q", text, s.String())
		}
	}
}

// waitForEchoOff waits until the terminal's echo is off.
func waitForEchoOff(t *testing.T, tty *os.File) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the terminal's echo stayed on")
		}
		time.Sleep(5 * time.Millisecond) // polling a terminal setting: there is no event for it
	}
}

// openPTY opens a pseudo-terminal: the master end the test types into and
// the terminal the command reads.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// TestBannerCommandsWork pastes the commands serve prints on a restart,
// in another directory, and sees them work: a client is created, a code
// sent, and the code typed in validates.
func TestBannerCommandsWork(t *testing.T) {
	dir, _ := newData(t) // a client exists: serve prints how to make one
	s := startServer(t, dir)
	banner := strings.Join(s.banner, "\n")
	if strings.Contains(banner, "'$TOKEN") || strings.Contains(banner, "go run") {
		t.Fatalf("a binary's banner quotes $TOKEN in single quotes or names go run:\n%s", banner)
	}
	// block is the command starting with prefix, with its continuation lines.
	block := func(prefix string) string {
		for i, line := range s.banner {
			if strings.HasPrefix(line, prefix) {
				var cmd []string
				for _, l := range s.banner[i:] {
					cmd = append(cmd, l)
					if !strings.HasSuffix(l, `\`) {
						return strings.Join(cmd, "\n")
					}
				}
			}
		}
		t.Fatalf("the banner has no %q:\n%s", prefix, banner)
		return ""
	}
	paste := func(script, stdin string, env ...string) string {
		t.Helper()
		sh := exec.Command("bash", "-euo", "pipefail", "-c", script)
		sh.Dir = t.TempDir()
		sh.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
		sh.Stdin = strings.NewReader(stdin)
		out, err := sh.Output()
		if err != nil {
			t.Fatalf("pasting\n%s\nfailed: %v\n%s", script, err, out)
		}
		return string(out)
	}
	out := paste(block("  TOKEN=")+"\n"+block("  ID=$(curl")+"\necho \"$TOKEN\"; echo \"$ID\"", "")
	vars := strings.Fields(out)
	if len(vars) != 2 || !strings.HasPrefix(vars[0], "tsk_") || len(vars[1]) != 36 {
		t.Fatalf("after the first commands, TOKEN and ID are %q", out)
	}
	code := regexp.MustCompile(`verification code is (\d{6})`)
	timeout := time.After(20 * time.Second)
	for !code.MatchString(s.stderr.String()) {
		select {
		case <-s.stderr.changed:
		case <-timeout:
			t.Fatalf("no code in the log:\n%s", s.stderr)
		}
	}
	typed := code.FindStringSubmatch(s.stderr.String())[1] + "\n"
	out = paste(block("  printf 'Code: '")+"\n"+block("  curl -s"), typed, "TOKEN="+vars[0], "ID="+vars[1])
	if !strings.Contains(out, `"status":200`) || !strings.Contains(out, vars[1]) {
		t.Fatalf("validating with the typed code answered %s", out)
	}
}

func TestBuiltByGoRun(t *testing.T) {
	for path, want := range map[string]bool{
		"/tmp/go-build410132796/b001/exe/tessera":                               true,
		"/root/.cache/go-build/7e/7e9a2429526d8f277be29e9a426e582b9e-d/tessera": true,
		"/usr/local/bin/tessera":                                                false,
		"/home/ops/tessera/tessera":                                             false,
	} {
		if got := builtByGoRun(path); got != want {
			t.Errorf("builtByGoRun(%s) = %v", path, got)
		}
	}
}
