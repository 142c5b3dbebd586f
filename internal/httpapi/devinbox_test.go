package httpapi_test

import (
	"html"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/storetest"
)

// page GETs path with headers and returns the answer; the exchange is
// checked against the document like every other.
func (e *env) page(path string, headers map[string]string) (int, http.Header, string) {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if msg, found := e.violations.LoadAndDelete(res.Header.Get("X-Request-Id")); found {
		e.t.Fatalf("%s", msg)
	}
	return res.StatusCode, res.Header, string(body)
}

// inboxArticle is one message of the inbox page, read the way a browser
// test reads it: from the article's data- attributes.
type inboxArticle struct{ to, code string }

var articleTag = regexp.MustCompile(`<article class="message"[^>]*>`)
var dataAttr = regexp.MustCompile(`data-(to|code)="([^"]*)"`)

func inboxArticles(page string) []inboxArticle {
	var out []inboxArticle
	for _, tag := range articleTag.FindAllString(page, -1) {
		var a inboxArticle
		for _, m := range dataAttr.FindAllStringSubmatch(tag, -1) {
			v := html.UnescapeString(m[2])
			if m[1] == "to" {
				a.to = v
			} else {
				a.code = v
			}
		}
		out = append(out, a)
	}
	return out
}

func newInboxEnv(t *testing.T) *env {
	return newEnvWith(t, storetest.OpenSQLite(t), func(o *app.Options) { o.DevInbox = deliver.NewInbox(deliver.DefaultInboxSize, o.Now) })
}

func TestDevInboxCodeSignsUp(t *testing.T) {
	e := newInboxEnv(t)
	reg := e.doWith("POST", "/auth/register", map[string]any{"email": "ana@example.com", "password": "correct horse battery"}, nil).want(t, 202)
	e.deliver()

	status, h, page := e.page("/dev/inbox", map[string]string{"Accept": "text/html"})
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /dev/inbox: %d %s", status, h.Get("Content-Type"))
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q: want no script at all, no inline anything", csp)
	}
	arts := inboxArticles(page)
	if len(arts) != 1 || arts[0].to != "ana@example.com" || len(arts[0].code) != 6 {
		t.Fatalf("articles %+v in\n%s", arts, page)
	}
	// The code read from the page is the one the API takes.
	r := e.doWith("POST", "/auth/register/confirm", map[string]any{"email": "ana@example.com", "code": arts[0].code, "processingId": reg.str("processingId")}, nil).want(t, 200)
	if r.str("idToken") == "" {
		t.Fatalf("confirm: %s", r.raw)
	}

	// Registering the address again sends its owner a notice, which has
	// no code: its article has no data-code.
	e.doWith("POST", "/auth/register", map[string]any{"email": "ana@example.com", "password": "another long one"}, nil).want(t, 202)
	e.deliver()
	_, _, page = e.page("/dev/inbox?to=ANA@example.com", nil)
	if arts := inboxArticles(page); len(arts) != 2 || arts[0].code != "" || arts[1].code == "" {
		t.Fatalf("after the notice, newest first: %+v", arts)
	}
}

func TestDevInboxNewestFirstAndEscaped(t *testing.T) {
	e := newInboxEnv(t)
	initiate := func(consumer string, extra map[string]any) string {
		t.Helper()
		body := map[string]any{"consumer": consumer}
		for k, v := range extra {
			body[k] = v
		}
		id := e.do("POST", "/methods/email/actions/initiate", body).want(t, 200).str("verificationId")
		e.deliver()
		return id
	}
	initiate("first@example.com", nil)
	hostile := `<script>alert("x")</script><img src=x onerror=alert(1)> code {{{CODE}}}`
	id := initiate("second@example.com", map[string]any{"template": map[string]any{"subject": `<b>"Hi"</b>`, "body": hostile}})

	_, _, page := e.page("/dev/inbox", nil)
	if strings.Contains(page, "<script") || strings.Contains(page, "<img") || strings.Contains(page, "<b>") {
		t.Fatalf("message content reached the page as markup:\n%s", page)
	}
	if !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Fatalf("the body is not shown escaped:\n%s", page)
	}
	arts := inboxArticles(page)
	if len(arts) != 2 || arts[0].to != "second@example.com" || arts[1].to != "first@example.com" {
		t.Fatalf("not newest first: %+v", arts)
	}

	// The JSON form, both ways, says the same.
	for _, path := range []string{"/dev/inbox.json", "/dev/inbox?format=json"} {
		r := e.doWith("GET", path, nil, nil).want(t, 200)
		msgs, _ := r.body["messages"].([]any)
		if len(msgs) != 2 {
			t.Fatalf("GET %s: %s", path, r.raw)
		}
		newest := msgs[0].(map[string]any)
		if newest["to"] != "second@example.com" || newest["code"] != arts[0].code || newest["channel"] != "email" ||
			!strings.Contains(newest["body"].(string), "<script>") || newest["subject"] != `<b>"Hi"</b>` {
			t.Fatalf("GET %s: newest %v", path, newest)
		}
	}
	if r := e.doWith("GET", "/dev/inbox.json?to=first@example.com", nil, nil).want(t, 200); len(r.body["messages"].([]any)) != 1 {
		t.Fatalf("?to= did not filter: %s", r.raw)
	}

	// The code from the inbox validates through the verification API.
	e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": arts[0].code}).want(t, 200)
}

// A number typed into the query as it is written, with its "+" unescaped
// (which a query decodes as a space), still finds its messages.
func TestDevInboxNumberTypedWithPlus(t *testing.T) {
	e := newInboxEnv(t)
	e.do("POST", "/methods/phone/actions/initiate", map[string]any{"consumer": "+14155552671"}).want(t, 200)
	e.deliver()
	for _, query := range []string{"to=%2B14155552671", "to=+14155552671"} {
		r := e.doWith("GET", "/dev/inbox.json?"+query, nil, nil).want(t, 200)
		if msgs, _ := r.body["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["to"] != "+14155552671" {
			t.Fatalf("GET /dev/inbox.json?%s: %s", query, r.raw)
		}
	}
	if r := e.doWith("GET", "/dev/inbox.json?to=14155552671", nil, nil).want(t, 200); len(r.body["messages"].([]any)) != 0 {
		t.Fatalf("a number without its + matched: %s", r.raw)
	}
}

func TestDevInboxOffByDefault(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	e.doWith("POST", "/auth/register", map[string]any{"email": "ana@example.com", "password": "correct horse battery"}, nil).want(t, 202)
	e.deliver()
	for _, path := range []string{"/dev/inbox", "/dev/inbox.json", "/dev/inbox?format=json"} {
		e.doWith("GET", path, nil, nil).want(t, 404)
	}
}
