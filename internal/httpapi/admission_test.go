package httpapi_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/storetest"
)

// gatedStore holds every verification read, while closed, until released:
// requests that read one stay in progress as long as the test wants.
type gatedStore struct {
	app.Storage
	closed  atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) Verification(ctx context.Context, owner, id string) (*tessera.Verification, error) {
	if g.closed.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Storage.Verification(ctx, owner, id)
}

// TestOverloadAnswersAtOnce fills TESSERA_MAX_IN_FLIGHT with requests held
// in the store: the next request is answered at once with 503 unavailable
// and Retry-After, whatever its route, while the probes still answer; once
// the held requests finish, requests are served again.
func TestOverloadAnswersAtOnce(t *testing.T) {
	const bound = 2
	store := &gatedStore{Storage: storetest.OpenSQLite(t), entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnvWith(t, store, func(o *app.Options) { o.MaxInFlight, o.QueueWait = bound, -1 })
	r := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "ada@example.com"})
	if r.status != 200 {
		t.Fatalf("initiate: %d %s", r.status, r.raw)
	}
	path := "/methods/email/verifiers/" + r.str("verificationId")
	auth := map[string]string{"Authorization": "Bearer " + e.token}

	store.closed.Store(true)
	var held sync.WaitGroup
	statuses := make(chan int, bound)
	for range bound {
		held.Go(func() { statuses <- e.doWith("GET", path, nil, auth).status })
	}
	for range bound {
		<-store.entered // both hold a place now
	}

	for _, refused := range []*response{
		e.do("GET", path, nil),
		e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "bob@example.com"}),
	} {
		if refused.status != 503 || refused.str("code") != "unavailable" || refused.header.Get("Retry-After") != "1" {
			t.Errorf("over the bound: %d %q Retry-After %q, want 503 unavailable with Retry-After 1", refused.status, refused.str("code"), refused.header.Get("Retry-After"))
		}
	}
	if r := e.doWith("GET", "/healthz", nil, nil); r.status != 200 {
		t.Errorf("healthz while overloaded: %d, want 200", r.status)
	}

	store.closed.Store(false)
	close(store.release)
	held.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Errorf("held request: %d, want 200", s)
		}
	}
	if r := e.do("GET", path, nil); r.status != 200 {
		t.Errorf("after the held requests finished: %d %s, want 200", r.status, r.raw)
	}
}

// TestOverloadQueuesBriefly: with TESSERA_MAX_IN_FLIGHT requests in
// progress, as many more wait for a place and are served when one frees;
// a request that finds the queue full too is refused at once with 503 and
// Retry-After, and one that waits out the queue's deadline is refused then.
func TestOverloadQueuesBriefly(t *testing.T) {
	const bound = 2
	store := &gatedStore{Storage: storetest.OpenSQLite(t), entered: make(chan struct{}), release: make(chan struct{})}
	// An hour: no queued request here reaches its deadline.
	e := newEnvWith(t, store, func(o *app.Options) { o.MaxInFlight, o.QueueWait = bound, time.Hour })
	r := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "ada@example.com"})
	if r.status != 200 {
		t.Fatalf("initiate: %d %s", r.status, r.raw)
	}
	path := "/methods/email/verifiers/" + r.str("verificationId")
	auth := map[string]string{"Authorization": "Bearer " + e.token}

	store.closed.Store(true)
	var held sync.WaitGroup
	statuses := make(chan int, 2*bound)
	for range bound {
		held.Go(func() { statuses <- e.doWith("GET", path, nil, auth).status })
	}
	for range bound {
		<-store.entered
	}
	for range bound {
		held.Go(func() { statuses <- e.doWith("GET", path, nil, auth).status })
	}
	for e.app.HTTP.Queued() < bound {
		runtime.Gosched() // until both wait in the queue
	}

	if r := e.do("GET", path, nil); r.status != 503 || r.str("code") != "unavailable" || r.header.Get("Retry-After") != "1" {
		t.Errorf("queue full: %d %q Retry-After %q, want 503 unavailable with Retry-After 1", r.status, r.str("code"), r.header.Get("Retry-After"))
	}

	store.closed.Store(false)
	close(store.release)
	held.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Errorf("held or queued request: %d, want 200", s)
		}
	}

	// A queued request that waits out the deadline is refused.
	short := &gatedStore{Storage: storetest.OpenSQLite(t), entered: make(chan struct{}), release: make(chan struct{})}
	e = newEnvWith(t, short, func(o *app.Options) { o.MaxInFlight, o.QueueWait = 1, time.Millisecond })
	r = e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "ada@example.com"})
	path = "/methods/email/verifiers/" + r.str("verificationId")
	auth = map[string]string{"Authorization": "Bearer " + e.token}
	short.closed.Store(true)
	done := make(chan int)
	go func() { done <- e.doWith("GET", path, nil, auth).status }()
	<-short.entered
	if r := e.do("GET", path, nil); r.status != 503 || r.header.Get("Retry-After") != "1" {
		t.Errorf("after the queue's deadline: %d Retry-After %q, want 503 with Retry-After 1", r.status, r.header.Get("Retry-After"))
	}
	short.closed.Store(false)
	close(short.release)
	if s := <-done; s != 200 {
		t.Errorf("held request: %d, want 200", s)
	}
}
