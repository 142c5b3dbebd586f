package httpapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// openapiJSON is the OpenAPI 3.1 description of every endpoint. The HTTP
// tests validate each request they send and each answer they get against
// it, so it cannot drift from what the server does.
//
//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI document the server serves at /openapi.json.
func OpenAPI() []byte { return openapiJSON }

// openapiRoutes registers GET /openapi.json (the document) and GET /docs
// (an HTML reference rendered from it, self-contained: no scripts, no CDN).
func (s *Server) openapiRoutes() {
	s.handle("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(openapiJSON)
	})
	s.handleText("GET /docs", func(w http.ResponseWriter, r *http.Request) {
		page, err := renderedDocs()
		if err != nil {
			s.writeError(w, r, fmt.Errorf("render /docs: %w", err))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(page)
	})
}

// Routes lists the "METHOD /path" patterns registered with handle, sorted:
// what the server serves, for comparing with the OpenAPI document.
func (s *Server) Routes() []string {
	var out []string
	for path := range s.seenPaths {
		sample := wildcard.ReplaceAllString(path, "x")
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			r := &http.Request{Method: m, URL: &url.URL{Path: sample}, Host: "tessera", Header: http.Header{}}
			if _, pattern := s.mux.Handler(r); pattern == m+" "+path {
				out = append(out, pattern)
			}
		}
	}
	slices.Sort(out)
	return out
}

var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// ---- the /docs page ----

// object is a JSON object that remembers the order of its keys, so the
// page lists paths and fields in the order the document gives them.
type object struct {
	keys []string
	m    map[string]any
}

func (o *object) get(k string) any {
	if o == nil {
		return nil
	}
	return o.m[k]
}

func (o *object) names() []string {
	if o == nil {
		return nil
	}
	return o.keys
}

func (o *object) obj(k string) *object { v, _ := o.get(k).(*object); return v }
func (o *object) str(k string) string  { v, _ := o.get(k).(string); return v }
func (o *object) list(k string) []any  { v, _ := o.get(k).([]any); return v }

