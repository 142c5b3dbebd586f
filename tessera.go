// Package tessera holds Tessera's domain types and the interfaces between
// its parts: the verification engine, the stores and the senders. It imports
// nothing outside the standard library, so every other package can depend on
// it without depending on each other.
package tessera

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each to one status code in one place;
// everything else only picks a code.
const (
	EINTERNAL     = "internal"                  // a bug or an unreachable dependency; details are logged, never shown
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
	// RetryAfter is set with ETOOMANY, in whole seconds.
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
// *Error, and EINTERNAL otherwise.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
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
	return "Internal error"
}
