package httpapi

import (
	"net/http"
	"strings"

	"github.com/tessera-id/tessera"
)

// corsPrefixes are the paths a browser app may call from another origin:
// the accounts API and the one-time-token flows, which end users drive.
// The verification API (/methods/...) is service to service and gets no
// CORS at all: its API-client token must never sit in a browser. A route
// added elsewhere (an admin API, say) is outside until listed here.
var corsPrefixes = []string{
	"/auth/",
	"/api/v1/token/",
	"/api/v1/password/",
	"/api/v1/userKeys/",
	"/api/v1/antiPhishing/",
	"/api/v1/mfa/",
}

// What a preflight allows: the methods of the accounts API and the
// request headers its clients send.
const (
	corsAllowMethods = "GET, POST, PATCH, DELETE"
	corsAllowHeaders = "Authorization, Content-Type, Accept, Accept-Language, Idempotency-Key, X-OTP, X-Request-Id"
	// corsExposeHeaders are the answer's headers a script may read.
	corsExposeHeaders = "X-Request-Id, Retry-After, WWW-Authenticate"
	// corsMaxAge is how long (seconds) a browser may reuse a preflight.
	corsMaxAge = "600"
)

func corsPath(path string) bool {
	for _, p := range corsPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// cors applies the CORS rules to r, and reports whether it answered r (a
// preflight). Only origins in CORSOrigins, compared exactly, get an
// Access-Control-Allow-Origin naming them (never "*") and
// Access-Control-Allow-Credentials; any other origin gets no CORS header,
// so the browser keeps the answer from its script. With no origins
// configured CORS is off and nothing here runs.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) (answered bool) {
	if len(s.CORSOrigins) == 0 || !corsPath(r.URL.Path) {
		return false
	}
	h := w.Header()
	// The answer depends on Origin: a cache must not give one origin's
	// answer to another.
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	allowed := origin != "" && s.corsAllowed(origin)
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if !preflight {
		if allowed {
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		return false
	}
	if !allowed {
		// Said plainly for the developer reading the network tab; the
		// browser refuses the call either way.
		s.writeError(w, r, tessera.Errorf(tessera.EFORBIDDEN, "This origin is not allowed to call the API from a browser (TESSERA_CORS_ORIGINS)"))
		return true
	}
	h.Set("Access-Control-Allow-Methods", corsAllowMethods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}

func (s *Server) corsAllowed(origin string) bool {
	for _, o := range s.CORSOrigins {
		if o == origin {
			return true
		}
	}
	return false
}