func (o *object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := marshalPlain(k)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		vb, err := marshalPlain(o.m[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalPlain is json.Marshal without HTML escaping: the page escapes
// what it shows, and "<token>" reads better than "\u003ctoken\u003e".
func marshalPlain(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		o := &object{m: map[string]any{}}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			if _, dup := o.m[k]; !dup {
				o.keys = append(o.keys, k)
			}
			o.m[k] = v
		}
		_, err = dec.Token()
		return o, err
	case '[':
		a := []any{}
		for dec.More() {
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err = dec.Token()
		return a, err
	}
	return nil, fmt.Errorf("unexpected %v", d)
}

type docsPage struct {
	Title, Version string
	Summary        string
	Description    template.HTML
	Tags           []*docsTag
	Schemas        []docsSchema
	Security       []docsSecurity
}

type docsTag struct {
	Name, Anchor string
	Description  template.HTML
	Ops          []*docsOp
}

type docsOp struct {
	Method, Path, Anchor, Summary string
	Description                   template.HTML
	Auth                          template.HTML
	Params                        []docsField
	Body                          *docsContent
	Responses                     []docsResponse
}

type docsField struct {
	Name, In    string
	Required    bool
	Type        template.HTML
	Description template.HTML
}

type docsContent struct {
	MediaType string
	Type      template.HTML
	Fields    []docsField
	Example   string
}

type docsResponse struct {
	Status      string
	Class       string // ok, client or server, for the colour
	Description template.HTML
	Headers     []docsField
	Content     *docsContent
}

type docsSchema struct {
	Name, Anchor string
	Description  template.HTML
	Type         template.HTML
	Fields       []docsField
}

type docsSecurity struct {
	Name        string
	Scheme      string
	Description template.HTML
}

// renderedDocs is the /docs page, rendered on first request rather than with
// every Server: rendering costs more than the rest of New, and the tests
// build hundreds of servers.
var renderedDocs = sync.OnceValues(func() ([]byte, error) { return renderDocs(openapiJSON) })

// renderDocs renders the reference page from an OpenAPI document.
func renderDocs(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return nil, fmt.Errorf("parse the OpenAPI document: %w", err)
	}
	root, ok := v.(*object)
	if !ok {
		return nil, fmt.Errorf("the OpenAPI document is not an object")
	}
	r := &docsRenderer{root: root}
	page := &docsPage{
		Title:       root.obj("info").str("title"),
		Version:     root.obj("info").str("version"),
		Summary:     root.obj("info").str("summary"),
		Description: markdown(root.obj("info").str("description")),
	}
	tags := map[string]*docsTag{}
	for _, t := range root.list("tags") {
		to, _ := t.(*object)
		tag := &docsTag{Name: to.str("name"), Anchor: "tag-" + anchor(to.str("name")), Description: markdown(to.str("description"))}
		tags[tag.Name] = tag
		page.Tags = append(page.Tags, tag)
	}
	// Webhooks are requests Tessera makes, listed by name where an
	// endpoint shows its path.
	var items []struct {
		path string
		item *object
	}
	paths := root.obj("paths")
	for _, path := range paths.names() {
		items = append(items, struct {
			path string
			item *object
		}{path, paths.obj(path)})
	}
	hooks := root.obj("webhooks")
	for _, name := range hooks.names() {
		items = append(items, struct {
			path string
			item *object
		}{"webhook " + name, hooks.obj(name)})
	}
	for _, it := range items {
		path, item := it.path, it.item
		for _, method := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
			o := item.obj(method)
			if o == nil {
				continue
			}
			op := r.operation(strings.ToUpper(method), path, item, o)
			name := "Other"
			if ts := o.list("tags"); len(ts) > 0 {
				name, _ = ts[0].(string)
			}
			tag := tags[name]
			if tag == nil {
				tag = &docsTag{Name: name, Anchor: "tag-" + anchor(name)}
				tags[name] = tag
				page.Tags = append(page.Tags, tag)
			}
			tag.Ops = append(tag.Ops, op)
		}
	}
	comps := root.obj("components")
	schemes := comps.obj("securitySchemes")
	for _, name := range schemes.names() {
		sc := schemes.obj(name)
		scheme := sc.str("type")
		if sc.str("scheme") != "" {
			scheme += " " + sc.str("scheme")
		}
		if sc.str("bearerFormat") != "" {
			scheme += " (" + sc.str("bearerFormat") + ")"
		}
		page.Security = append(page.Security, docsSecurity{Name: name, Scheme: scheme, Description: markdown(sc.str("description"))})
	}
	schemas := comps.obj("schemas")
	for _, name := range schemas.names() {
		sc := schemas.obj(name)
		typ, fields := r.flatten(sc, "", 0)
		page.Schemas = append(page.Schemas, docsSchema{Name: name, Anchor: "schema-" + anchor(name), Description: markdown(sc.str("description")), Type: typ, Fields: fields})
	}
	var buf bytes.Buffer
	if err := docsTemplate.Execute(&buf, page); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type docsRenderer struct{ root *object }

// resolve follows a local $ref ("#/components/..."), keeping the
// description written next to it.
func (r *docsRenderer) resolve(o *object) *object {
	for i := 0; i < 10 && o != nil; i++ {
		ref := o.str("$ref")
		if ref == "" {
			return o
		}
		target := r.root
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			target = target.obj(part)
		}
		if target == nil {
			return o
		}
		if d := o.str("description"); d != "" {
			merged := &object{keys: slices.Clone(target.keys), m: map[string]any{}}
			for k, v := range target.m {
				merged.m[k] = v
			}
			if _, ok := merged.m["description"]; !ok {
				merged.keys = append(merged.keys, "description")
			}
			merged.m["description"] = d
			target = merged
		}
		o = target
	}
	return o
}

func (r *docsRenderer) operation(method, path string, item, o *object) *docsOp {
	op := &docsOp{Method: method, Path: path, Anchor: "op-" + anchor(method+" "+path), Summary: o.str("summary"), Description: markdown(o.str("description"))}
	var auth []string
	for _, req := range o.list("security") {
		if ro, ok := req.(*object); ok {
			auth = append(auth, ro.names()...)
		}
	}
	if len(auth) == 0 {
		op.Auth = "none"
	} else {
		op.Auth = template.HTML("<code>" + template.HTMLEscapeString(strings.Join(auth, "</code> or <code>")) + "</code> bearer token")
	}
	params := append(slices.Clone(item.list("parameters")), o.list("parameters")...)
	for _, p := range params {
		po, _ := p.(*object)
		po = r.resolve(po)
		if po == nil {
			continue
		}
		op.Params = append(op.Params, docsField{
			Name: po.str("name"), In: po.str("in"), Required: po.get("required") == true,
			Type: r.typeOf(po.obj("schema")), Description: markdown(po.str("description")),
		})
	}
	if rb := r.resolve(o.obj("requestBody")); rb != nil {
		op.Body = r.content(rb.obj("content"))
	}
	responses := o.obj("responses")
	statuses := slices.Clone(responses.names())
	slices.Sort(statuses)
	for _, status := range statuses {
		ro := r.resolve(responses.obj(status))
		resp := docsResponse{Status: status, Class: "ok", Description: markdown(ro.str("description")), Content: r.content(ro.obj("content"))}
		switch {
		case strings.HasPrefix(status, "4"):
			resp.Class = "client"
		case strings.HasPrefix(status, "5"):
			resp.Class = "server"
		}
		headers := ro.obj("headers")
		for _, name := range headers.names() {
			ho := r.resolve(headers.obj(name))
			resp.Headers = append(resp.Headers, docsField{Name: name, In: "header", Required: ho.get("required") == true, Type: r.typeOf(ho.obj("schema")), Description: markdown(ho.str("description"))})
		}
		op.Responses = append(op.Responses, resp)
	}
	return op
}

