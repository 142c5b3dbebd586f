package httpapi

import (
	"net/http"
	"time"
)

// DefaultQueueWait is how long a request past MaxInFlight waits for a place
// before it is refused (Options.QueueWait): long enough to ride out a burst
// at a bound sized to the store, short enough that a waiting request is
// still answered well within a client's patience.
const DefaultQueueWait = 50 * time.Millisecond

// admit takes a place among the MaxInFlight requests served at once, or
// says there is none. Past the bound, up to MaxInFlight more requests wait
// for a place, each at most QueueWait; a request that finds the queue full,
// or waits it out, is refused. An overloaded server that queued every
// request without end would answer all of them late, past their clients'
// timeouts, and do the work anyway; a short, bounded queue absorbs bursts,
// and refusing the rest with a 503 and Retry-After keeps the answers it
// does give fast and tells the others when to come back (a load balancer
// then tries another instance). The probes and the metrics are always
// admitted: an overloaded instance is alive, and a failed liveness check
// would have it restarted, which sheds all its load at once. It returns
// the release to defer.
func (s *Server) admit(r *http.Request) (release func(), ok bool) {
	if s.inFlight == nil {
		return func() {}, true
	}
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return func() {}, true
	}
	select {
	case s.inFlight <- struct{}{}:
		return s.leave, true
	default:
	}
	if s.QueueWait <= 0 {
		return nil, false
	}
	select {
	case s.queue <- struct{}{}:
	default:
		return nil, false // the queue is full too
	}
	defer func() { <-s.queue }()
	wait := time.NewTimer(s.QueueWait)
	defer wait.Stop()
	select {
	case s.inFlight <- struct{}{}:
		return s.leave, true
	case <-wait.C:
		return nil, false
	case <-r.Context().Done():
		return nil, false
	}
}

func (s *Server) leave() { <-s.inFlight }

// Queued says how many requests are waiting for a place.
func (s *Server) Queued() int { return len(s.queue) }
