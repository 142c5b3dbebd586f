// Command tessera is the Tessera service and its operator tools.
//
//	tessera serve                  run the service
//	tessera client create NAME     create an API client and print its token
//	tessera client list            list API clients
//	tessera client revoke NAME|ID  revoke an API client
//	tessera client policy NAME|ID  show or set a client's sending policy
//	tessera template add|list|remove  registered message templates
//	tessera user create EMAIL      create an end-user account
//	tessera user list|show|disable|enable|revoke-sessions|reset-mfa|delete|import
//	                               find, manage and import end users
//	tessera keys rotate|list       manage ID-token signing keys
//	tessera sms-breaker status|clear [PREFIX]  the SMS pumping breaker
//	tessera migrate                apply database migrations and exit
//	tessera bench [flags]          drive initiate→validate load at a running server
//	tessera version                what this binary was built from
//
// Configuration comes from TESSERA_* environment variables; see README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/tessera-id/tessera/internal/config"
	"github.com/tessera-id/tessera/internal/loadtest"
)

const usage = `Tessera: self-hosted verification and account security.

Usage:
  tessera serve                  run the service (SQLite in ./tessera-data unless configured)
  tessera client create NAME     create an API client; its bearer token is the last line printed
  tessera client list            list API clients
  tessera client revoke NAME|ID  revoke an API client
  tessera client policy NAME|ID [flags]  show or set what a client may send (fromEmail, templates only)
  tessera template add|list|remove       registered message templates (tessera template --help)
  tessera user create EMAIL      create an end-user account, its email confirmed (asks for the
                                 password on a terminal, else reads it from standard input)
  tessera user list|show|disable|enable|revoke-sessions|reset-mfa|delete|import
                                 find and manage end users, import them (tessera user --help)
  tessera keys rotate [--now]    publish a new ID-token signing key (it signs after TESSERA_KEY_PUBLISH_AHEAD)
  tessera keys list              list ID-token signing keys and their states
  tessera audit [--user EMAIL|ID] [--kind KIND] [--since 24h] [--limit 100] [--json]
                                 the audit log of end-user security events, newest first
  tessera sms-breaker status|clear [PREFIX]
                                 the SMS pumping breaker: prefixes whose codes are refused; clear one
  tessera config                 print the effective configuration, secrets masked
  tessera migrate                apply database migrations and exit
  tessera bench [flags]          load-test a running server (tessera bench -help)
  tessera version                what this binary was built from
  tessera help [COMMAND]         show this help, or a command's (also: tessera COMMAND --help)

Commands other than serve work on the data serve has created: they refuse
to start on a TESSERA_DATA_DIR without a Tessera database (run them where
serve runs, or set TESSERA_DATA_DIR). --init, on any of them, creates a new
data directory instead. Flags go before or after the arguments; --help on
any command prints its help and does nothing else.

Configuration (environment):
  TESSERA_ADDR              listen address (default 127.0.0.1:8080)
  TESSERA_DATA_DIR          SQLite database and generated keys (default ./tessera-data)
  TESSERA_DATABASE_URL      postgres://… to use PostgreSQL instead of SQLite (_FILE variant)
  TESSERA_HMAC_KEY          base64 32-byte key for hashing codes and tokens (_FILE variant)
  TESSERA_ENCRYPTION_KEYS   id:base64key[,id:base64key…], newest first (_FILE variant)
  TESSERA_SQLITE_SYNC       normal (default) or full
  TESSERA_POSTGRES_MAX_CONNS  connection pool size (default 16)
  TESSERA_LOG_FORMAT        text (default) or json
  TESSERA_LOG_LEVEL         debug, info (default), warn, error
  TESSERA_SHUTDOWN_TIMEOUT  how long SIGTERM waits for requests in flight (default 15s)
  TESSERA_RETENTION         how long used and expired rows are kept (default 24h)
  TESSERA_SERVICE_NAME      the name users see in messages and authenticator apps (default Tessera)
  TESSERA_TOKEN_ISSUER      the ID token's iss, usually the public URL (default tessera)
  TESSERA_TOKEN_AUDIENCE    the ID token's aud (default tessera)
  TESSERA_ID_TOKEN_TTL      ID token lifetime (default 15m)
  TESSERA_EMAIL_SENDER      log (default), smtp or webhook; see README for TESSERA_SMTP_*
  TESSERA_SMS_SENDER        log (default), twilio or webhook; see README for TESSERA_TWILIO_*, TESSERA_WEBHOOK_*
  TESSERA_CORS_ORIGINS      origins whose browser scripts may call the accounts API (default none: CORS off)
  TESSERA_DEV_INBOX         1: show the log sender's messages at /dev/inbox; 0: never (default: on a loopback address with SQLite)
  TESSERA_DEBUG_ADDR        if set, serve Go's pprof profiles on this address (loopback only!)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tessera:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("a command is required")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		printHelp(ctx, stdout, args[1:])
		return nil
	case "version", "-version", "--version":
		return versionCommand(stdout)
	}
	if helpAsked(args[1:]) {
		printHelp(ctx, stdout, args)
		return nil
	}
	if args[0] != "bench" {
		ctx, args = takeInit(ctx, args)
	}
	switch args[0] {
	case "config":
		return configCommand(args[1:], getenv, stdout)
	case "serve":
		if len(args) > 1 {
			return fmt.Errorf("serve takes no arguments (configuration is in TESSERA_* variables)\n%s", commandHelp["serve"])
		}
		return serve(ctx, getenv, stdout, stderr)
	case "client":
		return clientCommand(ctx, args[1:], getenv, stdout, stderr)
	case "template":
		return templateCommand(ctx, args[1:], getenv, stdout, stderr)
	case "user":
		return userCommand(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "keys":
		return keysCommand(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		if len(args) > 1 {
			return fmt.Errorf("migrate takes no arguments\n%s", commandHelp["migrate"])
		}
		return migrateCommand(ctx, getenv, stdout, stderr)
	case "audit":
		return auditCommand(ctx, args[1:], getenv, stdout, stderr)
	case "sms-breaker":
		return smsBreakerCommand(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		return loadtest.Command(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// commandHelp is each command's --help.
var commandHelp = map[string]string{
	"serve": `Usage: tessera serve

