package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestRefusedWorkflowRunIsCountedAsError: README recommends the alert
// increase(campaign_privacy_workflow_runs_total{result="error"}[1d]) > 0.
// When a newer binary migrated the database (J114), every scheduled,
// console or SOAP run of this replica is refused (Run's CheckVersion) and
// its xtk:workflow row records "error (...)": the metrics count each such
// run as result="error" too, whatever step refused it, or the counter of
// failed runs would stay at 0 while not one run succeeds.
func TestRefusedWorkflowRunIsCountedAsError(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			ctx := context.Background()
			latest, err := env.DB.LatestVersion()
			if err != nil {
				t.Fatal(err)
			}
			before := scrape(t, env.URL)
			if err := storetest.SQLOf(t, env.DB).Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				latest+1, fmt.Sprintf("%04d_from_a_newer_binary.sql", latest+1), time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			// The schedule's and the console's path.
			if _, err := env.Privacy.RunTaken(ctx, "all"); err == nil {
				t.Fatal("a run on a schema newer than the binary was not refused")
			}
			after := scrape(t, env.URL)
			for _, w := range privacy.Workflows {
				if d := delta(before, after, "campaign_privacy_workflow_runs_total", "workflow", w, "result", "error"); d != 1 {
					t.Errorf("workflow_runs_total{workflow=%q,result=\"error\"} moved by %v after its run was refused, want 1", w, d)
				}
			}
		})
	}
}

// TestStoppedRunIsNotAnError: a scheduled run that the service's shutdown
// stops (a rolling deploy) ends cleanly by design: its claimed requests
// are released for the next run and its xtk:workflow row says "stopped by
// the service's shutdown", not "error". The metrics count it as
// result="stopped": counted as an error, README's recommended alert
// increase(...{result="error"}[1d]) > 0 would fire on every deploy that
// meets a run.
func TestStoppedRunIsNotAnError(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			runCtx, shutdown := context.WithCancel(context.Background())
			defer shutdown()
			env := servertest.New(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
				c.Failpoint = func(step string) error {
					if step == "collect-lookup" {
						shutdown() // the SIGTERM arrives while the run works
					}
					return nil
				}
			}})
			g := &demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 5}
			if _, _, err := g.Generate(context.Background(), 3, nil); err != nil {
				t.Fatal(err)
			}
			env.Operator(t, "zorro", "zorro-secret", session.RightPrivacy)
			token, _ := env.Logon(t, "zorro", "zorro-secret")
			if _, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall(token, demodata.Email(1), "1", "false")); !strings.Contains(body, "<id") {
				t.Fatalf("create: %s", body)
			}
			before := scrape(t, env.URL)
			_, err := env.Privacy.Run(runCtx, privacy.Collect)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("the stopped run returned %v", err)
			}
			after := scrape(t, env.URL)
			if d := delta(before, after, "campaign_privacy_workflow_runs_total", "workflow", privacy.Collect, "result", "error"); d != 0 {
				t.Errorf("a run stopped by the shutdown moved workflow_runs_total{result=\"error\"} by %v, want 0", d)
			}
			if d := delta(before, after, "campaign_privacy_workflow_runs_total", "workflow", privacy.Collect, "result", "stopped"); d != 1 {
				t.Errorf("a run stopped by the shutdown moved workflow_runs_total{result=\"stopped\"} by %v, want 1", d)
			}
		})
	}
}

// TestLeaseLostRunIsAnError: a run whose workflow row another replica
// took over (its lease ran out unrenewed: the database out of reach, the
// process stalled) is cancelled by its renewal — and both replicas may
// have worked at once. That is not a stop anyone asked for: it counts as
// result="error", which README's alert watches, not as "stopped".
func TestLeaseLostRunIsAnError(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			var env *servertest.Env
			env = servertest.New(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
				c.Failpoint = func(step string) error {
					if step != "collect-lookup" {
						return nil
					}
					// Another replica takes the row; the renewal (every 2 s)
					// finds the run's lease gone.
					if err := storetest.SQLOf(t, env.DB).Exec(context.Background(),
						"UPDATE workflows SET run_by = 'another-replica' WHERE internal_name = ?", privacy.Collect); err != nil {
						return err
					}
					time.Sleep(3 * time.Second)
					return nil
				}
			}})
			g := &demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 5}
			if _, _, err := g.Generate(context.Background(), 3, nil); err != nil {
				t.Fatal(err)
			}
			env.Operator(t, "zorro", "zorro-secret", session.RightPrivacy)
			token, _ := env.Logon(t, "zorro", "zorro-secret")
			if _, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall(token, demodata.Email(1), "1", "false")); !strings.Contains(body, "<id") {
				t.Fatalf("create: %s", body)
			}
			before := scrape(t, env.URL)
			if _, err := env.Privacy.RunTaken(context.Background(), privacy.Collect); err == nil || !strings.Contains(err.Error(), "lease was lost") {
				t.Fatalf("the run whose lease was lost returned %v, want the lease's loss (not a cancellation)", err)
			}
			after := scrape(t, env.URL)
			if d := delta(before, after, "campaign_privacy_workflow_runs_total", "workflow", privacy.Collect, "result", "stopped"); d != 0 {
				t.Errorf("a run whose lease was lost moved workflow_runs_total{result=\"stopped\"} by %v, want 0", d)
			}
			if d := delta(before, after, "campaign_privacy_workflow_runs_total", "workflow", privacy.Collect, "result", "error"); d != 1 {
				t.Errorf("a run whose lease was lost moved workflow_runs_total{result=\"error\"} by %v, want 1", d)
			}
		})
	}
}
