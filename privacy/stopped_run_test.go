package privacy_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestStoppedCollectRunReleasesItsClaims: a collect run is stopped (the
// service's shutdown, a deploy, `xtk:workflow#Stop`, ^C on `workflow run`)
// while it writes the first request's file. The run claimed every waiting
// request (up to 10 per worker) and returns at once on the cancelled
// context, without releasing the claims of the requests it never worked on:
// they stay claimed_by the stopped process until the lease runs out (15
// minutes by default). serve's comment and StopWorkflows promise that a
// stopped run "releases its requests for the next run" (and logs "its
// requests wait for their lease" only when a run did not stop in time);
// TestShutdownDuringDeleteRun checks it only for a deleted request. Harm:
// after every planned restart, the restarted service (or another replica)
// skips those requests for the whole lease: access files and deletes are
// held back for 15 minutes with nothing in their audit saying why, and the
// console shows them "processing" although nothing processes them.
// The clock does not move: a claim that was released is claimable at once.
func TestStoppedCollectRunReleasesItsClaims(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		runCtx, stop := context.WithCancel(context.Background())
		defer stop()
		var hits atomic.Int32
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.Workers = 1
			c.Failpoint = func(name string) error {
				if name == "export-chunk" && hits.Add(1) == 1 {
					stop() // the shutdown arrives while the first file is written
				}
				return nil
			}
		}})
		var ids []int64
		for n := int64(1); n <= 3; n++ {
			ids = append(ids, f.create(t, "defaultNamespace1", demodata.Email(n), privacy.TypeAccess, false))
		}
		if _, err := f.env.Privacy.Run(runCtx, privacy.Collect); !errors.Is(err, context.Canceled) {
			t.Fatalf("the stopped run: %v, want context.Canceled", err)
		}
		held, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(*) FROM privacy_requests WHERE claimed_by IS NOT NULL")
		if err != nil {
			t.Fatal(err)
		}
		// The next run (the restarted service) takes them at once.
		rep := f.run(t, privacy.Collect)
		for _, id := range ids {
			if s := f.status(t, id); s != privacy.StatusComplete {
				t.Errorf("request %d: %s after the next run", id, s)
			}
		}
		if held != 0 || rep.Processed != 3 {
			t.Fatalf("after the stopped run %d request(s) stayed claimed by the stopped process; the next run processed %d of 3 (the others wait for the 15-minute lease)", held, rep.Processed)
		}
	})
}

// TestTwoStepCrashAfterDeletesSparesReusedID: J48 again, through a crash
// instead of an unfinished purge. A confirmed two-step delete commits its
// deletes in DeleteOwned (workflows.go: flush), and only later, in a
// commit of its own, marks the reviewed rows deleted (deletedUpdate):
// DeleteOwned is given no record for a two-step delete. A process killed
// (or a run stopped, or the connection dropped) between the two commits
// leaves the request deleteInProgress with its rows gone and its reviewed
// set still unmarked. Another person's recipient written meanwhile under
// the freed id (ids chosen by the client, the case stillGone guards
// against) is then deleted by the run that takes the request back after
// the lease, "as reviewed": another person's data erased, never reviewed
// nor confirmed by anyone. The stop is simulated by cancelling the run
// right after the delete batch's commit (the "delete-after-batch" point
// where the fault tests SIGKILL the binary): nothing after it commits.
func TestTwoStepCrashAfterDeletesSparesReusedID(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		runCtx, stop := context.WithCancel(context.Background())
		defer stop()
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.Failpoint = func(name string) error {
				if name == "delete-after-batch" {
					stop() // the process dies right after the deletes' commit
				}
				return nil
			}
		}})
		id, rcp := interruptedDelete(t, f, runCtx, true)
		if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err != nil {
			t.Logf("second run: %v", err)
		}
		if n := reusedLeft(t, f, rcp); n != 1 {
			r, _ := f.env.DB.FindRequestByID(f.ctx, id)
			t.Errorf("another person's recipient (id %d, someone.else@example.com), written after a crash between the deletes and their completion, was deleted by the request's next run (plain SQL: %d left); status %s\naudit tail:\n%s",
				rcp, n, f.status(t, id), tail(r.Audit, 700))
		}
	})
}

// TestScheduledRunGoesOnAfterAFailedWorkflow: the scheduled and console runs
// (RunTaken "all") stopped at the first workflow that failed, so a delete
// run whose residue purge could not finish held back the 90-day cleanup,
// which Run (and its comment) never did. The cleanup now runs after it, and
// the first error is still returned.
func TestScheduledRunGoesOnAfterAFailedWorkflow(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.Failpoint = func(name string) error {
				if name == "residue-purge" {
					return errors.New("purge not finished")
				}
				return nil
			}
		}})
		f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, false)
		reports, err := f.env.Privacy.RunTaken(f.ctx, "all")
		if err == nil {
			t.Fatal("the failed delete run's error was not returned")
		}
		var ran []string
		for _, r := range reports {
			ran = append(ran, r.Workflow)
		}
		if !slices.Contains(ran, privacy.Cleanup) {
			t.Fatalf("the workflows that ran after a failed delete run: %v (the cleanup held back)", ran)
		}
	})
}