Runs the service: the verification API, the accounts API and the
one-time-token flows on TESSERA_ADDR, the outbox worker and the janitor.
With no configuration it uses SQLite in TESSERA_DATA_DIR (./tessera-data),
creates the server keys there, and on a new database a first API client.
GET /healthz answers while the process is up, GET /readyz when the database
answers and is migrated, GET /metrics has Prometheus figures.
SIGTERM or Ctrl-C drain requests in flight (TESSERA_SHUTDOWN_TIMEOUT).
Configuration: tessera help (environment variables) and README.md.
`,
	"client":        clientUsage + "\n",
	"template":      templateUsage + "\n",
	"user":          userUsage + "\n",
	"keys":          keysUsage + "\n",
	"client policy": clientPolicyUsage + "\n",
	"migrate": `Usage: tessera migrate

Applies the database migrations this binary carries and prints the schema
version. serve does the same at start; use this to migrate before rolling
out new instances.
`,
	"config": `Usage: tessera config

Prints the effective configuration (from TESSERA_* variables, their _FILE
variants and defaults), with passwords, tokens and keys masked. Fails with
what to fix, like serve, when the configuration is invalid.
`,
	"bench":       "Usage: tessera bench [flags]; see tessera bench -help\n",
	"audit":       auditHelp(),
	"sms-breaker": smsBreakerUsage + "\n",
}

// configCommand prints the effective configuration with secrets masked.
// It creates nothing: keys serve has not generated yet show as such.
func configCommand(args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("config takes no arguments\n%s", commandHelp["config"])
	}
	cfg, err := config.LoadMode(getenv, config.ReadOnly)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, s := range cfg.Settings() {
		v := s.Value
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", s.Name, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, w := range cfg.UnknownVariables(environ(), loadtest.TokenEnv) {
		fmt.Fprintln(stdout, "warning:", w)
	}
	return nil
}
