package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/privacy"
)

func (m *Main) migrate(ctx context.Context, args []string) error {
	_, s, err := m.parse("migrate", args, nil)
	if err != nil {
		return err
	}
	log := m.logger(s)
	a, err := m.open(ctx, s, log)
	if err != nil {
		return err
	}
	defer a.Close()
	v, err := a.DB.Version(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "database schema at version %d (%s)\n", v, a.DB.Dialect())
	return nil
}

func (m *Main) workflow(ctx context.Context, args []string) error {
	sub, args, err := m.subcommand("workflow", args)
	if err != nil {
		return err
	}
	if helpRequested(args) {
		return m.help("workflow run", nil)
	}
	if sub != "run" || len(args) == 0 {
		writeHelp(m.Stderr, "workflow", nil)
		return errors.New("usage: workflow run <" + strings.Join(privacy.Workflows, "|") + "|all>")
	}
	args = append([]string{sub}, args...)
	name := args[1]
	_, s, err := m.parse("workflow run", args[2:], nil)
	if err != nil {
		return err
	}
	a, err := m.open(ctx, s, m.logger(s))
	if err != nil {
		return err
	}
	defer a.Close()
	reports, err := a.Privacy.Run(ctx, name)
	for _, r := range reports {
		fmt.Fprintln(m.Stdout, r)
	}
	return err
}
