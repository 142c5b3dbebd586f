package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/tessera-id/tessera/internal/apiclient"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/config"
	"github.com/tessera-id/tessera/internal/sqlstore"
)

const clientUsage = `Usage:
  tessera client create NAME     create an API client; its bearer token is the last line printed
  tessera client create --admin NAME
                                 the same with the admin scope: its token also opens the admin API
                                 (/admin/...: every end-user account)
  tessera client list            list API clients
  tessera client revoke NAME|ID  revoke an API client (its token stops working)
  tessera client policy NAME|ID [--from-email A]... [--from-domain D]... [--templates-only] [--clear]
                                 show or set what the client may send (tessera client policy --help)`

// clientCommand manages API clients in the configured database.
func clientCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("a client command is required\n%s", clientUsage)
	}
	if args[0] == "policy" {
		return clientPolicyCommand(ctx, args[1:], getenv, stdout, stderr)
	}
	want := map[string]int{"create": 1, "list": 0, "revoke": 1}
	n, known := want[args[0]]
	if !known {
		return fmt.Errorf("unknown client command %q\n%s", args[0], clientUsage)
	}
	flags := flag.NewFlagSet("client "+args[0], flag.ContinueOnError)
	var admin *bool
	if args[0] == "create" {
		admin = flags.Bool("admin", false, "give the client the admin scope (the admin API)")
	}
	rest, err := parseFlags(flags, args[1:], clientUsage)
	if err != nil {
		return err
	}
	if len(rest) != n {
		what := "no arguments"
		if n == 1 {
			what = "one NAME"
			if args[0] == "revoke" {
				what = "one NAME or ID"
			}
		}
		return fmt.Errorf("client %s takes %s, not %d\n%s", args[0], what, len(rest), clientUsage)
	}
	args = append(args[:1], rest...)
	cfg, store, reg, err := openRegistry(ctx, getenv)
	if err != nil {
		return err
	}
	defer store.Close()

	switch args[0] {
	case "create":
		create, scope := reg.Create, ""
		if *admin {
			create, scope = reg.CreateAdmin, " with the admin scope"
		}
		c, token, err := create(ctx, args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Created API client %q%s (id %s) in %s.\n", c.Name, scope, c.ID, describeDB(cfg))
		fmt.Fprintln(stdout, "Its bearer token, shown only now:")
		fmt.Fprintln(stdout, token)
	case "list":
		clients, err := store.Clients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tID\tSCOPE\tCREATED\tREVOKED")
		for _, c := range clients {
			revoked := "-"
			if !c.RevokedAt.IsZero() {
				revoked = c.RevokedAt.Format(time.RFC3339)
			}
			scope := "verification"
			if c.Admin {
				scope = "admin"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.ID, scope, c.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		if err := reg.Revoke(ctx, args[1]); err != nil {
			return fmt.Errorf("revoke %q: %w", args[1], err)
		}
		fmt.Fprintf(stdout, "Revoked API client %q. Running servers refuse its token within %v.\n", args[1], apiclient.CacheTTL)
	}
	return nil
}

func openRegistry(ctx context.Context, getenv func(string) string) (*config.Config, *sqlstore.DB, *apiclient.Registry, error) {
	cfg, err := loadConfig(ctx, getenv, os.Stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, err := app.Keyring(cfg)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	return cfg, store, &apiclient.Registry{Store: store, Keys: keys, Now: time.Now}, nil
}

func describeDB(cfg *config.Config) string {
	if cfg.UsesPostgres() {
		return "PostgreSQL"
	}
	return "SQLite at " + cfg.SQLitePath()
}

// migrateCommand applies migrations (opening the store does) and exits.
func migrateCommand(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	store, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	v, err := store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is at schema version %d.\n", describeDB(cfg), v)
	return nil
}
