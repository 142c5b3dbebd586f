package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// webhookReceiver records the messages the webhook sender posts. While
// hold is set it accepts requests but never answers them, like a provider
// that hangs.
type webhookReceiver struct {
	mu       sync.Mutex
	hold     bool
	arrived  chan string // webhook-id of every request, answered or not
	received []map[string]any
}

func (rcv *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rcv.arrived <- r.Header.Get("webhook-id")
	rcv.mu.Lock()
	hold := rcv.hold
	rcv.mu.Unlock()
	if hold {
		<-r.Context().Done() // the sender went away
		return
	}
	var msg map[string]any
	json.Unmarshal(body, &msg)
	rcv.mu.Lock()
	rcv.received = append(rcv.received, msg)
	rcv.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// TestMessageInFlightSurvivesKill9 kills the server with SIGKILL while the
// provider holds its delivery open, restarts it, and sees the message
// delivered (with the same id) after the outbox lease ran out.
func TestMessageInFlightSurvivesKill9(t *testing.T) {
	t.Parallel() // mostly waits (for a timeout, a cache, a lease): let the others run
	rcv := &webhookReceiver{hold: true, arrived: make(chan string, 16)}
	hook := httptest.NewServer(rcv)
	defer hook.Close()
	env := []string{
		"TESSERA_EMAIL_SENDER=webhook", "TESSERA_WEBHOOK_URL=" + hook.URL,
		"TESSERA_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"TESSERA_OUTBOX_LEASE=2s",
	}
	dir := t.TempDir()
	s := startServer(t, dir, env...)
	status, body := s.post(t, "/methods/email/actions/initiate", s.token, `{"consumer":"crash@example.com","policy":{"forcedCode":"246810"}}`)
	if status != 200 {
		t.Fatalf("initiate: %d %v", status, body)
	}
	var firstID string
	select {
	case firstID = <-rcv.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the message never reached the provider")
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.done <- nil

	rcv.mu.Lock()
	rcv.hold = false
	rcv.mu.Unlock()
	startServer(t, dir, env...)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case id := <-rcv.arrived:
			if id != firstID {
				t.Fatalf("after restart the message came with id %q, before with %q", id, firstID)
			}
			var got []map[string]any
			for wait := time.Now().Add(10 * time.Second); len(got) == 0 && time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
				rcv.mu.Lock()
				got = rcv.received
				rcv.mu.Unlock()
			}
			if len(got) != 1 {
				t.Fatalf("the provider recorded %d messages, want 1", len(got))
			}
			data := got[0]["data"].(map[string]any)
			if data["to"] != "crash@example.com" || !strings.Contains(data["body"].(string), "246810") {
				t.Fatalf("delivered %v", data)
			}
			return
		case <-deadline:
			t.Fatal("the message was not delivered after the restart")
		}
	}
}

// TestEventsConfigured: with TESSERA_EVENTS_URL and _SECRET, a running
// server posts a validation's event to the endpoint (the HTTP tests check
// the events themselves); a bad secret stops the start.
func TestEventsConfigured(t *testing.T) {
	rcv := &webhookReceiver{arrived: make(chan string, 16)}
	hook := httptest.NewServer(rcv)
	defer hook.Close()
	s := startServer(t, t.TempDir(), "TESSERA_EVENTS_URL="+hook.URL, "TESSERA_EVENTS_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"TESSERA_EVENTS=verification.approved")
	status, body := s.post(t, "/methods/email/actions/initiate", s.token, `{"consumer":"events@example.com","policy":{"forcedCode":"135790"}}`)
	if status != 200 {
		t.Fatalf("initiate: %d %v", status, body)
	}
	id, _ := body["verificationId"].(string)
	if status, body := s.post(t, "/methods/email/verifiers/"+id+"/actions/validate", s.token, `{"code":"135790"}`); status != 200 {
		t.Fatalf("validate: %d %v", status, body)
	}
	select {
	case <-rcv.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("no event reached the endpoint")
	}
	var got []map[string]any // recorded just after the arrival is signalled
	for wait := time.Now().Add(10 * time.Second); len(got) == 0 && time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
		rcv.mu.Lock()
		got = rcv.received
		rcv.mu.Unlock()
	}
	if len(got) != 1 || got[0]["type"] != "verification.approved" || got[0]["data"].(map[string]any)["verificationId"] != id {
		t.Fatalf("the endpoint got %v", got)
	}

	out, err := command(t.TempDir(), []string{"serve"}, "TESSERA_EVENTS_URL="+hook.URL, "TESSERA_EVENTS_SECRET=whsec_short").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "TESSERA_EVENTS_") {
		t.Fatalf("a bad events secret: %v, %s", err, out)
	}
}
