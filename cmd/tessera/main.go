// Command tessera is the Tessera service and its operator tools.
//
//	tessera serve                  run the service
//	tessera client create NAME     create an API client and print its token
//	tessera client list            list API clients
//	tessera client revoke NAME|ID  revoke an API client
//	tessera user create EMAIL      create an end-user account
//	tessera keys rotate|list       manage ID-token signing keys
//	tessera migrate                apply database migrations and exit
//	tessera bench [flags]          drive initiate→validate load at a running server
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

	"github.com/tessera-id/tessera/internal/loadtest"
)

const usage = `Tessera: self-hosted verification and account security.

Usage:
  tessera serve                  run the service (SQLite in ./tessera-data unless configured)
  tessera client create NAME     create an API client; its bearer token is the last line printed
  tessera client list            list API clients
  tessera client revoke NAME|ID  revoke an API client
  tessera user create EMAIL [--verified]  create an end-user account (password on standard input)
  tessera keys rotate            add a new ID-token signing key
  tessera keys list              list ID-token signing keys
  tessera migrate                apply database migrations and exit
  tessera bench [flags]          load-test a running server (tessera bench -help)
  tessera help                   show this help

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
	case "serve":
		return serve(ctx, getenv, stdout, stderr)
	case "client":
		return clientCommand(ctx, args[1:], getenv, stdout)
	case "user":
		return userCommand(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "keys":
		return keysCommand(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return migrateCommand(ctx, getenv, stdout)
	case "bench":
		return loadtest.Command(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
