package httpapi

import "net/http"

// admit takes a place among the MaxInFlight requests served at once, or
// says there is none. An overloaded server that queued every request
// would answer all of them late, past their clients' timeouts, and do the
// work anyway; refusing the excess at once, with a 503 and Retry-After,
// keeps the answers it does give fast and tells the others when to come
// back (a load balancer then tries another instance). The probes and the
// metrics are always admitted: an overloaded instance is alive, and a
// failed liveness check would have it restarted, which sheds all its load
// at once. It returns the release to defer.
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
		return nil, false
	}
}

func (s *Server) leave() { <-s.inFlight }
