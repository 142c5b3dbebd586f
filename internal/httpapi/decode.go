package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/tessera-id/tessera"
)

// maxBodyBytes caps every request body. The largest legitimate one is an
// initiate with a 10 KiB template and a 16 KiB payload.
const maxBodyBytes = 64 << 10

// decodeJSON reads the JSON object in r's body into dst. Every failure is a
// *tessera.Error that names the field at fault.
//
// A field dst does not have is refused (422 naming it), so a misspelt
// optional field cannot pass silently, except on the verification API
// (/methods/...), which keeps the blueprint's tolerance for its existing
// clients: there the fields are ignored and named in the
// Tessera-Ignored-Fields response header.
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return tessera.Errorf(tessera.ETOOLARGE, "Request body is larger than %d bytes", maxBodyBytes)
	}
	if err != nil {
		return malformed("body", "could not be read")
	}
	if err := unmarshalOne(body, dst); err != nil {
		return err
	}
	unknown, zeroed := inspectFields(body, reflect.TypeOf(dst))
	if len(zeroed) > 0 {
		details := make([]tessera.FieldError, len(zeroed))
		for i, f := range zeroed {
			details[i] = tessera.FieldError{Path: f, Error: "is out of range (0 or empty); leave the field out for the default"}
		}
		return tessera.Invalid(details...)
	}
	if len(unknown) == 0 {
		return nil
	}
	if strings.HasPrefix(r.URL.Path, "/methods/") {
		w.Header().Set(ignoredFieldsHeader, strings.Join(unknown, ", "))
		return nil
	}
	details := make([]tessera.FieldError, len(unknown))
	for i, f := range unknown {
		details[i] = tessera.FieldError{Path: f, Error: "is not a field of this request"}
	}
	return tessera.Invalid(details...)
}

// ignoredFieldsHeader names, on the verification API, the request fields
// Tessera ignored.
const ignoredFieldsHeader = "Tessera-Ignored-Fields"

// unmarshalOne decodes the one JSON value of body into dst.
func unmarshalOne(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(dst)
	if err == nil {
		if _, err := dec.Token(); err == io.EOF {
			return nil
		}
		return malformed("body", "must hold one JSON object and nothing after it")
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
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

// inspectFields lists, sorted, as dotted paths (items[0].name):
//   - unknown: the object keys in body that t (the type decoded into) has
//     no field for. Below a field that takes any JSON (any,
//     json.RawMessage, a map, a type with its own UnmarshalJSON) every key
//     is known.
//   - zeroed: the fields tagged zero:"refuse" that body sets to 0, "" or
//     an empty array. Such a field's zero value means "the default" in Go,
//     so a caller who sends it would silently get the default instead of
//     the error that a value out of range deserves. null counts as absent.
func inspectFields(body []byte, t reflect.Type) (unknown, zeroed []string) {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return nil, nil
	}
	var in inspection
	in.walk(v, t, "")
	sort.Strings(in.unknown)
	sort.Strings(in.zeroed)
	return in.unknown, in.zeroed
}

type inspection struct{ unknown, zeroed []string }

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func (in *inspection) walk(v any, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := jsonFields(t)
		for key, val := range obj {
			f, ok := fields[key]
			if !ok {
				// encoding/json matches names case-insensitively.
				for name, candidate := range fields {
					if strings.EqualFold(name, key) {
						f, ok = candidate, true
						break
					}
				}
			}
			p := joinPath(path, key)
			switch {
			case !ok:
				in.unknown = append(in.unknown, p)
			case f.Tag.Get("zero") == "refuse" && isZeroJSON(val):
				in.zeroed = append(in.zeroed, p)
			default:
				in.walk(val, f.Type, p)
			}
		}
	case reflect.Slice, reflect.Array:
		if arr, ok := v.([]any); ok {
			for i, e := range arr {
				in.walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
}

// isZeroJSON reports whether a decoded JSON value is 0, "", [] or {}.
func isZeroJSON(v any) bool {
	switch v := v.(type) {
	case float64:
		return v == 0
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// jsonFieldsCache holds jsonFields by type: every request body is
// inspected against its type, and building the map each time was the
// largest allocation of a verification request. The maps are only read.
var jsonFieldsCache sync.Map // reflect.Type → map[string]reflect.StructField

// jsonFields maps the JSON names of t's fields (embedded structs'
// included) to the fields, as encoding/json names them. The map is
// shared: do not change it.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	if f, ok := jsonFieldsCache.Load(t); ok {
		return f.(map[string]reflect.StructField)
	}
	f, _ := jsonFieldsCache.LoadOrStore(t, buildJSONFields(t))
	return f.(map[string]reflect.StructField)
}

func buildJSONFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for n, inner := range jsonFields(ft) {
					if _, shadowed := fields[n]; !shadowed {
						fields[n] = inner
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f
	}
	return fields
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
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
