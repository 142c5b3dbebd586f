package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/tessera-id/tessera"
)

// maxBodyBytes caps every request body. The largest legitimate one is an
// initiate with a 10 KiB template and a 16 KiB payload.
const maxBodyBytes = 64 << 10

// decodeJSON reads the JSON object in r's body into dst. Every failure is a
// *tessera.Error that names the field at fault.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	return decodeJSONUpTo(w, r, dst, maxBodyBytes)
}

// decodeJSONUpTo is decodeJSON with another cap, for the few bodies that
// are larger by nature (an import of users).
func decodeJSONUpTo(w http.ResponseWriter, r *http.Request, dst any, maxBodyBytes int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
			return tessera.Errorf(tessera.EMEDIATYPE, "Content-Type must be application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	err := dec.Decode(dst)
	if err == nil {
		_, err := dec.Token()
		var tooLarge *http.MaxBytesError
		switch {
		case err == io.EOF:
			return nil
		case errors.As(err, &tooLarge):
			return tessera.Errorf(tessera.ETOOLARGE, "Request body is larger than %d bytes", maxBodyBytes)
		}
		return malformed("body", "must hold one JSON object and nothing after it")
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return tessera.Errorf(tessera.ETOOLARGE, "Request body is larger than %d bytes", maxBodyBytes)
	case errors.Is(err, io.EOF):
		return malformed("body", "is required: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("body", "is truncated JSON")
	case errors.As(err, &syntaxErr):
		return malformed("body", fmt.Sprintf("is not valid JSON (%s at byte %d)", syntaxErr.Error(), syntaxErr.Offset))
	case errors.As(err, &typeErr):
		path := typeErr.Field
		if path == "" {
			return tessera.Invalid(tessera.FieldError{Path: "body", Error: "must be a JSON object"})
		}
		return tessera.Invalid(tessera.FieldError{Path: path, Error: "must be " + jsonKind(typeErr.Type.Kind().String())})
	}
	return malformed("body", "could not be read")
}

func malformed(path, msg string) error {
	return &tessera.Error{Code: tessera.EMALFORMED, Message: "Invalid JSON", Details: []tessera.FieldError{{Path: path, Error: msg}}}
}

// jsonKind names a Go kind the way a JSON caller thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "of another type"
}

// acceptsJSON reports whether an Accept header allows a JSON answer. The
// blueprint's clients send "application/vnd.jincor+json; version=1".
func acceptsJSON(accept string) bool {
	if accept == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == "*/*" || mt == "application/*" || mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
			return true
		}
	}
	return false
}
