package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/verify"
)

const templateUsage = `Usage:
  tessera template add ID --body TEXT [--locale en] [--subject TEXT]
                                 register (or replace) the message template ID in a locale;
                                 the body must contain {{{CODE}}} and may contain {{{VERIFICATION_ID}}}
  tessera template list          list the registered templates
  tessera template remove ID [--locale en]
                                 remove a template

A request names a template with "template": {"id": "ID", "locale": "pt-BR"};
Tessera uses that locale, else its language ("pt"), else en. Clients whose
sending policy is --templates-only (tessera client policy) may send
registered templates only.`

const clientPolicyUsage = `Usage:
  tessera client policy NAME|ID                  show the client's sending policy
  tessera client policy NAME|ID [--from-email ADDRESS]... [--from-domain DOMAIN]... [--templates-only]
                                                 set it (replacing the previous one)
  tessera client policy NAME|ID --clear          remove it: the client may send anything again

A client without a policy may set any template.body, subject and fromEmail
(the blueprint's behaviour). A client with a policy may use only the listed
fromEmail addresses and domains (none listed: only the server's own sender),
and with --templates-only only templates registered with tessera template add.
Anything else is refused with 403 "forbidden", naming the field.`

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// templateCommand manages registered message templates.
func templateCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("a template command is required\n%s", templateUsage)
	}
	fs := flag.NewFlagSet("template "+args[0], flag.ContinueOnError)
	locale := fs.String("locale", verify.DefaultLocale, "")
	subject := fs.String("subject", "", "")
	body := fs.String("body", "", "")
	rest, err := parseFlags(fs, args[1:], templateUsage)
	if err != nil {
		return err
	}
	var id string
	if len(rest) > 0 {
		id, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q\n%s", rest[0], templateUsage)
	}
	switch args[0] {
	case "add", "remove":
		if id == "" {
			return fmt.Errorf("template %s needs an ID\n%s", args[0], templateUsage)
		}
	case "list":
		if id != "" {
			return fmt.Errorf("unexpected argument %q\n%s", id, templateUsage)
		}
	default:
		return fmt.Errorf("unknown template command %q\n%s", args[0], templateUsage)
	}
	var t *tessera.MessageTemplate
	if args[0] == "add" {
		if t, err = verify.NewMessageTemplate(id, *locale, *subject, *body, time.Now()); err != nil {
			return describeInvalid(err)
		}
	}
	_, store, _, err := openRegistry(ctx, getenv)
	if err != nil {
		return err
	}
	defer store.Close()
	switch args[0] {
	case "add":
		if err := store.PutTemplate(ctx, t); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Registered template %q in locale %s.\n", t.ID, t.Locale)
	case "remove":
		l, err := verify.CanonicalLocale(*locale)
		if err != nil {
			return fmt.Errorf("--locale %q: %w", *locale, err)
		}
		if err := store.DeleteTemplate(ctx, id, l); err != nil {
			return fmt.Errorf("remove template %q in %s: %w", id, l, err)
		}
		fmt.Fprintf(stdout, "Removed template %q in locale %s.\n", id, l)
	case "list":
		all, err := store.Templates(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tLOCALE\tSUBJECT\tBODY")
		for _, t := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Locale, orDash(t.Subject), shorten(t.Body, 60))
		}
		return tw.Flush()
	}
	return nil
}

// clientPolicyCommand shows, sets or clears a client's sending policy.
func clientPolicyCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client policy", flag.ContinueOnError)
	var emails, domains listFlag
	fs.Var(&emails, "from-email", "")
	fs.Var(&domains, "from-domain", "")
	templatesOnly := fs.Bool("templates-only", false, "")
	clear := fs.Bool("clear", false, "")
	rest, err := parseFlags(fs, args, clientPolicyUsage)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("client policy needs one NAME or ID\n%s", clientPolicyUsage)
	}
	name := rest[0]
	set := fs.NFlag() > 0 && !*clear
	if *clear && fs.NFlag() > 1 {
		return fmt.Errorf("--clear goes alone\n%s", clientPolicyUsage)
	}
	for _, d := range domains {
		if strings.Contains(d, "@") {
			return fmt.Errorf("--from-domain %q: give an address with --from-email", d)
		}
	}
	for _, e := range emails {
		if !strings.Contains(e, "@") {
			return fmt.Errorf("--from-email %q: give a domain with --from-domain", e)
		}
	}
	_, store, reg, err := openRegistry(ctx, getenv)
	if err != nil {
		return err
	}
	defer store.Close()
	switch {
	case *clear:
		if err := reg.ClearPolicy(ctx, name); err != nil {
			return describeInvalid(err)
		}
		fmt.Fprintf(stdout, "API client %q has no sending policy: it may send any text from any address.\n", name)
		return nil
	case set:
		if _, err := reg.SetPolicy(ctx, name, append(emails, domains...), *templatesOnly); err != nil {
			return describeInvalid(err)
		}
	}
	c, p, err := reg.Policy(ctx, name)
	if err != nil {
		return describeInvalid(err)
	}
	if p == nil {
		fmt.Fprintf(stdout, "API client %q has no sending policy: it may send any text from any address.\n", c.Name)
		return nil
	}
	from := "only the server's own sender"
	if len(p.FromAllow) > 0 {
		from = strings.Join(p.FromAllow, ", ")
	}
	text := "any text"
	if p.TemplatesOnly {
		text = "registered templates only"
	}
	fmt.Fprintf(stdout, "API client %q sending policy:\n  fromEmail:  %s\n  messages:   %s\n", c.Name, from, text)
	return nil
}

// describeInvalid spells out a Tessera error for an operator: its message,
// or the fields at fault.
func describeInvalid(err error) error {
	var e *tessera.Error
	if !errors.As(err, &e) {
		return err
	}
	if len(e.Details) == 0 {
		return errors.New(e.Message)
	}
	var b strings.Builder
	for i, d := range e.Details {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", d.Path, d.Error)
	}
	return errors.New(b.String())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
