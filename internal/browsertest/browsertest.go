// Package browsertest starts headless Chromium for tests, driven with
// chromedp, and gives it a virtual WebAuthn authenticator (the DevTools
// WebAuthn domain) so a test can register and use passkeys in a real
// browser.
//
// Chromium's path comes from ChromiumEnv (scripts/test sets it), else from
// PATH (chromium, then chromium-browser). Without a browser that starts,
// the tests skip, or fail when storetest.RequireEnv is set, as CI sets it.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// ChromiumEnv names the variable with the path of the Chromium binary.
const ChromiumEnv = "TESSERA_TEST_CHROMIUM"

// RequireEnv, when set (CI sets it), makes a browser that is missing or
// cannot start fail the test instead of skipping it. It is the variable of
// storetest.RequireEnv, repeated so that this package does not import the
// store.
const RequireEnv = "TESSERA_TEST_REQUIRE_SERVERS"

// StartTimeout bounds how long Chromium may take to start and open its
// first tab.
const StartTimeout = 30 * time.Second

// ExecPath returns the Chromium binary to run: ChromiumEnv's value, or the
// first of chromium and chromium-browser found in PATH.
func ExecPath() (string, error) {
	if p := os.Getenv(ChromiumEnv); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", ChromiumEnv, p, err)
		}
		return found, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if found, err := exec.LookPath(name); err == nil {
			return found, nil
		}
	}
	return "", fmt.Errorf("no chromium or chromium-browser in PATH and %s is not set (Debian: apt-get install chromium)", ChromiumEnv)
}

// Start starts headless Chromium with one blank tab and returns the
// chromedp context of that tab. The browser stops when the test ends. A
// browser that is missing or does not start skips the test, or fails it
// when RequireEnv is set.
//
// Do not put a deadline on the returned context itself; derive one for
// each step (context.WithTimeout(ctx, ...)): cancelling the returned
// context stops the browser.
func Start(t testing.TB) context.Context {
	t.Helper()
	path, err := ExecPath()
	if err != nil {
		unavailable(t, err)
	}
	output := &syncBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// New headless mode: the full browser without a window, which has
		// the WebAuthn machinery the virtual authenticator plugs into.
		chromedp.Flag("headless", "new"),
		// Root in a container has no user namespaces for the sandbox.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// A container's /dev/shm is often 64 MB; use /tmp instead.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.CombinedOutput(output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})

	// The first Run starts the browser and binds it to ctx, so ctx must not
	// have a deadline: bound the start from outside instead.
	began := time.Now()
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	timer := time.NewTimer(StartTimeout)
	defer timer.Stop()
	select {
	case err = <-done:
	case <-timer.C:
		cancel()
		<-done
		err = fmt.Errorf("no tab after %v", StartTimeout)
	}
	if err != nil {
		unavailable(t, fmt.Errorf("start %s: %w\n%s", path, err, output.tail(4096)))
	}
	t.Logf("browsertest: %s started in %v", path, time.Since(began).Round(time.Millisecond))
	return ctx
}

// unavailable skips the test, or fails it when RequireEnv is set.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is set, so the browser tests must run: %v", RequireEnv, err)
	}
	t.Skipf("no browser: %v", err)
}

// AddVirtualAuthenticator enables the WebAuthn domain on the tab of ctx and
// adds a virtual platform authenticator to it: CTAP2, internal transport,
// resident (discoverable) keys, user verification that always succeeds and
// presence that needs no touch. The browser's WebAuthn calls on that tab
// then use it instead of real hardware.
func AddVirtualAuthenticator(ctx context.Context) (authenticatorID string, err error) {
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		return "", fmt.Errorf("WebAuthn.enable: %w", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		return "", fmt.Errorf("WebAuthn.addVirtualAuthenticator: %w", err)
	}
	if res.AuthenticatorID == "" {
		return "", errors.New("WebAuthn.addVirtualAuthenticator: no authenticator id")
	}
	return string(res.AuthenticatorID), nil
}

// Credentials lists the credentials the virtual authenticator holds, with
// their ids, resident flag, RP ID, user handle and sign count.
func Credentials(ctx context.Context, authenticatorID string) ([]*webauthn.Credential, error) {
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{
		AuthenticatorID: webauthn.AuthenticatorID(authenticatorID),
	})
	if err != nil {
		return nil, fmt.Errorf("WebAuthn.getCredentials: %w", err)
	}
	return res.Credentials, nil
}

// WaitFor evaluates the JavaScript expression on the tab of ctx every
// 50ms until its value is neither null, undefined nor false, and decodes
// that value into T. It returns at once when the expression throws, and
// when ctx ends.
//
// Use it rather than chromedp.Poll on a page with a strict CSP: Poll's
// page function builds the predicate with new Function, which a CSP
// without 'unsafe-eval' refuses, while Runtime.evaluate is not subject to
// the page's CSP.
func WaitFor[T any](ctx context.Context, expression string) (T, error) {
	wrapped := "(() => { const v = (" + expression + "); return v === undefined || v === false ? null : v; })()"
	for {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](wrapped))
		if err != nil {
			var zero T
			return zero, err
		}
		if len(raw) > 0 && string(raw) != "null" {
			var v T
			err := json.Unmarshal(raw, &v)
			return v, err
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("waiting for %s: %w", expression, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// syncBuffer collects the browser's output, which arrives from another
// goroutine, keeping about the last maxOutput bytes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const maxOutput = 64 << 10

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > 2*maxOutput {
		b.buf.Next(b.buf.Len() - maxOutput)
	}
	return b.buf.Write(p)
}

// tail returns the last n bytes written.
func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.Bytes()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return string(s)
}

// Status is what a page's #status element says: the step that ran
// (data-step), how it ended (data-state: ok or error), the API's error code
// or the browser's error name (data-code), and the text a person reads.
type Status struct {
	Step  string `json:"step"`
	State string `json:"state"`
	Code  string `json:"code"`
	Text  string `json:"text"`
}

// Await waits until #status reports that step has ended.
func Await(t testing.TB, ctx context.Context, step string) Status {
	t.Helper()
	s, err := WaitFor[Status](ctx, `(() => {
		const s = document.getElementById("status");
		if (s.dataset.step !== "`+step+`" || s.dataset.state === "busy") return null;
		return {step: s.dataset.step, state: s.dataset.state, code: s.dataset.code || "", text: s.textContent};
	})()`)
	if err != nil {
		t.Fatalf("waiting for the step %s: %v", step, err)
	}
	return s
}

// Act clears #status, clicks the element of selector as a person would and
// waits for step to end.
func Act(t testing.TB, ctx context.Context, selector, step string) Status {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("status"); s.dataset.step = ""; s.dataset.state = ""; })()`),
		chromedp.Click(chromedp.CSS(selector)),
	); err != nil {
		t.Fatalf("click %s: %v", selector, err)
	}
	return Await(t, ctx, step)
}

// Fill types an email and a password into the page's sign-in form.
func Fill(t testing.TB, ctx context.Context, email, password string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("email"), email),
		chromedp.SetValue(chromedp.ID("password"), password),
	); err != nil {
		t.Fatal(err)
	}
}
