package httpapi

import (
	"strings"
	"unicode/utf8"
)

// maxHeaderValue is the most bytes of a request header's value that is
// kept (stored, audited or logged).
const maxHeaderValue = 512

// headerValue is a request header's value made fit to keep: valid UTF-8
// (each invalid byte becomes U+FFFD; NUL, which PostgreSQL's text cannot
// hold, is dropped) and at most n bytes, cut between characters. Every
// header value that reaches the database or the logs goes through it.
func headerValue(v string, n int) string {
	if len(v) <= n && utf8.ValidString(v) && strings.IndexByte(v, 0) < 0 {
		return v
	}
	var b strings.Builder
	for _, r := range v { // an invalid byte comes out as utf8.RuneError
		if r == 0 {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > n {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
