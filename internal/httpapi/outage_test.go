package httpapi_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/storetest"
)

// faultProxy is a TCP proxy in front of PostgreSQL that can go silent
// (pause: connections stay open, no byte moves either way, as in a network
// drop or a failover) or refuse (listener and connections closed).
type faultProxy struct {
	t        *testing.T
	addr     string // 127.0.0.1:port, kept across refuse and resume
	upstream string

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]bool
	paused   bool
	resumed  chan struct{} // closed when a pause ends
	refusing bool
}

func newFaultProxy(t *testing.T, upstream string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, addr: ln.Addr().String(), upstream: upstream, conns: map[net.Conn]bool{}, resumed: make(chan struct{})}
	p.serve(ln)
	t.Cleanup(func() { p.refuse() })
	return p
}

func (p *faultProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

// gate blocks while the proxy is paused.
func (p *faultProxy) gate() {
	p.mu.Lock()
	paused, resumed := p.paused, p.resumed
	p.mu.Unlock()
	if paused {
		<-resumed
	}
}

func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refusing {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *faultProxy) forward(client net.Conn) {
	if !p.track(client) {
		return
	}
	p.gate()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil || !p.track(server) {
		client.Close()
		return
	}
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.gate() // silent: the bytes wait here
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	go pipe(server, client)
	pipe(client, server)
}

func (p *faultProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused, p.resumed = true, make(chan struct{})
	}
}

// refuse closes the listener and every connection: connecting is refused.
func (p *faultProxy) refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refusing = true
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
	if p.paused {
		p.paused = false
		close(p.resumed)
	}
}

// resume ends a pause or a refusal.
func (p *faultProxy) resume() {
	p.mu.Lock()
	if p.paused {
		p.paused = false
		close(p.resumed)
	}
	relisten := p.ln == nil
	p.refusing = false
	p.mu.Unlock()
	if relisten {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
		}
		p.serve(ln)
	}
}

// TestDatabaseOutage puts a PostgreSQL that goes silent, then refuses,
// then comes back behind a running Tessera: every request answers within
// the deadline, with 503 unavailable and Retry-After during the outage;
// requests succeed again within 5 s of the database coming back; nothing
// acknowledged is lost.
func TestDatabaseOutage(t *testing.T) {
	dsn := storetest.PostgresSchema(t) // skips without PostgreSQL
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFaultProxy(t, u.Host)
	u.Host = proxy.addr
	const timeout = time.Second
	store, err := sqlstore.OpenPostgresTimeout(context.Background(), u.String(), 8, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := newEnvWith(t, store, func(o *app.Options) { o.DBTimeout = timeout })

	var mu sync.Mutex
	var acked []string // verification ids answered 200
	ackedTo := map[string]bool{}
	n := 0
	// initiate sends one initiate; nil when it did not answer in time.
	initiate := func() (*response, time.Duration) {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		start := time.Now()
		done := make(chan *response, 1)
		to := fmt.Sprintf("outage%d@example.com", i)
		go func() {
			done <- e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": to})
		}()
		select {
		case r := <-done:
			if r.status == 200 {
				mu.Lock()
				acked = append(acked, r.str("verificationId"))
				ackedTo[to] = true
				mu.Unlock()
			}
			return r, time.Since(start)
		case <-time.After(timeout + 3*time.Second):
			t.Errorf("initiate did not answer within %v", timeout+3*time.Second)
			return nil, 0
		}
	}

	for range 3 {
		initiate()
	}
	if len(acked) != 3 {
		t.Fatalf("healthy database: %d of 3 initiates answered 200", len(acked))
	}

	// check503 sends initiates in parallel: each answers 503 unavailable
	// with Retry-After within the deadline and a margin.
	check503 := func(what string) {
		t.Helper()
		var worst time.Duration
		var wg sync.WaitGroup
		var wmu sync.Mutex
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, d := initiate()
				if r == nil {
					return
				}
				if r.status != 503 || r.str("code") != "unavailable" {
					t.Errorf("%s: initiate answered %d %s, want 503 unavailable", what, r.status, r.raw)
				}
				if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
					t.Errorf("%s: Retry-After %q", what, r.header.Get("Retry-After"))
				}
				if d > timeout+time.Second {
					t.Errorf("%s: 503 after %v, want within %v + 1s", what, d, timeout)
				}
				wmu.Lock()
				worst = max(worst, d)
				wmu.Unlock()
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		t.Logf("%s: 503 unavailable within %v", what, worst.Round(time.Millisecond))
	}

	proxy.pause()
	check503("silent database")
	proxy.refuse()
	check503("refusing database")

	proxy.resume()
	back := time.Now()
	for {
		r, _ := initiate()
		if r == nil {
			t.FailNow()
		}
		if r.status == 200 {
			break
		}
		if r.status != 503 {
			t.Fatalf("recovering: initiate answered %d %s", r.status, r.raw)
		}
		if time.Since(back) > 5*time.Second {
			t.Fatalf("still 503 %v after the database came back", time.Since(back))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("recovered %v after the database came back", time.Since(back).Round(time.Millisecond))

	// A pause after recovery, then recovery again: silent connections in
	// the pool must not linger.
	proxy.pause()
	check503("silent again")
	proxy.resume()
	back = time.Now()
	for {
		r, _ := initiate()
		if r == nil {
			t.FailNow()
		}
		if r.status == 200 {
			break
		}
		if time.Since(back) > 5*time.Second {
			t.Fatalf("still %d %v after the database came back", r.status, time.Since(back))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("recovered from silence %v after the database came back", time.Since(back).Round(time.Millisecond))

	// Nothing acknowledged is lost, and no code went out for an initiate
	// that answered 503: its caller never learned an id to type it into.
	for _, id := range acked {
		e.do("GET", "/methods/email/verifiers/"+id, nil).want(t, 200)
	}
	sent := map[string]bool{}
	for _, m := range e.deliver() {
		if !ackedTo[m.To] {
			t.Errorf("a code went to %s, whose initiate answered 503", m.To)
		}
		sent[m.To] = true
	}
	if len(sent) != len(ackedTo) {
		t.Errorf("codes went to %d of the %d acknowledged initiates", len(sent), len(ackedTo))
	}
}