func (r *docsRenderer) content(c *object) *docsContent {
	if len(c.names()) == 0 {
		return nil
	}
	mt := c.keys[0]
	media := c.obj(mt)
	out := &docsContent{MediaType: mt}
	out.Type, out.Fields = r.flatten(media.obj("schema"), "", 0)
	if ex := media.get("example"); ex != nil {
		if s, ok := ex.(string); ok {
			out.Example = s
		} else if b, err := marshalPlain(ex); err == nil {
			var pretty bytes.Buffer
			if json.Indent(&pretty, b, "", "  ") == nil {
				out.Example = pretty.String()
			}
		}
	}
	return out
}

// flatten describes a schema: its type, and for an object its fields, those
// of allOf parts included, nested objects written with dotted names.
func (r *docsRenderer) flatten(s *object, prefix string, depth int) (template.HTML, []docsField) {
	typ := r.typeOf(s)
	s = r.resolve(s)
	if s == nil || depth > 3 {
		return typ, nil
	}
	var fields []docsField
	seen := map[string]int{}
	var walk func(s *object, depth int)
	walk = func(s *object, depth int) {
		s = r.resolve(s)
		if s == nil || depth > 4 {
			return
		}
		for _, part := range s.list("allOf") {
			po, _ := part.(*object)
			walk(po, depth+1)
		}
		required := map[string]bool{}
		for _, k := range s.list("required") {
			if ks, ok := k.(string); ok {
				required[ks] = true
			}
		}
		props := s.obj("properties")
		for _, name := range props.names() {
			p := props.obj(name)
			pr := r.resolve(p)
			f := docsField{Name: prefix + name, Required: required[name], Type: r.typeOf(p), Description: markdown(pr.str("description"))}
			if i, ok := seen[f.Name]; ok {
				// A later part narrows an earlier one (status: 404); keep the
				// narrower type, and what is known about the field.
				fields[i].Type = f.Type
				fields[i].Required = fields[i].Required || f.Required
				if f.Description != "" {
					fields[i].Description = f.Description
				}
				continue
			}
			seen[f.Name] = len(fields)
			fields = append(fields, f)
			nested, sep := pr, "."
			if items := pr.obj("items"); items != nil && items.str("$ref") == "" {
				nested, sep = items, "[]."
			}
			if p.str("$ref") == "" && nested.obj("properties") != nil {
				_, sub := r.flatten(nested, prefix+name+sep, depth+1)
				for _, sf := range sub {
					seen[sf.Name] = len(fields)
					fields = append(fields, sf)
				}
			}
		}
		for _, k := range s.list("required") {
			if ks, ok := k.(string); ok {
				if i, ok := seen[prefix+ks]; ok {
					fields[i].Required = true
				}
			}
		}
	}
	walk(s, depth)
	return typ, fields
}

