package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/apiclient"
	"github.com/tessera-id/tessera/internal/verify"
)

// These tests run the real binary, as an operator would.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tessera-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tessera")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// command returns the binary with a clean environment plus env.
func command(dataDir string, args []string, env ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TESSERA_DATA_DIR=" + dataDir, "TESSERA_ADDR=127.0.0.1:0"}, env...)
	return cmd
}

// server is a running `tessera serve`.
type server struct {
	cmd    *exec.Cmd
	url    string
	token  string        // set when the start created the quickstart client
	banner []string      // what serve printed up to its last line, "Try passkeys…"
	stderr *lockedScreen // the log, read while serve writes it
	done   chan error
}

var listening = regexp.MustCompile(`Tessera is listening on (http://\S+)`)

// startServer starts `tessera serve` and waits for its welcome text.
func startServer(t *testing.T, dataDir string, env ...string) *server {
	t.Helper()
	s := &server{cmd: command(dataDir, []string{"serve"}, env...), stderr: &lockedScreen{changed: make(chan struct{}, 1)}, done: make(chan error, 1)}
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		s.done <- s.cmd.Wait()
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited before it was ready; stderr:\n%s", s.stderr)
			}
			s.banner = append(s.banner, line)
			if m := listening.FindStringSubmatch(line); m != nil {
				s.url = m[1]
			}
			if tok := strings.TrimSpace(line); strings.HasPrefix(tok, "tsk_") {
				s.token = tok
			}
			if strings.HasPrefix(line, "Try passkeys") {
				go func() {
					for range lines {
					}
				}()
				return s
			}
		case <-deadline:
			t.Fatalf("serve did not print its welcome; stderr:\n%s", s.stderr)
		}
	}
}

func (s *server) post(t *testing.T, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s answered non-JSON %q", path, raw)
	}
	return res.StatusCode, out
}

func TestFirstStartCreatesKeysAndAClient(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	if s.token == "" {
		t.Fatal("a first start on an empty database printed no token")
	}
	for _, name := range []string{"hmac.key", "encryption.keys", "tessera.db"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	res, err := http.Get(s.url + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
	status, body := s.post(t, "/methods/email/actions/initiate", s.token, `{"consumer":"new@example.com"}`)
	if status != 200 {
		t.Fatalf("first call answered %d %v", status, body)
	}
	// On loopback with SQLite the development inbox is on, and the banner
	// says where.
	if banner := strings.Join(s.banner, "\n"); !strings.Contains(banner, s.url+"/dev/inbox") {
		t.Fatalf("the banner does not point to the development inbox:\n%s", banner)
	}
	if res, err := http.Get(s.url + "/dev/inbox"); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /dev/inbox: %v %v", res, err)
	}
}

// TestAcknowledgedWritesSurviveKill9 kills the server with SIGKILL right
// after an initiate was answered, restarts it, and validates the code.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	status, body := s.post(t, "/methods/email/actions/initiate", s.token, `{"consumer":"k@example.com","policy":{"forcedCode":"731946"}}`)
	if status != 200 {
		t.Fatalf("initiate: %d %v", status, body)
	}
	id := body["verificationId"].(string)
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.done <- nil // for the cleanup

	s2 := startServer(t, dir)
	status, body = s2.post(t, "/methods/email/verifiers/"+id+"/actions/validate", s.token, `{"code":"731946"}`)
	if status != 200 {
		t.Fatalf("after kill -9 and restart, validate answered %d %v", status, body)
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	s := startServer(t, t.TempDir(), "TESSERA_SMTP_HOTS=mail.example") // and a typo, reported at start
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- nil
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, s.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
	if !strings.Contains(s.stderr.String(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "TESSERA_SMTP_HOTS is not a Tessera setting and is ignored (did you mean TESSERA_SMTP_HOST?)") {
		t.Fatalf("the misspelt variable was not reported at start:\n%s", s.stderr)
	}
}

func TestClientCommands(t *testing.T) {
	t.Parallel() // mostly waits (for a timeout, a cache, a lease): let the others run
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := command(dir, args).Output()
		if err != nil {
			t.Fatalf("tessera %v: %v", args, err)
		}
		return string(out)
	}
	out := run("client", "create", "--init", "shop")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "tsk_") {
		t.Fatalf("the last line of client create is %q, want the token", token)
	}
	if list := run("client", "list"); !strings.Contains(list, "shop") || strings.Contains(list, token) {
		t.Fatalf("client list printed:\n%s", list)
	}

	s := startServer(t, dir)
	if s.token != "" {
		t.Fatal("serve created a quickstart client although one existed")
	}
	if status, _ := s.post(t, "/methods/email/actions/initiate", token, `{"consumer":"a@example.com"}`); status != 200 {
		t.Fatalf("the new client's token answered %d", status)
	}
	run("client", "revoke", "shop")
	// A running server remembers valid tokens for apiclient.CacheTTL.
	for deadline := time.Now().Add(apiclient.CacheTTL + 5*time.Second); ; time.Sleep(250 * time.Millisecond) {
		status, _ := s.post(t, "/methods/email/actions/initiate", token, `{"consumer":"a@example.com"}`)
		if status == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a revoked token still answered %d after %v", status, apiclient.CacheTTL)
		}
	}
	if err := command(dir, []string{"client", "create", "shop"}).Run(); err == nil {
		t.Fatal("a second client with the same name was created")
	}
}

