package privacy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// The technical workflows driven over SOAP (xtk:workflow#Start, Stop,
// PostEvent, StartWithParameters), as testers drive ACC's from SoapUI. A
// start is accepted, then runs in the background, as ACC's do; one run at a
// time per workflow across replicas (a conditional UPDATE on its row in
// workflows, with a lease renewed while it runs); a second start while it
// runs is a Conflict.

// SignalActivity is the one activity PostEvent accepts: the external signal
// that starts a technical workflow's processing.
const SignalActivity = "signal"

// requireAdmin: driving workflows needs the admin right.
func requireAdmin(c *session.Caller) error {
	if c == nil || !c.HasRight(session.RightAdmin) {
		return apperr.Errorf(apperr.Forbidden, "Driving a workflow needs the admin right.")
	}
	return nil
}

// technicalWorkflow finds one of the three technical workflows by internal
// name or id.
func (s *Service) technicalWorkflow(ctx context.Context, ref string) (*store.WorkflowRun, error) {
	if ref == "" {
		return nil, apperr.Errorf(apperr.Invalid, "The workflow's internal name or id is required.")
	}
	w, err := s.db.FindWorkflowRun(ctx, ref)
	if apperr.CodeOf(err) == apperr.NotFound || err == nil && !slices.Contains(Workflows, w.InternalName) {
		return nil, apperr.Errorf(apperr.NotFound, "The workflow '%s' does not exist (%s, %s or %s).", apperr.Quote(ref, 64), Collect, Delete, Cleanup)
	}
	return w, err
}

// StartWorkflow starts a technical workflow by internal name or id: it
// returns once the run is taken, and the run goes on in the background.
func (s *Service) StartWorkflow(ctx context.Context, caller *session.Caller, ref string) error {
	if err := requireAdmin(caller); err != nil {
		return err
	}
	w, err := s.technicalWorkflow(ctx, ref)
	if err != nil {
		return err
	}
	if err := s.db.CheckVersion(ctx); err != nil {
		return err // another replica's newer binary migrated the database
	}
	ok, err := s.db.StartWorkflowRun(ctx, w.ID, s.cfg.Worker, s.cfg.Lease)
	if err != nil {
		return err
	}
	if !ok {
		return apperr.Errorf(apperr.Conflict, "The workflow '%s' is already running: stop it or wait for its end.", w.InternalName)
	}
	s.log.InfoContext(ctx, "workflow started", "workflow", w.InternalName, "operator_id", caller.OperatorID)
	// The run outlives the call, and stops at StopWorkflows (a shutdown),
	// as a scheduled run stops at the service's end.
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	unwatch := context.AfterFunc(s.runsDone, stop)
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		defer unwatch()
		defer stop()
		s.runWorkflow(runCtx, w.ID, w.InternalName)
	}()
	return nil
}

// runWorkflow runs one started workflow in the background (Start).
func (s *Service) runWorkflow(ctx context.Context, id int64, name string) {
	_, _ = s.runTaken(ctx, id, name)
}