// typeOf writes a schema's type in a few words, linking named schemas.
func (r *docsRenderer) typeOf(s *object) template.HTML {
	if s == nil {
		return "any JSON"
	}
	if ref := s.str("$ref"); ref != "" {
		name := ref[strings.LastIndex(ref, "/")+1:]
		return template.HTML(`<a href="#schema-` + template.HTMLEscapeString(anchor(name)) + `">` + template.HTMLEscapeString(name) + `</a>`)
	}
	if c, ok := s.m["const"]; ok {
		b, _ := marshalPlain(c)
		return template.HTML("<code>" + template.HTMLEscapeString(string(b)) + "</code>")
	}
	var parts []string
	for _, key := range []string{"oneOf", "anyOf"} {
		if alts := s.list(key); len(alts) > 0 {
			var names []string
			for _, a := range alts {
				ao, _ := a.(*object)
				names = append(names, string(r.typeOf(ao)))
			}
			return template.HTML("one of " + strings.Join(names, ", "))
		}
	}
	if all := s.list("allOf"); len(all) > 0 && s.get("type") == nil {
		var names []string
		for _, a := range all {
			ao, _ := a.(*object)
			names = append(names, string(r.typeOf(ao)))
		}
		out := strings.Join(names, " + ")
		// A narrowed component, such as Error with status 404.
		var with []string
		props := s.obj("properties")
		for _, k := range props.names() {
			with = append(with, "<code>"+template.HTMLEscapeString(k)+"</code> "+string(r.typeOf(props.obj(k))))
		}
		if len(with) > 0 {
			out += " with " + strings.Join(with, ", ")
		}
		return template.HTML(out)
	}
	var types []string
	switch t := s.get("type").(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			if xs, ok := x.(string); ok {
				types = append(types, xs)
			}
		}
	}
	for _, t := range types {
		switch t {
		case "array":
			parts = append(parts, "array of "+string(r.typeOf(s.obj("items"))))
		case "object":
			if all := s.list("allOf"); len(all) > 0 {
				var names []string
				for _, a := range all {
					ao, _ := a.(*object)
					names = append(names, string(r.typeOf(ao)))
				}
				parts = append(parts, strings.Join(names, " + ")+" + more")
			} else {
				parts = append(parts, "object")
			}
		default:
			w := template.HTMLEscapeString(t)
			if f := s.str("format"); f != "" {
				w += " (" + template.HTMLEscapeString(f) + ")"
			}
			parts = append(parts, w)
		}
	}
	enum := s.list("enum")
	if len(parts) == 0 && len(enum) == 0 {
		parts = []string{"any JSON"}
	}
	out := strings.Join(parts, " or ")
	if len(enum) > 0 {
		var vals []string
		for _, e := range enum {
			b, _ := marshalPlain(e)
			vals = append(vals, "<code>"+template.HTMLEscapeString(string(b))+"</code>")
		}
		if out != "" {
			out += ": "
		}
		out += strings.Join(vals, " | ")
	}
	var limits []string
	for _, l := range []struct{ key, text string }{{"minLength", "min length"}, {"maxLength", "max length"}, {"minimum", "min"}, {"maximum", "max"}, {"pattern", "pattern"}} {
		if v := s.get(l.key); v != nil {
			limits = append(limits, l.text+" "+template.HTMLEscapeString(fmt.Sprint(v)))
		}
	}
	if len(limits) > 0 {
		out += ` <span class="lim">(` + strings.Join(limits, ", ") + ")</span>"
	}
	return template.HTML(out)
}

var nonAnchor = regexp.MustCompile(`[^a-zA-Z0-9]+`)

func anchor(s string) string { return strings.Trim(nonAnchor.ReplaceAllString(s, "-"), "-") }

var (
	codeSpan   = regexp.MustCompile("`([^`]+)`")
	strongSpan = regexp.MustCompile(`\*\*([^*]+)\*\*`)
)

// markdown renders the little Markdown the document uses: paragraphs,
// `code` and **bold**. Everything else is escaped text.
func markdown(s string) template.HTML {
	if s == "" {
		return ""
	}
	var out strings.Builder
	for _, para := range strings.Split(s, "\n\n") {
		h := template.HTMLEscapeString(para)
		out.WriteString("<p>")
		last := 0
		for _, m := range codeSpan.FindAllStringSubmatchIndex(h, -1) {
			out.WriteString(strongSpan.ReplaceAllString(h[last:m[0]], "<strong>$1</strong>"))
			out.WriteString("<code>" + h[m[2]:m[3]] + "</code>")
			last = m[1]
		}
		out.WriteString(strongSpan.ReplaceAllString(h[last:], "<strong>$1</strong>"))
		out.WriteString("</p>")
	}
	return template.HTML(out.String())
}

