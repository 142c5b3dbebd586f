package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/verify"
)

const smsBreakerUsage = `Usage: tessera sms-breaker status [PREFIX]
       tessera sms-breaker clear [PREFIX]

The SMS pumping breaker refuses codes (SMS, WhatsApp, calls) to a number
prefix such as "+44 7400", or a whole country such as "+44", whose codes
are not used (TESSERA_SMS_BREAKER). It reads the state every instance
shares in Redis (TESSERA_REDIS_URL); without Redis each instance keeps its
own in memory, which a restart clears.

  status          the prefixes open (codes refused) or half-open (a few
                  probe codes go out), with their counts
  status PREFIX   one prefix or country, open or not
  clear PREFIX    close a prefix now and forget its counts (audited)
  clear           close every open and half-open prefix

PREFIX is written "+44 7400", "+447400" or "+44".`

// smsBreakerCommand is tessera sms-breaker.
func smsBreakerCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || len(args) > 2 || (args[0] != "status" && args[0] != "clear") {
		fmt.Fprintln(stderr, smsBreakerUsage)
		return errors.New("sms-breaker: name status or clear, and at most one prefix")
	}
	prefix := ""
	if len(args) == 2 {
		p, err := verify.NormalizeBreakerPrefix(args[1])
		if err != nil {
			return err
		}
		prefix = p
	}
	cfg, err := loadConfig(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	b := cfg.SMSBreaker
	if b == nil {
		return errors.New("the SMS pumping breaker is off (TESSERA_SMS_BREAKER=off)")
	}
	if cfg.RedisURL == "" {
		const why = "without TESSERA_REDIS_URL each instance keeps the breaker's state in its own memory, out of this command's reach: restarting an instance clears it; set TESSERA_REDIS_URL to share it between instances and this command"
		if args[0] == "status" {
			_, err := fmt.Fprintln(stdout, "Nothing to show: "+why+".")
			return err
		}
		return errors.New(why)
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("TESSERA_REDIS_URL: %w", err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	b.Store = &verify.RedisBreakerStore{Client: client, Prefix: cfg.RedisPrefix}
	now := time.Now()

	if args[0] == "status" {
		list, err := b.Status(ctx, now, prefix != "")
		if err != nil {
			return err
		}
		return writeBreakerStatus(stdout, list, prefix, now)
	}

	store, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	var auditErr error
	b.OnChange = func(c verify.BreakerChange) {
		auditErr = errors.Join(auditErr, store.AppendAudit(ctx, c.AuditEvent()))
	}
	targets := []string{prefix}
	if prefix == "" {
		list, err := b.Status(ctx, now, false)
		if err != nil {
			return err
		}
		targets = targets[:0]
		for _, s := range list {
			targets = append(targets, s.Prefix)
		}
		if len(targets) == 0 {
			fmt.Fprintln(stdout, "No prefix is open or half-open: nothing to clear.")
		}
	}
	for _, p := range targets {
		was, err := b.Clear(ctx, p, now)
		if err != nil {
			return err
		}
		if was {
			fmt.Fprintf(stdout, "Cleared %s: codes go out to it again, counted afresh.\n", p)
		} else {
			fmt.Fprintf(stdout, "%s was not open; its counts are forgotten.\n", p)
		}
	}
	if auditErr != nil {
		return fmt.Errorf("cleared, but the audit event was not recorded: %w", auditErr)
	}
	return nil
}

// writeBreakerStatus prints the prefixes as a table.
func writeBreakerStatus(w io.Writer, list []verify.BreakerStatus, prefix string, now time.Time) error {
	if prefix != "" {
		var only []verify.BreakerStatus
		for _, s := range list {
			if s.Prefix == prefix {
				only = append(only, s)
			}
		}
		if len(only) == 0 {
			_, err := fmt.Fprintf(w, "%s is closed: no codes to it counted in the current window.\n", prefix)
			return err
		}
		list = only
	} else if len(list) == 0 {
		_, err := fmt.Fprintln(w, "No prefix is open or half-open: codes go out everywhere.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tSTATE\tSENT\tUSED\tCONVERSION\tPROBES\tUNTIL")
	for _, s := range list {
		state, until, probes := s.State, "-", "-"
		if state == "" {
			state = verify.BreakerClosed
		}
		if !s.Until.IsZero() {
			until = s.Until.UTC().Format(time.RFC3339) + " (in " + s.Until.Sub(now).Round(time.Second).String() + ")"
		}
		if state == verify.BreakerHalfOpen {
			probes = strconv.Itoa(s.ProbesValidated) + "/" + strconv.Itoa(s.Probes) + " used"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f%%\t%s\t%s\n", s.Prefix, state, s.Sends, s.Validated, s.Conversion()*100, probes, until)
	}
	return tw.Flush()
}
