package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
)

const auditUsage = `Usage: tessera audit [--user EMAIL|ID] [--kind KIND] [--since 24h] [--limit 100] [--json]

Prints the audit log of end-user security events, newest first: logins
(success, failed, locked, MFA), refresh-token reuse, logouts and revoked
sessions, password changes and resets, MFA and recovery-code changes, key
changes and recoveries, anti-phishing codes, registrations. Each event has
its time, kind, user id, email (as it was then), client IP, user agent and
a short detail; never a password, code or token.

  --user EMAIL|ID  one account's events (by email: the account that has it
                   now, with the events from before any email change; an
                   address without an account: the failed logins with it)
  --kind KIND      one kind, such as login.failed or key.changed
  --since WHEN     a duration back from now (90m, 24h, 7d) or a time
                   (2006-01-02 or RFC 3339)
  --limit N        at most N events (default 100, at most 10000)
  --json           one JSON object per line instead of a table

Kinds: ` + "{{kinds}}" + `
`

// auditHelp is auditUsage with the kinds filled in, wrapped.
func auditHelp() string {
	var b strings.Builder
	width := len("Kinds: ")
	for i, k := range tessera.AuditKinds {
		if i > 0 {
			b.WriteString(",")
			width++
			if width+1+len(k) > 76 {
				b.WriteString("\n       ")
				width = 7
			} else {
				b.WriteString(" ")
				width++
			}
		}
		b.WriteString(k)
		width += len(k)
	}
	return strings.Replace(auditUsage, "{{kinds}}", b.String(), 1)
}

// auditCommand prints the audit log.
func auditCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	who := fs.String("user", "", "")
	kind := fs.String("kind", "", "")
	since := fs.String("since", "", "")
	limit := fs.Int("limit", tessera.DefaultAuditLimit, "")
	asJSON := fs.Bool("json", false, "")
	rest, err := parseFlags(fs, args, auditHelp())
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q\n%s", rest[0], auditHelp())
	}
	filter := tessera.AuditFilter{Kind: *kind, Limit: *limit}
	if filter.Kind != "" && !slices.Contains(tessera.AuditKinds, filter.Kind) {
		return fmt.Errorf("--kind %q: must be one of %s", filter.Kind, strings.Join(tessera.AuditKinds, ", "))
	}
	if filter.Limit < 1 || filter.Limit > tessera.MaxAuditLimit {
		return fmt.Errorf("--limit %d: must be between 1 and %d", filter.Limit, tessera.MaxAuditLimit)
	}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return fmt.Errorf("--since %q: %w", *since, err)
		}
		filter.Since = t
	}

	cfg, err := loadConfig(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	store, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	if w := strings.TrimSpace(*who); strings.Contains(w, "@") {
		u, err := store.UserByEmail(ctx, w)
		switch tessera.ErrorCode(err) {
		case "":
			filter.UserID = u.ID
		case tessera.ENOTFOUND:
			filter.Email = w
		default:
			return err
		}
	} else {
		filter.UserID = w
	}
	events, err := store.AuditEvents(ctx, filter)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeAuditJSON(stdout, events)
	}
	return writeAuditTable(stdout, events)
}

// parseSince reads a duration back from now (with d for days) or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("must not be negative")
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("must be a duration such as 24h or 7d, a date such as 2006-01-02, or an RFC 3339 time")
}

type auditJSON struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	UserID    string    `json:"userId,omitempty"`
	Email     string    `json:"email,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

func writeAuditJSON(w io.Writer, events []*tessera.AuditEvent) error {
	enc := json.NewEncoder(w)
	for _, e := range events {
		if err := enc.Encode(auditJSON{e.ID, e.At.UTC(), e.Kind, e.UserID, e.Email, e.IP, e.UserAgent, e.Detail}); err != nil {
			return err
		}
	}
	return nil
}

func writeAuditTable(w io.Writer, events []*tessera.AuditEvent) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tKIND\tUSER\tEMAIL\tIP\tUSER AGENT\tDETAIL")
	for _, e := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), cell(e.Kind, 0), cell(e.UserID, 0),
			cell(e.Email, 0), cell(e.IP, 0), cell(e.UserAgent, 40), cell(e.Detail, 0))
	}
	return tw.Flush()
}

// cell makes a value safe for a terminal table: control characters (a
// user agent is whatever the client sent) become '?', long values are
// clipped to max runes (0: no limit), and an empty one shows as "-".
func cell(s string, max int) string {
	if s == "" {
		return "-"
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, s)
	if r := []rune(s); max > 0 && len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}