func TestBadConfigurationSaysWhatToFix(t *testing.T) {
	cmd := command(t.TempDir(), []string{"serve"}, "TESSERA_LOG_FORMAT=xml", "TESSERA_DATABASE_URL=mysql://x")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("serve started with a bad configuration")
	}
	for _, want := range []string{"TESSERA_LOG_FORMAT", "TESSERA_DATABASE_URL"} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("the error does not name %s:\n%s", want, stderr.String())
		}
	}
}

func TestUserAndKeysCommands(t *testing.T) {
	dir := t.TempDir()
	create := command(dir, []string{"user", "create", "ops@example.com", "--verified", "--init"})
	create.Stdin = strings.NewReader("a long operator password\n")
	out, err := create.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Created user ops@example.com") || !strings.Contains(string(out), "status active") {
		t.Fatalf("user create: %v\n%s", err, out)
	}
	again := command(dir, []string{"user", "create", "OPS@example.com"})
	again.Stdin = strings.NewReader("another long password\n")
	if err := again.Run(); err == nil {
		t.Fatal("a second account with the same email was created")
	}
	s := startServer(t, dir)
	status, body := s.post(t, "/auth/login", "", `{"email":"ops@example.com","password":"a long operator password"}`)
	if status != 200 || body["idToken"] == nil {
		t.Fatalf("login: %d %v", status, body)
	}
	if out, err := command(dir, []string{"keys", "rotate"}).CombinedOutput(); err != nil || !strings.Contains(string(out), "Added signing key") {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	out, err = command(dir, []string{"keys", "list"}).Output()
	// The new key is published but waits TESSERA_KEY_PUBLISH_AHEAD to sign.
	if err != nil || strings.Count(string(out), "EdDSA") != 2 || !strings.Contains(string(out), " next ") || !strings.Contains(string(out), " active ") {
		t.Fatalf("keys list after a rotation:\n%s", out)
	}
	if out, err := command(dir, []string{"keys", "rotate"}).CombinedOutput(); err == nil || !strings.Contains(string(out), "--now") {
		t.Fatalf("a second rotate while a key waits: %v\n%s", err, out)
	}
}