var docsTemplate = template.Must(template.New("docs").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} API reference</title>
<style>
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#fff}
nav{position:fixed;top:0;bottom:0;left:0;width:290px;overflow:auto;background:#f5f6f8;border-right:1px solid #dde1e7;padding:16px;box-sizing:border-box;font-size:13px}
nav a{color:#1d2330;text-decoration:none;display:block;padding:1px 0}
nav a:hover{text-decoration:underline}
nav h2{font-size:13px;text-transform:uppercase;letter-spacing:.04em;margin:16px 0 4px;color:#5a6270}
main{margin-left:290px;padding:24px 40px;max-width:1000px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
code{background:#f0f2f5;padding:0 3px;border-radius:3px}
pre{background:#0f1724;color:#e6edf3;padding:10px 12px;border-radius:6px;overflow:auto}
.op{border:1px solid #dde1e7;border-radius:8px;margin:18px 0;padding:0 16px 8px}
.op h3{margin:0 -16px 8px;padding:10px 16px;background:#f8f9fb;border-bottom:1px solid #dde1e7;border-radius:8px 8px 0 0;font-size:16px}
.m{display:inline-block;min-width:62px;text-align:center;color:#fff;border-radius:4px;font-size:12px;padding:2px 6px;margin-right:8px}
.m-GET{background:#2f7d32}.m-POST{background:#1f5fbf}.m-DELETE{background:#b3261e}.m-PUT,.m-PATCH{background:#8a5a00}
.path{font-family:ui-monospace,Menlo,Consolas,monospace}
.sum{color:#5a6270;font-weight:normal;margin-left:8px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:14px}
th,td{text-align:left;vertical-align:top;border-bottom:1px solid #eceef2;padding:4px 8px}
th{font-size:12px;color:#5a6270;font-weight:600}
td p,.d p{margin:0 0 4px}
.req{color:#b3261e;font-size:12px}
.lim{color:#5a6270;font-size:12px}
.st{font-weight:700;font-family:ui-monospace,Menlo,Consolas,monospace}
.st-ok{color:#2f7d32}.st-client{color:#8a5a00}.st-server{color:#b3261e}
h4{margin:14px 0 4px;font-size:14px}
details{margin:4px 0}
summary{cursor:pointer}
</style>
</head>
<body>
<nav>
<strong>{{.Title}} {{.Version}}</strong>
<div><a href="/openapi.json">openapi.json</a></div>
{{range .Tags}}<h2><a href="#{{.Anchor}}">{{.Name}}</a></h2>
{{range .Ops}}<a href="#{{.Anchor}}"><span class="path">{{.Method}} {{.Path}}</span></a>
{{end}}{{end}}<h2><a href="#schemas">Schemas</a></h2>
</nav>
<main>
<h1>{{.Title}} API reference <small>{{.Version}}</small></h1>
<p><strong>{{.Summary}}</strong></p>
{{.Description}}
<h2>Authentication</h2>
<table><tr><th>scheme</th><th>type</th><th>description</th></tr>
{{range .Security}}<tr><td><code>{{.Name}}</code></td><td>{{.Scheme}}</td><td>{{.Description}}</td></tr>
{{end}}</table>
{{range .Tags}}
<section id="{{.Anchor}}">
<h2>{{.Name}}</h2>
{{.Description}}
{{range .Ops}}
<div class="op" id="{{.Anchor}}">
<h3><span class="m m-{{.Method}}">{{.Method}}</span><span class="path">{{.Path}}</span><span class="sum">{{.Summary}}</span></h3>
<div class="d">{{.Description}}</div>
<p><strong>Authorization:</strong> {{.Auth}}</p>
{{if .Params}}<h4>Parameters</h4>
<table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>
{{range .Params}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.In}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}
{{with .Body}}<h4>Request body <code>{{.MediaType}}</code>: {{.Type}}</h4>
{{template "fields" .Fields}}
{{if .Example}}<details><summary>Example</summary><pre>{{.Example}}</pre></details>{{end}}{{end}}
<h4>Responses</h4>
<table><tr><th>status</th><th>description</th></tr>
{{range .Responses}}<tr><td class="st st-{{.Class}}">{{.Status}}</td><td>{{.Description}}
{{range .Headers}}<div>Header <code>{{.Name}}</code>: {{.Type}} {{.Description}}</div>{{end}}
{{with .Content}}<div><code>{{.MediaType}}</code>: {{.Type}}</div>
{{if .Example}}<details><summary>Example</summary><pre>{{.Example}}</pre></details>{{end}}{{end}}
</td></tr>
{{end}}</table>
</div>
{{end}}
</section>
{{end}}
<section id="schemas">
<h2>Schemas</h2>
{{range .Schemas}}<div class="op" id="{{.Anchor}}">
<h3>{{.Name}} <span class="sum">{{.Type}}</span></h3>
<div class="d">{{.Description}}</div>
{{template "fields" .Fields}}
</div>
{{end}}
</section>
</main>
</body>
</html>
{{define "fields"}}{{if .}}<table><tr><th>field</th><th>type</th><th>description</th></tr>
{{range .}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}{{end}}`))
