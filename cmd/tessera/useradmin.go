package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/account"
	"github.com/tessera-id/tessera/internal/policy"
)

// The operator's side of the admin API: the same account operations, as
// policy.Operator (whoever runs the command has the database and keys).

const userAdminUsage = `  tessera user list [--email E] [--phone P] [--status S] [--created-from T] [--created-to T]
                    [--last-login-from T] [--last-login-to T] [--limit N] [--cursor C] [--json]
                                           list and search users, oldest first (times RFC 3339)
  tessera user show EMAIL|ID [--json]      one user, unmasked, with credentials and active sessions
  tessera user disable EMAIL|ID            disable the account and end every session at once
  tessera user enable EMAIL|ID             enable it again (the user logs in again)
  tessera user revoke-sessions EMAIL|ID    end every session of the user
  tessera user reset-mfa EMAIL|ID          remove every second factor, end every session, email the user
  tessera user delete EMAIL|ID --yes       erase the account and every row naming it
  tessera user import FILE [--firebase-signer-key K --firebase-salt-separator S
                    --firebase-rounds N --firebase-mem-cost N]
                                           import users from a JSON-lines file (- for standard input)`

// cliMeta is what the audit log records as the client of a command.
var cliMeta = account.Meta{UserAgent: "tessera command line"}

// userAdminCommand runs the user commands other than create. Every
// command parses all its arguments (--help included) before it opens
// the database, so --help anywhere prints help and changes nothing.
func userAdminCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	sub := args[0]
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	help := fmt.Sprintf("Usage:\n%s\n", userAdminUsage)
	asJSON, yes := new(bool), new(bool)
	query := map[string]*string{}
	var fb account.FirebaseParams
	nargs := 1
	switch sub {
	case "list":
		nargs = 0
		for _, name := range []string{"email", "phone", "status", "created-from", "created-to", "last-login-from", "last-login-to", "limit", "cursor"} {
			query[name] = fs.String(name, "", "")
		}
		fs.BoolVar(asJSON, "json", false, "")
	case "show":
		fs.BoolVar(asJSON, "json", false, "")
	case "delete":
		fs.BoolVar(yes, "yes", false, "")
	case "import":
		fs.StringVar(&fb.SignerKey, "firebase-signer-key", "", "")
		fs.StringVar(&fb.SaltSeparator, "firebase-salt-separator", "", "")
		fs.IntVar(&fb.Rounds, "firebase-rounds", 0, "")
		fs.IntVar(&fb.MemCost, "firebase-mem-cost", 0, "")
	case "disable", "enable", "revoke-sessions", "reset-mfa":
	default:
		return fmt.Errorf("unknown user command %q\n%s", sub, help)
	}
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, help)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w\n%s", err, help)
	}
	if len(pos) != nargs {
		return fmt.Errorf("user %s takes %d argument(s), got %d\n%s", sub, nargs, len(pos), help)
	}
	if sub == "delete" && !*yes {
		return fmt.Errorf("user delete erases the account for good: add --yes to confirm")
	}
	var firebase *account.FirebaseParams
	if fb != (account.FirebaseParams{}) {
		firebase = &fb
	}
	var q tessera.UserQuery
	if sub == "list" {
		// The flags are the admin API's query parameters, spelt as flags.
		flagOf := map[string]string{"createdFrom": "created-from", "createdTo": "created-to", "lastLoginFrom": "last-login-from", "lastLoginTo": "last-login-to"}
		q, err = account.ParseUserQuery(func(name string) string {
			if f, ok := flagOf[name]; ok {
				name = f
			}
			return *query[name]
		})
		if err != nil {
			return err
		}
	}

	a, store, err := openApp(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	accounts := a.Accounts
	switch sub {
	case "list":
		return userList(ctx, accounts, q, *asJSON, stdout)
	case "show":
		return userShow(ctx, accounts, pos[0], *asJSON, stdout)
	case "import":
		return userImport(ctx, accounts, pos[0], firebase, stdin, stdout)
	}
	return userAction(ctx, accounts, sub, pos[0], stdout)
}

