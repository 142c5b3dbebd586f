package verify

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
)

// DefaultLocale is the locale of a template request that names none, and
// the last fallback of one whose locale has no such template.
const DefaultLocale = "en"

var (
	templateIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	localePattern     = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$`)
)

// CanonicalLocale checks a BCP 47 tag and spells it the usual way: the
// language in lower case, a script in title case, a region in upper case
// ("pt-br" → "pt-BR").
func CanonicalLocale(s string) (string, error) {
	if !localePattern.MatchString(s) {
		return "", errors.New("must be a language tag such as en or pt-BR")
	}
	parts := strings.Split(s, "-")
	parts[0] = strings.ToLower(parts[0])
	for i := 1; i < len(parts); i++ {
		p := parts[i]
		switch {
		case len(p) == 2 || (len(p) == 3 && p[0] >= '0' && p[0] <= '9'):
			parts[i] = strings.ToUpper(p)
		case len(p) == 4:
			parts[i] = strings.ToUpper(p[:1]) + strings.ToLower(p[1:])
		default:
			parts[i] = strings.ToLower(p)
		}
	}
	return strings.Join(parts, "-"), nil
}

// CheckTemplateID checks the name of a registered template.
func CheckTemplateID(id string) error {
	if !templateIDPattern.MatchString(id) {
		return errors.New("must be 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// NewMessageTemplate checks a template an operator registers and returns
// it ready to store. Its body must contain {{{CODE}}}, as a request's does.
func NewMessageTemplate(id, locale, subject, body string, now time.Time) (*tessera.MessageTemplate, error) {
	var bad []tessera.FieldError
	if err := CheckTemplateID(id); err != nil {
		bad = append(bad, tessera.FieldError{Path: "id", Error: err.Error()})
	}
	locale, err := CanonicalLocale(locale)
	if err != nil {
		bad = append(bad, tessera.FieldError{Path: "locale", Error: err.Error()})
	}
	bad = append(bad, checkTemplate(tessera.MethodEmail, &Template{Subject: subject, Body: body})...)
	if body == "" {
		bad = append(bad, tessera.FieldError{Path: "body", Error: "is required and must contain " + PlaceholderCode})
	}
	if len(bad) > 0 {
		for i := range bad {
			bad[i].Path = strings.TrimPrefix(bad[i].Path, "template.")
		}
		return nil, tessera.Invalid(bad...)
	}
	return &tessera.MessageTemplate{ID: id, Locale: locale, Subject: subject, Body: body, CreatedAt: now.UTC()}, nil
}

// NormalizeFromAllow checks the entries of a sending policy's fromEmail
// allow-list: addresses ("codes@example.com") and domains ("example.com"),
// returned in lower case.
func NormalizeFromAllow(entries []string) ([]string, error) {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		e = strings.TrimSpace(e)
		probe := e
		if !strings.Contains(e, "@") {
			probe = "codes@" + e
		}
		if _, err := NormalizeEmail(probe); err != nil {
			return nil, fmt.Errorf("%q is neither an email address nor a domain", e)
		}
		out = append(out, strings.ToLower(e))
	}
	return out, nil
}

// fromAllowed reports whether the allow-list admits the (normalized)
// address from: the address itself, or its domain exactly (a subdomain
// needs its own entry).
func fromAllowed(allow []string, from string) bool {
	from = strings.ToLower(from)
	domain := from[strings.LastIndex(from, "@")+1:]
	for _, a := range allow {
		if a == from || a == domain {
			return true
		}
	}
	return false
}

// applySendingPolicy is the one place where what a client may put in a
// message is decided. It resolves a template named by template.id to its
// registered text, then holds the result against the owner's sending
// policy: a client without a policy may send anything (the blueprint);
// one with a policy gets EFORBIDDEN, naming the field, for a fromEmail
// outside its allow-list and, when it is limited to templates, for free
// text (body, subject, fromName, or the default message, whose issuer is
// free text too).
func (e *Engine) applySendingPolicy(ctx context.Context, owner string, method tessera.Method, t *Template) (*Template, error) {
	out := *t
	if t.ID != "" {
		mt, err := e.lookupTemplate(ctx, t.ID, t.Locale)
		if err != nil {
			return nil, err
		}
		out.Body, out.Subject = mt.Body, mt.Subject
	}
	p, err := e.sendingPolicy(ctx, owner)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return &out, nil
	}
	forbid := func(path, why string) error {
		return &tessera.Error{Code: tessera.EFORBIDDEN, Message: "Not allowed by this client's sending policy",
			Details: []tessera.FieldError{{Path: path, Error: why}}}
	}
	if p.TemplatesOnly {
		const why = "this client may send registered templates only (template.id)"
		switch {
		case t.Body != "":
			return nil, forbid("template.body", why)
		case t.Subject != "" && method == tessera.MethodEmail:
			return nil, forbid("template.subject", why)
		case t.FromName != "":
			return nil, forbid("template.fromName", "this client may not set a sender name")
		case t.ID == "":
			return nil, forbid("template.id", why)
		}
	}
	if t.FromEmail != "" && method == tessera.MethodEmail && !fromAllowed(p.FromAllow, t.FromEmail) {
		why := "this client may not send from this address"
		if len(p.FromAllow) > 0 {
			why = "must be one of this client's allowed addresses or domains: " + strings.Join(p.FromAllow, ", ")
		}
		return nil, forbid("template.fromEmail", why)
	}
	return &out, nil
}

// lookupTemplate finds template id for locale, falling back to the
// locale's language ("pt" for "pt-BR") and then to DefaultLocale; EINVALID
// naming template.id when none exists.
func (e *Engine) lookupTemplate(ctx context.Context, id, locale string) (*tessera.MessageTemplate, error) {
	if locale == "" {
		locale = DefaultLocale
	}
	tries := []string{locale}
	if lang, _, ok := strings.Cut(locale, "-"); ok {
		tries = append(tries, lang)
	}
	if locale != DefaultLocale {
		tries = append(tries, DefaultLocale)
	}
	for _, l := range tries {
		mt, err := e.Store.Template(ctx, id, l)
		if err == nil {
			return mt, nil
		}
		if tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return nil, err
		}
	}
	return nil, tessera.Invalid(tessera.FieldError{Path: "template.id", Error: fmt.Sprintf("no template %q is registered for locale %s", id, strings.Join(tries, " or "))})
}
