// Package tessera holds Tessera's domain types and the interfaces between
// its parts: the verification engine, the stores and the senders. It imports
// nothing outside the standard library, so every other package can depend on
// it without depending on each other.
package tessera

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

// Error codes. The HTTP layer maps each to one status code in one place;
// everything else only picks a code.
const (
	EINTERNAL     = "internal"                  // a bug; details are logged, never shown
	EUNAVAILABLE  = "unavailable"               // the database (or another dependency) did not answer in time or refused: retry later
	EMALFORMED    = "malformed"                 // the body is not parseable JSON
	EINVALID      = "invalid"                   // a field is missing, of the wrong type or has a wrong value
	ENOTFOUND     = "not_found"                 // the thing does not exist or belongs to someone else
	ECONFLICT     = "conflict"                  // the thing exists already
	EUNAUTHORIZED = "unauthorized"              // no or bad credentials
	EFORBIDDEN    = "forbidden"                 // credentials are fine but the action is not allowed
	EREAUTH       = "reauthentication_required" // the session is too old or too weak for this action: step up
	EINVALIDCODE  = "invalid_code"              // a verification code did not match
	ELOCKED       = "locked"                    // too many wrong codes: the verification is locked
	EEXPIRED      = "expired"                   // the verification expired
	ETOOMANY      = "too_many"                  // a rate limit or cooldown applies
	ETOOLARGE     = "too_large"                 // the request body is over its cap
	EMEDIATYPE    = "media_type"                // the Content-Type is not JSON
	ENOTACCEPT    = "not_acceptable"            // the Accept header rules out JSON
	EBADMETHOD    = "bad_method"                // the route exists, but not with this HTTP method
)

// FieldError names one field of a request and what is wrong with it. Path
// uses dots for nesting, as in "generateCode.length".
type FieldError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Error is the one error type Tessera's packages return for conditions a
// caller should see. Message is safe to show to the API caller.
type Error struct {
	Code    string
	Message string
	// Details lists the fields at fault, for EINVALID.
	Details []FieldError
	// Data carries a body the caller should see with the error, such as the
	// verification whose code was wrong.
	Data any
	// RetryAfter is set with ETOOMANY, in whole seconds (EUNAVAILABLE
	// gets a default).
	RetryAfter int
}

// Error describes the error for logs; callers show Message instead.
func (e *Error) Error() string {
	if len(e.Details) > 0 {
		return fmt.Sprintf("tessera: %s: %s (%s: %s)", e.Code, e.Message, e.Details[0].Path, e.Details[0].Error)
	}
	return fmt.Sprintf("tessera: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error naming the fields at fault.
func Invalid(details ...FieldError) *Error {
	return &Error{Code: EINVALID, Message: "Invalid request", Details: details}
}

// ErrorCode returns "" for nil, the code of err if it is (or wraps) an
// *Error, EUNAVAILABLE if it says a dependency is unreachable (see
// Unavailable), and EINTERNAL otherwise.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if Unavailable(err) {
		return EUNAVAILABLE
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err, or a generic one for
// internal errors so nothing leaks.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	if Unavailable(err) {
		return UnavailableMessage
	}
	return "Internal error"
}

// UnavailableMessage is what a caller is told when the database did not
// answer in time or refused.
const UnavailableMessage = "Service temporarily unavailable: the database did not answer in time; retry shortly"

// Unavailable reports whether err says the database (or another
// dependency) could not be reached or did not answer within the request's
// deadline, rather than that something is wrong with the request or the
// code: the request's deadline ran out, a connection was refused, reset or
// timed out, or PostgreSQL refused for a passing reason. It is the one
// place that classifies such errors; ErrorCode maps them to EUNAVAILABLE.
// A context cancelled by a caller who hung up is not among them.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true // dial failures, timeouts, resets
	}
	// PostgreSQL's errors carry an SQLSTATE (pgconn.PgError has SQLState):
	// class 08 is a connection exception; 57014 a statement cancelled by
	// statement_timeout; 57P01-57P03 a server shutting down, crashed or
	// starting (a failover); 53300 too many connections.
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		code := st.SQLState()
		return strings.HasPrefix(code, "08") || code == "57014" || code == "57P01" || code == "57P02" ||
			code == "57P03" || code == "53300"
	}
	return false
}
