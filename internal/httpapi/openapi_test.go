package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tessera-id/tessera/internal/httpapi"
)

// documented lists the document's operations as "METHOD /path", sorted.
func documented(t *testing.T) []string {
	spec := loadOpenAPI(t)
	var out []string
	for path, item := range spec.doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// TestOpenAPIDocument: the document loads and validates as OpenAPI 3.1 (in
// loadOpenAPI), and every operation says what it is.
func TestOpenAPIDocument(t *testing.T) {
	spec := loadOpenAPI(t)
	if spec.doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi is %q, want 3.1.0", spec.doc.OpenAPI)
	}
	ids := map[string]string{}
	for path, item := range spec.doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.Summary == "" || op.Description == "" || op.OperationID == "" || len(op.Tags) != 1 {
				t.Errorf("%s: needs a summary, a description, an operationId and one tag", name)
			}
			if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %s", name, other, op.OperationID)
			}
			ids[op.OperationID] = name
			if op.Responses.Value("500") == nil {
				t.Errorf("%s: no 500 response (every endpoint can answer it)", name)
			}
			if answersJSON(op) && op.Responses.Value("406") == nil {
				t.Errorf("%s: no 406 response (every JSON endpoint can answer it)", name)
			}
			// Absent, linters and client generators take security as
			// unknown (or the document's default): say so for public ones.
			if op.Security == nil {
				t.Errorf(`%s: no security; a public operation says "security": []`, name)
			}
			if op.RequestBody != nil {
				for _, status := range []string{"400", "413", "415", "422"} {
					if op.Responses.Value(status) == nil {
						t.Errorf("%s: takes a JSON body but documents no %s", name, status)
					}
				}
			}
			if op.Security != nil && len(*op.Security) > 0 && op.Responses.Value("401") == nil {
				t.Errorf("%s: needs a token but documents no 401", name)
			}
		}
	}
}

// answersJSON reports whether an operation's success answer is JSON (the
// JSON APIs' Accept rule, and its 406, apply to it).
func answersJSON(op *openapi3.Operation) bool {
	for status, r := range op.Responses.Map() {
		if strings.HasPrefix(status, "2") && r.Value != nil && r.Value.Content.Get("application/json") != nil {
			return true
		}
	}
	return false
}

// TestOpenAPISchemasAreTyped: every schema that fixes its values (const,
// enum) also says their type. Without one, Go generators such as
// oapi-codegen fail or fall back to interface{}, and TypeScript ones to
// unknown.
func TestOpenAPISchemasAreTyped(t *testing.T) {
	var doc any
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, pointer string)
	walk = func(v any, pointer string) {
		switch v := v.(type) {
		case map[string]any:
			_, hasConst := v["const"]
			_, hasEnum := v["enum"]
			if _, typed := v["type"]; (hasConst || hasEnum) && !typed {
				t.Errorf("%s: const or enum without a type", pointer)
			}
			for k, sub := range v {
				walk(sub, pointer+"/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k))
			}
		case []any:
			for i, sub := range v {
				walk(sub, fmt.Sprintf("%s/%d", pointer, i))
			}
		}
	}
	walk(doc, "#")
}

// TestOpenAPICoversEveryRoute: every route the server registers is in the
// document, and every operation of the document is served.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	served := e.app.HTTP.Routes()
	docs := documented(t)
	if len(served) < 40 {
		t.Fatalf("Routes() found only %d routes: %v", len(served), served)
	}
	for _, r := range served {
		if !slices.Contains(docs, r) {
			t.Errorf("the server serves %s, which internal/httpapi/openapi.json does not describe", r)
		}
	}
	for _, d := range docs {
		if !slices.Contains(served, d) {
			t.Errorf("internal/httpapi/openapi.json describes %s, which the server does not serve", d)
		}
	}
}

// TestOpenAPISecurityMatchesTheServer sends every operation without a
// token (and without a body): an operation the document says needs one must
// answer 401, any other must not. The harness checks each answer against
// the document too.
func TestOpenAPISecurityMatchesTheServer(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	spec := loadOpenAPI(t)
	for path, item := range spec.doc.Paths.Map() {
		for method, op := range item.Operations() {
			concrete := strings.NewReplacer("{method}", "email", "{id}", "5028c0cd-07a9-4fa7-8d88-49edd2a44b72").Replace(path)
			req, err := http.NewRequest(method, e.srv.URL+concrete, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if msg, found := e.violations.LoadAndDelete(res.Header.Get("X-Request-Id")); found {
				t.Errorf("%s", msg)
				continue
			}
			needsToken := op.Security != nil && len(*op.Security) > 0
			if needsToken != (res.StatusCode == http.StatusUnauthorized) {
				t.Errorf("%s %s without a token answered %d; the document says a token is needed: %v", method, path, res.StatusCode, needsToken)
			}
		}
	}
}

// TestOpenAPIServed: GET /openapi.json serves the document, GET /docs a
// self-contained reference page of every operation.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		res, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if msg, found := e.violations.LoadAndDelete(res.Header.Get("X-Request-Id")); found {
			t.Fatalf("%s", msg)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
		}
		return res, body
	}

	res, body := get("/openapi.json")
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET /openapi.json: Content-Type %q", ct)
	}
	if !bytes.Equal(body, httpapi.OpenAPI()) || !json.Valid(body) {
		t.Fatal("GET /openapi.json does not serve the embedded document")
	}

	res, page := get("/docs")
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("GET /docs: Content-Type %q", ct)
	}
	html := string(page)
	for _, path := range documented(t) {
		_, p, _ := strings.Cut(path, " ")
		if !strings.Contains(html, template.HTMLEscapeString(p)) {
			t.Errorf("/docs does not list %s", path)
		}
	}
	for _, want := range []string{"/methods/{method}/actions/initiate", "/auth/login/mfa", "/api/v1/token/mfa/disabling", `id="schema-User"`, "x-otp", "PHONE_NUMBER", "recovery_code"} {
		if !strings.Contains(html, template.HTMLEscapeString(want)) && !strings.Contains(html, want) {
			t.Errorf("/docs lacks %q", want)
		}
	}
	if strings.Contains(html, "<script") || strings.Contains(html, "src=") || strings.Contains(html, "<link") {
		t.Error("/docs is not self-contained: it has a script or loads something from the network")
	}

	// The 405 of a documented path is the JSON error shape, like any other.
	e.do("POST", "/openapi.json", nil).want(t, http.StatusMethodNotAllowed)
}
