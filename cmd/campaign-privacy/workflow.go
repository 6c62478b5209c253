package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/internal/app"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
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
	if name != "all" && !slices.Contains(privacy.Workflows, name) {
		return fmt.Errorf("unknown workflow %q: %s or all", name, strings.Join(privacy.Workflows, ", ")) // before anything is opened
	}
	_, s, err := m.parse("workflow run", args[2:], nil)
	if err != nil {
		return err
	}
	bars := &workflowProgress{m: m}
	defer bars.finish()
	a, err := m.open(ctx, s, m.logger(s), func(c *app.Config) { c.Privacy.Progress = bars.report })
	if err != nil {
		return err
	}
	defer a.Close()
	bars.db = a.DB
	names := []string{name}
	if name == "all" {
		names = privacy.Workflows
	}
	// Each workflow runs only after taking its xtk:workflow row, as the
	// schedule, the console and a SOAP Start do: never beside a run of it
	// on this or another replica.
	for _, n := range names {
		bars.start(n)
		reports, err := a.Privacy.RunTaken(ctx, n)
		bars.finish()
		if len(reports) == 0 && err == nil {
			fmt.Fprintf(m.Stdout, "%s: skipped, it is already running (here or on another replica)\n", n)
		}
		for _, r := range reports {
			fmt.Fprintln(m.Stdout, r)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// workflowProgress draws one progress per workflow that runs, its total
// the requests waiting for it when it starts (unknown for the cleanup).
type workflowProgress struct {
	m  *Main
	db *store.DB
	p  *progress
}

// waiting are the statuses each workflow takes requests from.
var waiting = map[string][]privacy.Status{
	privacy.Collect: {privacy.StatusNew, privacy.StatusRetryPending, privacy.StatusProcessing, privacy.StatusRetryInProgress},
	privacy.Delete:  {privacy.StatusDeletePending, privacy.StatusDeleteInProgress},
}

func (w *workflowProgress) start(workflow string) {
	w.p = w.m.newProgress(workflow, "requests", w.total(workflow))
}

func (w *workflowProgress) report(r privacy.Report) {
	if w.p != nil {
		w.p.Set(int64(r.Processed + r.Failed))
	}
}

// total counts the requests waiting for a workflow; 0 when unknown.
func (w *workflowProgress) total(workflow string) int64 {
	var n int64
	for _, st := range waiting[workflow] {
		v := store.Status(st)
		_, count, err := w.db.FindRequests(context.Background(), store.RequestFilter{Status: &v, Limit: 1})
		if err != nil {
			return 0
		}
		n += count
	}
	return n
}

func (w *workflowProgress) finish() {
	if w.p != nil {
		w.p.Finish()
		w.p = nil
	}
}
