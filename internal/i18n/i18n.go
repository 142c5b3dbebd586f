// Package i18n holds every text Tessera shows or sends to an end user (the
// hosted pages, and the emails and SMS of the account flows) in message
// catalogues, one JSON file per language under catalog/, and picks the
// language for a request: the user's own setting first, then the
// browser's Accept-Language, then English.
//
// A message is looked up by key; {name} placeholders are filled from the
// arguments. English is the reference catalogue: every other one must hold
// the same keys with the same placeholders (the tests check it), and a key
// missing from a language falls back to English, never to the key itself.
package i18n

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"golang.org/x/text/language"
)

// Default is the language used when nothing else matches, and the
// catalogue every other one is checked against.
const Default = "en"

//go:embed catalog/*.json
var files embed.FS

// catalogues maps a language tag ("en", "de") to its messages.
var catalogues = load()

// supported lists the catalogue languages, Default first (the matcher
// falls back to the first entry).
var supported []string

var matcher language.Matcher

func load() map[string]map[string]string {
	entries, err := files.ReadDir("catalog")
	if err != nil {
		panic(err)
	}
	out := map[string]map[string]string{}
	for _, e := range entries {
		lang := strings.TrimSuffix(e.Name(), ".json")
		data, err := files.ReadFile(path.Join("catalog", e.Name()))
		if err != nil {
			panic(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(data, &m); err != nil {
			panic(fmt.Sprintf("i18n: catalog/%s: %v", e.Name(), err))
		}
		out[lang] = m
	}
	if out[Default] == nil {
		panic("i18n: no catalogue for " + Default)
	}
	supported = []string{Default}
	for lang := range out {
		if lang != Default {
			supported = append(supported, lang)
		}
	}
	sort.Strings(supported[1:])
	tags := make([]language.Tag, len(supported))
	for i, lang := range supported {
		tags[i] = language.MustParse(lang)
	}
	matcher = language.NewMatcher(tags)
	return out
}

// Languages lists the languages with a catalogue, Default first.
func Languages() []string { return append([]string(nil), supported...) }

// Supported reports whether lang names a catalogue exactly ("de", not
// "de-AT"); user settings are stored in this form.
func Supported(lang string) bool { _, ok := catalogues[lang]; return ok }

// Negotiate picks the language for a user: their setting when it has a
// catalogue, else the best match of an Accept-Language header, else
// Default.
func Negotiate(userSetting, acceptLanguage string) string {
	if Supported(userSetting) {
		return userSetting
	}
	if acceptLanguage == "" {
		return Default
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return Default
	}
	_, index, confidence := matcher.Match(tags...)
	if confidence == language.No {
		return Default
	}
	return supported[index]
}

// T returns the message key in lang with its placeholders filled from
// args, given as name, value pairs: T("de", "code.body", "code", "123456").
// A language without the key falls back to Default; a key unknown to
// Default panics in tests of the catalogue and returns the key otherwise.
func T(lang, key string, args ...string) string {
	msg, ok := catalogues[lang][key]
	if !ok {
		msg, ok = catalogues[Default][key]
		if !ok {
			return key
		}
	}
	if len(args) == 0 {
		return msg
	}
	pairs := make([]string, 0, len(args))
	for i := 0; i+1 < len(args); i += 2 {
		pairs = append(pairs, "{"+args[i]+"}", args[i+1])
	}
	return strings.NewReplacer(pairs...).Replace(msg)
}

// Has reports whether Default's catalogue holds key.
func Has(key string) bool { _, ok := catalogues[Default][key]; return ok }

type ctxKey struct{}

// WithLanguage returns ctx carrying the language negotiated for the
// request (the HTTP layer sets it from Accept-Language), for code that
// composes a message deep below the handler.
func WithLanguage(ctx context.Context, lang string) context.Context {
	return context.WithValue(ctx, ctxKey{}, lang)
}

// FromContext returns the request's language, or "" when none was set.
func FromContext(ctx context.Context) string {
	lang, _ := ctx.Value(ctxKey{}).(string)
	return lang
}

// For picks the language of a message to a user: their setting, else the
// language of the request that caused it, else Default.
func For(ctx context.Context, userSetting string) string {
	if Supported(userSetting) {
		return userSetting
	}
	if lang := FromContext(ctx); Supported(lang) {
		return lang
	}
	return Default
}
