package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/campaign-privacy/campaign-privacy/privacy"
)

func (m *Main) namespace(ctx context.Context, args []string) error {
	sub, args, err := m.subcommand("namespace", args)
	if err != nil {
		return err
	}
	if !slices.Contains([]string{"create", "update", "list"}, sub) {
		return fmt.Errorf("unknown namespace subcommand %q", sub) // before anything is opened
	}
	var ns privacy.Namespace
	fs, s, err := m.parse("namespace "+sub, args, func(fs *flag.FlagSet) {
		fs.StringVar(&ns.Name, "name", "", "internal name (the namespaceName of CreateRequestByName)")
		fs.StringVar(&ns.Label, "label", "", "label")
		fs.StringVar(&ns.TargetSchema, "schema", "nms:recipient", "target schema")
		fs.StringVar(&ns.ReconciliationKey, "key", "", "reconciliation key, an attribute of the target schema such as @account")
		fs.Int64Var(&ns.AecID, "aec-id", 0, "AEC namespace id (Identity Service)")
		fs.StringVar(&ns.MatchRule, "match", "exact", "match rule: exact (ACC), email (case-folded) or phone (E.164)")
		fs.StringVar(&ns.DefaultRegion, "region", "", "the phone rule's region for numbers without +country, such as US")
	})
	if err != nil {
		return err
	}
	if sub != "create" { // list and update read or change what is there
		if err := existingDatabase(s); err != nil {
			return err
		}
	}
	a, err := m.open(ctx, s, m.logger(s))
	if err != nil {
		return err
	}
	defer a.Close()
	switch sub {
	case "create":
		if err := a.Privacy.CreateNamespace(ctx, nil, ns); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "namespace %s created\n", ns.Name)
	case "update":
		// A flag not given keeps what the namespace has (--match's default
		// is for create). A changed rule rewrites the namespace's stored
		// field to its canonical form before this returns.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, fixed := range []string{"schema", "key", "aec-id"} {
			if set[fixed] {
				return fmt.Errorf("namespace update changes the label, the match rule and the region: --%s is fixed when the namespace is created", fixed)
			}
		}
		if !set["match"] || !set["region"] {
			all, err := a.Privacy.Namespaces(ctx)
			if err != nil {
				return err
			}
			for _, old := range all {
				if old.Name == ns.Name && !set["match"] {
					ns.MatchRule = old.MatchRule
				}
				if old.Name == ns.Name && !set["region"] {
					ns.DefaultRegion = old.DefaultRegion
				}
			}
		}
		if err := a.Privacy.UpdateNamespace(ctx, nil, ns); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "namespace %s updated\n", ns.Name)
	case "list":
		all, err := a.Privacy.Namespaces(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tLABEL\tTARGET\tKEY\tAEC ID\tMATCH\tREGION")
		for _, n := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.Name, n.Label, n.TargetSchema, n.ReconciliationKey, n.AecID, n.MatchRule, n.DefaultRegion)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown namespace subcommand %q", sub)
	}
	return nil
}
