package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// TrivialHandler returns a handler that answers Tessera's initiate and
// validate routes with fixed, tiny JSON bodies and does no other work than
// reading the request body. Load against it measures the ceiling of the
// machine, HTTP stack and load generator, against which Tessera is compared.
// It also answers GET /healthz so scripts can wait for it like for Tessera.
func TrivialHandler() http.Handler {
	// A random per-handler prefix plus a counter gives distinct, UUID-shaped
	// (version 4, variant 10) ids without paying for crypto/rand per request.
	r := rand.Uint64()
	prefix := fmt.Sprintf("%08x-%04x-4%03x-%04x-", uint32(r), uint16(r>>32), uint16(r>>48)&0xfff, 0x8000|rand.N(uint16(0x4000)))
	var counter atomic.Uint64

	mux := http.NewServeMux()
	mux.HandleFunc("POST /methods/{method}/actions/initiate", func(w http.ResponseWriter, req *http.Request) {
		discardBody(req)
		var buf [128]byte
		b := append(buf[:0], `{"status":200,"verificationId":"`...)
		b = append(b, prefix...)
		b = appendHex(b, counter.Add(1)&0xffff_ffff_ffff, 12)
		b = append(b, `","attempts":0,"expiredOn":0}`...)
		writeJSON(w, b)
	})
	validated := []byte(`{"status":200,"data":{}}`)
	mux.HandleFunc("POST /methods/{method}/verifiers/{id}/actions/validate", func(w http.ResponseWriter, req *http.Request) {
		discardBody(req)
		writeJSON(w, validated)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, []byte(`{"status":200}`))
	})
	return mux
}

// discardBody reads the request body to the end, as a real handler would
// when decoding it, so the baseline pays the same I/O.
func discardBody(req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
}

func writeJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// An explicit length avoids chunked encoding, like a buffered JSON reply.
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// appendHex appends v as width lowercase, zero-padded hex digits.
func appendHex(b []byte, v uint64, width int) []byte {
	var tmp [16]byte
	s := strconv.AppendUint(tmp[:0], v, 16)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// ServeTrivial serves TrivialHandler on addr until ctx is done, then shuts
// down gracefully. It writes the address actually listened on to out before
// serving, so addr may use port 0.
func ServeTrivial(ctx context.Context, addr string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           TrivialHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(out, "trivial server listening on http://%s\n", ln.Addr())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