// parseInterspersed parses flags before, between and after the
// positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// userList prints a page of users.
func userList(ctx context.Context, accounts *account.Service, q tessera.UserQuery, asJSON bool, stdout io.Writer) error {
	page, err := accounts.ListUsers(ctx, policy.Operator, q)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, u := range page.Users {
			if err := enc.Encode(account.AdminView(u)); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tPHONE\tSTATUS\tMFA\tCREATED\tLAST LOGIN")
		for _, u := range page.Users {
			v := account.AdminView(u)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Email, dashIfEmpty(v.Phone), v.Status, onOff(v.MFAEnabled),
				v.CreatedAt.Format(time.RFC3339), timeOrDash(v.LastLoginAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if page.Next != "" {
		fmt.Fprintf(stdout, "More users: add --cursor %s\n", page.Next)
	}
	return nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// userShow prints one user with credentials and sessions.
func userShow(ctx context.Context, accounts *account.Service, who string, asJSON bool, stdout io.Writer) error {
	d, err := accounts.UserDetail(ctx, policy.Operator, who, cliMeta)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"user": d.User, "credentials": d.Credentials, "sessions": d.Sessions})
	}
	u := d.User
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\nemail\t%s (verified %s)\nphone\t%s (verified %s)\nstatus\t%s\nmfa\t%s\npassword\t%s\ncreated\t%s\nlast login\t%s %s\nfailed logins\t%d (locked until %s)\n",
		u.ID, u.Email, timeOrDash(u.EmailVerifiedAt), dashIfEmpty(u.Phone), timeOrDash(u.PhoneVerifiedAt), u.Status, onOff(u.MFAEnabled),
		map[bool]string{true: "set", false: "none"}[u.HasPassword], u.CreatedAt.Format(time.RFC3339), timeOrDash(u.LastLoginAt), u.LastLoginDevice,
		u.FailedLogins, timeOrDash(u.LockedUntil))
	fmt.Fprintln(tw, "\nCREDENTIAL\tIDENTIFIER\tVERIFIED\tSECOND FACTOR\tCREATED\tLAST USED")
	for _, c := range d.Credentials {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Kind, dashIfEmpty(c.Identifier), timeOrDash(c.VerifiedAt), map[bool]string{true: "yes", false: "no"}[c.SecondFactor],
			c.CreatedAt.Format(time.RFC3339), timeOrDash(c.LastUsedAt))
	}
	fmt.Fprintln(tw, "\nSESSION\tAAL\tCREATED\tLAST USED\tIP\tDEVICE")
	for _, s := range d.Sessions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.AAL, s.CreatedAt.Format(time.RFC3339), s.LastUsedAt.Format(time.RFC3339), dashIfEmpty(s.IP), dashIfEmpty(s.UserAgent))
	}
	return tw.Flush()
}

// userAction runs disable, enable, revoke-sessions, reset-mfa or delete.
func userAction(ctx context.Context, accounts *account.Service, sub, who string, stdout io.Writer) error {
	switch sub {
	case "disable":
		u, err := accounts.DisableUser(ctx, policy.Operator, who, cliMeta)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Disabled %s (id %s); every session ended.\n", u.Email, u.ID)
	case "enable":
		u, err := accounts.EnableUser(ctx, policy.Operator, who, cliMeta)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Enabled %s (id %s).\n", u.Email, u.ID)
	case "revoke-sessions":
		n, err := accounts.RevokeUserSessions(ctx, policy.Operator, who, cliMeta)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Ended %d sessions of %s.\n", n, who)
	case "reset-mfa":
		u, err := accounts.ResetMFA(ctx, policy.Operator, who, cliMeta)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Removed the second factors of %s (id %s) and ended every session; a notice is on its way to the user.\n", u.Email, u.ID)
	case "delete":
		if err := accounts.DeleteUser(ctx, policy.Operator, who, cliMeta); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Deleted %s and every row naming it.\n", who)
	}
	return nil
}

// userImport imports a JSON-lines file and prints one line per record
// that was not created, then the totals.
func userImport(ctx context.Context, accounts *account.Service, file string, fb *account.FirebaseParams, stdin io.Reader, stdout io.Writer) error {
	in := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	report, err := accounts.ImportLines(ctx, policy.Operator, in, fb, cliMeta)
	if report != nil {
		for _, r := range report.Results {
			switch r.Result {
			case account.ImportExists:
				fmt.Fprintf(stdout, "line %d: %s exists already: left as it is\n", r.Line, r.Email)
			case account.ImportInvalid:
				fmt.Fprintf(stdout, "line %d: %s: %s %s\n", r.Line, dashIfEmpty(r.Email), r.Field, r.Error)
			}
		}
		fmt.Fprintf(stdout, "Imported %d users; %d existed already, %d invalid.\n", report.Created, report.Exists, report.Invalid)
	}
	if err != nil {
		return err
	}
	if report.Invalid > 0 {
		return fmt.Errorf("%d lines were invalid: fix them and run the import again (it skips the users it created)", report.Invalid)
	}
	return nil
}