func TestConfigMasksSecrets(t *testing.T) {
	out, err := command(t.TempDir(), []string{"config"},
		"TESSERA_DATABASE_URL=postgres://app:pa55word@db.example:5432/tessera",
		"TESSERA_HMAC_KEY=iozc/to1PtvZfluMcTHEoOR8E2chhABeoIWmgF8L1xo=", "TESSERA_ENCRYPTION_KEYS=k1:tAzLQHJ1/w1voIPFSvoUldS+qiztdBPzJJQ9ksVf8Pg=",
		"TESSERA_SMS_SENDER=twilio", "TESSERA_TWILIO_ACCOUNT_SID=AC0123", "TESSERA_TWILIO_AUTH_TOKEN=tw1l10-t0ken", "TESSERA_TWILIO_FROM=+14155550100",
	).CombinedOutput()
	if err != nil {
		t.Fatalf("tessera config: %v\n%s", err, out)
	}
	for _, secret := range []string{"pa55word", "tw1l10-t0ken"} {
		if strings.Contains(string(out), secret) {
			t.Fatalf("tessera config printed the secret %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"TESSERA_TWILIO_AUTH_TOKEN", "******** (set)", "postgres://app:xxxxx@db.example:5432/tessera", "TESSERA_SMS_SENDER                    twilio",
		"TESSERA_DB_TIMEOUT                    5s"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("tessera config lacks %q:\n%s", want, out)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range []string{"serve", "client", "user", "keys", "migrate", "config", "template"} {
		out, err := command(t.TempDir(), []string{c, "--help"}).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "Usage:") {
			t.Errorf("tessera %s --help: %v\n%s", c, err, out)
		}
	}
	if out, err := command(t.TempDir(), []string{"--help"}).Output(); err != nil || !strings.Contains(string(out), "tessera config") {
		t.Errorf("tessera --help: %v\n%s", err, out)
	}
}

// TestSlowClientsAreCutOff: a client that sends its headers slowly (a
// slow-loris attack holding connections open) is disconnected by the
// server's header timeout instead of keeping the connection forever.
func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel() // mostly waits (for a timeout, a cache, a lease): let the others run
	s := startServer(t, t.TempDir())
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /auth/login HTTP/1.1\r\nHost: tessera\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	// The header timeout is 5 s; give it ample room before calling it a hang.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a half-sent request open for 20 s")
	}
}

// TestTemplateAndPolicyCommands registers a template and limits a client to
// it with the commands, as an operator would; the running server then
// refuses the client's free text and sends the template.
func TestTemplateAndPolicyCommands(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := command(dir, args).CombinedOutput()
		if err != nil {
			t.Fatalf("tessera %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	lines := strings.Split(strings.TrimSpace(run("client", "create", "shop", "--init")), "\n")
	token := lines[len(lines)-1]
	if out, err := command(dir, []string{"template", "add", "login", "--body", "no placeholder"}).CombinedOutput(); err == nil || !strings.Contains(string(out), "{{{CODE}}}") {
		t.Fatalf("a body without {{{CODE}}} was accepted: %v\n%s", err, out)
	}
	run("template", "add", "login", "--subject", "Acme code", "--body", "Acme code: {{{CODE}}}")
	if out := run("template", "list"); !strings.Contains(out, "login") || !strings.Contains(out, "Acme code: {{{CODE}}}") {
		t.Fatalf("template list printed:\n%s", out)
	}
	if out := run("client", "policy", "shop", "--from-domain", "acme.example", "--templates-only"); !strings.Contains(out, "acme.example") || !strings.Contains(out, "templates only") {
		t.Fatalf("client policy printed:\n%s", out)
	}
	if out, _ := command(dir, []string{"client", "policy", "--help"}).CombinedOutput(); !strings.HasPrefix(string(out), "Usage:") {
		t.Fatalf("client policy --help printed:\n%s", out)
	}

	s := startServer(t, dir)
	status, body := s.post(t, "/methods/email/actions/initiate", token, `{"consumer":"a@example.com","template":{"body":"Call us: {{{CODE}}}"}}`)
	if status != 403 || body["code"] != "forbidden" {
		t.Fatalf("free text answered %d %v, want 403 forbidden", status, body)
	}
	if status, body = s.post(t, "/methods/email/actions/initiate", token, `{"consumer":"a@example.com","template":{"id":"login","fromEmail":"codes@acme.example"}}`); status != 200 {
		t.Fatalf("the registered template answered %d %v", status, body)
	}
	run("client", "policy", "shop", "--clear")
	// A running server remembers a policy for verify.SendingPolicyTTL.
	for deadline := time.Now().Add(verify.SendingPolicyTTL + 5*time.Second); ; time.Sleep(250 * time.Millisecond) {
		status, body = s.post(t, "/methods/email/actions/initiate", token, `{"consumer":"a@example.com","template":{"body":"Anything: {{{CODE}}}"}}`)
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after --clear free text still answered %d %v after %v", status, body, verify.SendingPolicyTTL)
		}
	}
}
