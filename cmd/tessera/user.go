package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/token"
)

const userUsage = `Usage:
  tessera user create EMAIL [--verified]   create an end-user account, its email confirmed (the
                                           operator vouches for it; --verified, the default, is
                                           accepted for scripts that pass it). On a terminal it asks
                                           for the password twice without echo; otherwise it reads
                                           the first line of standard input:
                                             printf '%s\n' "$PASSWORD" | tessera user create EMAIL
` + userAdminUsage

const keysUsage = `Usage:
  tessera keys rotate [--now]              publish a new ID-token signing key; it signs after TESSERA_KEY_PUBLISH_AHEAD
                                           (--now: at once, for a leaked key; verifiers holding a cached JWKS
                                           reject new tokens until they fetch it again); old tokens keep verifying
  tessera keys list                        list the signing keys and their states (next, active, retired)`

// openApp wires the service for a one-off command: same configuration and
// database as serve, messages to the log on stderr.
func openApp(ctx context.Context, getenv func(string) string, stderr io.Writer) (*app.App, *sqlstore.DB, error) {
	cfg, err := loadConfig(ctx, getenv, stderr)
	if err != nil {
		return nil, nil, err
	}
	store, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	keys, err := app.Keyring(cfg)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	senders, err := app.Senders(cfg, stderr, store)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	a := app.New(app.Options{
		Store: store, Keys: keys, Senders: senders, EventTypes: cfg.Events.Types, Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		ServiceName: cfg.ServiceName, TokenIssuer: cfg.TokenIssuer, TokenAudience: cfg.TokenAudience, IDTokenTTL: cfg.IDTokenTTL,
		IDTokenClaims: cfg.IDTokenClaims, IDTokenAlg: cfg.IDTokenAlg, KeyPublishAhead: cfg.KeyPublishAhead, KeyRotation: cfg.KeyRotation,
	})
	return a, store, nil
}

// userCommand manages end-user accounts.
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] != "create" {
		return userAdminCommand(ctx, args, getenv, stdin, stdout, stderr)
	}
	if len(args) == 0 {
		return fmt.Errorf("usage:\n%s", userUsage)
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.Bool("verified", true, "")
	rest, err := parseFlags(fs, args[1:], userUsage)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("user create takes one EMAIL, not %d arguments\n%s", len(rest), userUsage)
	}
	email := rest[0]
	// Asking for a password only to refuse the directory would surprise.
	if ctx.Value(initKey{}) == nil {
		if _, err := loadConfig(ctx, getenv, io.Discard); err != nil {
			return err
		}
	}
	pw, err := readPassword(stdin, stderr, email)
	if err != nil {
		return err
	}
	a, store, err := openApp(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	u, err := a.Accounts.CreateUser(ctx, email, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Created user %s (id %s, status %s).\n", u.Email, u.ID, u.Status)
	return nil
}

// keysCommand manages ID-token signing keys.
func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "list") {
		return fmt.Errorf("usage:\n%s", keysUsage)
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	var nowFlag *bool
	if args[0] == "rotate" {
		nowFlag = fs.Bool("now", false, "sign with the new key at once (for a leaked key)")
	}
	rest, err := parseFlags(fs, args[1:], keysUsage)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("keys %s takes no arguments\n%s", args[0], keysUsage)
	}
	now := nowFlag != nil && *nowFlag
	a, store, err := openApp(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	if args[0] == "rotate" {
		k, err := a.Tokens.Rotate(ctx, now)
		if errors.Is(err, token.ErrKeyWaiting) {
			return fmt.Errorf("%w; run tessera keys rotate --now to make another that signs at once", err)
		}
		if err != nil {
			return err
		}
		if now {
			fmt.Fprintf(stdout, "Added signing key %s (%s); running instances sign with it within a minute.\n", k.ID, k.Algorithm)
		} else {
			fmt.Fprintf(stdout, "Added signing key %s (%s); it is published now and signs from %s.\n", k.ID, k.Algorithm, k.ActivatesAt.Format(time.RFC3339))
		}
		return nil
	}
	keys, err := a.Tokens.List(ctx)
	if err != nil {
		return err
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tSIGNS FROM\tRETIRED\tPUBLISHED UNTIL")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State, when(k.CreatedAt), when(k.ActivatesAt), when(k.RetiredAt), when(k.PublishedUntil))
	}
	return tw.Flush()
}