// RunTaken runs the named workflow, or each of them for "all", as the
// schedule and the console do: each one only after taking its xtk:workflow
// row, as Start does, so a scheduled run and a run started over SOAP never
// overlap on any replica. A workflow already running is skipped (logged),
// not waited for. A database migrated by a newer binary (another replica
// upgraded first) is refused by Run: this one does not know its schema.
func (s *Service) RunTaken(ctx context.Context, name string) ([]Report, error) {
	names := []string{name}
	if name == "all" {
		names = Workflows
	}
	var (
		out      []Report
		firstErr error
	)
	for _, n := range names {
		if ctx.Err() != nil {
			break // stopped: the next workflows too
		}
		w, err := s.technicalWorkflow(ctx, n)
		if err != nil {
			return out, err
		}
		ok, err := s.db.StartWorkflowRun(ctx, w.ID, s.cfg.Worker, s.cfg.Lease)
		if err != nil {
			return out, err
		}
		if !ok {
			s.log.InfoContext(ctx, "workflow skipped: it is already running", "workflow", w.InternalName)
			continue
		}
		reports, err := s.runTaken(ctx, w.ID, w.InternalName)
		out = append(out, reports...)
		// A workflow that fails does not keep the next from running, as in
		// Run: a delete run whose purge waited on a long pg_dump must not
		// hold back the 90-day cleanup. The first error is returned.
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}

// errWorkflowLeaseLost ends a run whose workflow row another replica took
// over: its lease ran out unrenewed (the database out of reach, or this
// process stalled for that long), and both may have worked at once. Not a
// stop asked for: the run counts as an error (runResult).
var errWorkflowLeaseLost = errors.New("the workflow's lease was lost to another replica")

// runTaken runs one workflow whose row this worker holds, renews its lease,
// stops when a stop is asked for (on any replica) and records the result.
func (s *Service) runTaken(ctx context.Context, id int64, name string) ([]Report, error) {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	var stopped bool
	var mu sync.Mutex
	go func() {
		every := min(s.cfg.Lease/3, 2*time.Second)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			held, stop, err := s.db.RenewWorkflowRun(ctx, id, s.cfg.Worker, s.cfg.Lease)
			if err != nil {
				s.log.WarnContext(ctx, "workflow lease renewal failed", "workflow", name, "err", apperr.LogText(err))
				continue
			}
			if !held || stop {
				mu.Lock()
				stopped = true
				mu.Unlock()
				var cause error // a stop asked for
				if !held {
					cause = errWorkflowLeaseLost
				}
				cancel(cause)
				return
			}
		}
	}()
	reports, err := s.Run(runCtx, name)
	close(done)
	lost := errors.Is(context.Cause(runCtx), errWorkflowLeaseLost)
	if lost && err != nil {
		err = errWorkflowLeaseLost // not the context.Canceled the run saw
	}
	var processed, failed int
	for _, r := range reports {
		processed += r.Processed
		failed += r.Failed
	}
	mu.Lock()
	result := fmt.Sprintf("%d processed, %d failed", processed, failed)
	switch {
	case lost:
		result = "error (lease lost: another replica took the run over): " + result
	case stopped:
		result = "stopped: " + result
	case ctx.Err() != nil:
		result = "stopped by the service's shutdown: " + result
	case err != nil:
		result = fmt.Sprintf("error (%s): %s", apperr.CodeOf(err), result)
	}
	mu.Unlock()
	// Recorded at a shutdown too: else the row stays taken until its lease
	// ends, and every run before that is skipped.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer fcancel()
	if ferr := s.db.FinishWorkflowRun(fctx, id, s.cfg.Worker, result); ferr != nil {
		s.log.WarnContext(ctx, "workflow end not recorded", "workflow", name, "err", apperr.LogText(ferr))
		return reports, err
	}
	s.log.InfoContext(ctx, "workflow finished", "workflow", name, "result", result)
	return reports, err
}

// StopWorkflow asks a running technical workflow to stop; stopping one
// that does not run changes nothing, as in ACC.
func (s *Service) StopWorkflow(ctx context.Context, caller *session.Caller, ref string) error {
	if err := requireAdmin(caller); err != nil {
		return err
	}
	w, err := s.technicalWorkflow(ctx, ref)
	if err != nil {
		return err
	}
	if _, err := s.db.StopWorkflowRun(ctx, w.ID); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "workflow stop asked", "workflow", w.InternalName, "operator_id", caller.OperatorID)
	return nil
}

// PostWorkflowEvent posts an event to a technical workflow's activity. The
// technical workflows have one external signal, "signal": an event to it
// starts the workflow's processing, as StartWorkflow. Any other activity is
// refused.
func (s *Service) PostWorkflowEvent(ctx context.Context, caller *session.Caller, ref, activity string) error {
	if err := requireAdmin(caller); err != nil {
		return err
	}
	if activity != SignalActivity {
		return apperr.Errorf(apperr.Invalid, "The workflow has no activity '%s': its external signal is '%s'.", apperr.Quote(activity, 64), SignalActivity)
	}
	return s.StartWorkflow(ctx, caller, ref)
}

// WaitWorkflows waits for the runs this process started over SOAP (tests).
func (s *Service) WaitWorkflows() { s.runs.Wait() }

// StopWorkflows stops the runs this process started over SOAP, as a
// shutdown stops a scheduled run (a delete run ends its batch, starts no
// residue purge and releases its requests for the next run), and waits
// for them until ctx ends; it reports whether they all ended.
func (s *Service) StopWorkflows(ctx context.Context) bool {
	s.stopRuns()
	done := make(chan struct{})
	go func() {
		s.runs.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// WorkflowState returns a technical workflow's row (tests, the console).
func (s *Service) WorkflowState(ctx context.Context, ref string) (state int, lastResult string, err error) {
	w, err := s.technicalWorkflow(ctx, ref)
	if err != nil {
		return 0, "", err
	}
	if w.LastResult != nil {
		lastResult = *w.LastResult
	}
	return w.State, lastResult, nil
}
