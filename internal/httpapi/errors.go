package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/tessera-id/tessera"
)

// statusOf maps each error code to its HTTP status: the only place that
// does. Validation failures are 422, as in the verification API blueprint;
// a wrong, expired or locked code is 422 too, told apart by "code".
var statusOf = map[string]int{
	tessera.EMALFORMED:    http.StatusBadRequest,
	tessera.EINVALID:      http.StatusUnprocessableEntity,
	tessera.EINVALIDCODE:  http.StatusUnprocessableEntity,
	tessera.ELOCKED:       http.StatusUnprocessableEntity,
	tessera.EEXPIRED:      http.StatusUnprocessableEntity,
	tessera.EUNAUTHORIZED: http.StatusUnauthorized,
	tessera.EFORBIDDEN:    http.StatusForbidden,
	tessera.EREAUTH:       http.StatusForbidden,
	tessera.ENOTFOUND:     http.StatusNotFound,
	tessera.EBADMETHOD:    http.StatusMethodNotAllowed,
	tessera.ENOTACCEPT:    http.StatusNotAcceptable,
	tessera.ECONFLICT:     http.StatusConflict,
	tessera.EINPROGRESS:   http.StatusConflict,
	tessera.EIDEMMISMATCH: http.StatusUnprocessableEntity,
	tessera.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	tessera.EMEDIATYPE:    http.StatusUnsupportedMediaType,
	tessera.ETOOMANY:      http.StatusTooManyRequests,
	tessera.EUNAVAILABLE:  http.StatusServiceUnavailable,
	tessera.EINTERNAL:     http.StatusInternalServerError,
}

// unavailableRetryAfter is the Retry-After of a 503, in seconds: about the
// time a pool needs to reconnect once the database answers again.
const unavailableRetryAfter = 2

// errorBody is the JSON shape of every error:
// {"status":422,"error":"Invalid request","code":"invalid","details":[...]}.
type errorBody struct {
	Status  int                  `json:"status"`
	Error   string               `json:"error"`
	Code    string               `json:"code"`
	Details []tessera.FieldError `json:"details,omitempty"`
	Data    any                  `json:"data,omitempty"`
}

// writeError answers with err. Internal errors are logged with the request
// id and answered with a generic message, so nothing about the inside leaks.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := tessera.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status, code = http.StatusInternalServerError, tessera.EINTERNAL
	}
	body := errorBody{Status: status, Error: tessera.ErrorMessage(err), Code: code}
	if code == tessera.EINTERNAL {
		s.Log.ErrorContext(r.Context(), "internal error", "err", err, "request_id", requestID(r.Context()), "route", r.Pattern)
		body.Error = "Internal error"
	} else if code == tessera.EUNAVAILABLE {
		s.Log.WarnContext(r.Context(), "database unavailable", "err", err, "request_id", requestID(r.Context()), "route", r.Pattern)
		retry := unavailableRetryAfter
		if e := (*tessera.Error)(nil); errors.As(err, &e) && e.RetryAfter > 0 {
			retry = e.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	} else if e := (*tessera.Error)(nil); errors.As(err, &e) {
		body.Details = e.Details
		if v, ok := e.Data.(*tessera.Verification); ok {
			body.Data = verificationView(v)
		} else if e.Data != nil {
			body.Data = e.Data
		}
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
		}
	}
	writeJSON(w, status, body)
}

// writeJSON answers with v as JSON. HTML escaping is off: these bodies are
// read by programs, and "<token>" reads better than "\u003ctoken\u003e".
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		slog.Error("encode response", "err", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"status":500,"error":"Internal error","code":"internal"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
