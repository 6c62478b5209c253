package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// passwordFromStdin reads an operator's password from the first line of
// standard input: a password is never a flag, where ps and shell history
// would see it.
func (m *Main) passwordFromStdin(sub, login string, passwordStdin bool) (string, error) {
	if login == "" || !passwordStdin {
		return "", fmt.Errorf("operator %s needs --login and --password-stdin (the password is never a flag)", sub)
	}
	line, err := bufio.NewReader(m.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (m *Main) operator(ctx context.Context, args []string) error {
	sub, args, err := m.subcommand("operator", args)
	if err != nil {
		return err
	}
	// Before anything is opened: a typo creates no database or key.
	if !slices.Contains([]string{"create", "list", "disable", "password", "rights", "unlock"}, sub) {
		return fmt.Errorf("unknown operator subcommand %q", sub)
	}
	var (
		login         string
		passwordStdin bool
		rights        multiFlag
	)
	_, s, err := m.parse("operator "+sub, args, func(fs *flag.FlagSet) {
		fs.StringVar(&login, "login", "", "operator login")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
		fs.Var(&rights, "right", "named right (admin, privacyRight); repeat or separate with commas")
	})
	if err != nil {
		return err
	}
	if sub != "create" { // the others read or change what is there
		if err := existingDatabase(s); err != nil {
			return err
		}
	}
	log := m.logger(s)
	a, err := m.open(ctx, s, log)
	if err != nil {
		return err
	}
	defer a.Close()
	sessions := a.Sessions
	switch sub {
	case "create":
		password, err := m.passwordFromStdin(sub, login, passwordStdin)
		if err != nil {
			return err
		}
		if err := sessions.CreateOperator(ctx, login, password, rights); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "operator %s created\n", login)
	case "list":
		ops, err := sessions.Operators(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LOGIN\tRIGHTS\tSTATE\tCREATED")
		for _, op := range ops {
			state := "active"
			if op.Disabled {
				state = "disabled"
			} else if op.LockedUntil != nil && time.Now().Before(*op.LockedUntil) {
				state = "locked until " + op.LockedUntil.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", op.Login, strings.Join(op.Rights, ","), state, op.Created.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "disable":
		if login == "" {
			return errors.New("operator disable needs --login")
		}
		if err := sessions.DisableOperator(ctx, login); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "operator %s disabled; its sessions are revoked\n", login)
	case "password":
		password, err := m.passwordFromStdin(sub, login, passwordStdin)
		if err != nil {
			return err
		}
		if err := sessions.SetPassword(ctx, login, password); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "operator %s has a new password; its sessions are revoked\n", login)
	case "rights":
		if login == "" {
			return errors.New("operator rights needs --login")
		}
		if err := sessions.SetRights(ctx, login, rights); err != nil {
			return err
		}
		held := strings.Join(rights, ", ")
		if held == "" {
			held = "no named right"
		}
		fmt.Fprintf(m.Stdout, "operator %s now holds: %s\n", login, held)
	case "unlock":
		if login == "" {
			return errors.New("operator unlock needs --login")
		}
		if err := sessions.UnlockOperator(ctx, login); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "operator %s unlocked\n", login)
	default:
		return fmt.Errorf("unknown operator subcommand %q", sub)
	}
	return nil
}

// multiFlag collects a repeatable, comma-separable flag.
type multiFlag []string

func (f *multiFlag) String() string { return strings.Join(*f, ",") }

func (f *multiFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*f = append(*f, p)
		}
	}
	if strings.TrimSpace(strings.ReplaceAll(v, ",", "")) == "" {
		// A script's unset variable (--right "$RIGHT"): not "no rights".
		return errors.New("an empty right: name one (admin, privacyRight)")
	}
	return nil
}
