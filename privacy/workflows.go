package privacy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// The three technical workflows of ACC's privacy package. Each claims its
// requests (so replicas never process one twice at once), works outside the
// claim transaction, and records every step in the request's audit. A
// worker that dies leaves its claim; after the lease the request is taken
// back and the work, idempotent, runs again.

// Workflow names, as ACC calls them.
const (
	Collect = "collectPrivacyRequests"
	Delete  = "deletePrivacyRequestsData"
	Cleanup = "cleanupPrivacyRequests"
)

// Workflows lists them in the order "all" runs them.
var Workflows = []string{Collect, Delete, Cleanup}

// Report says what one run did.
type Report struct {
	Workflow  string
	Processed int // requests moved on
	Failed    int // requests that failed this time (retried later or in error)
}

func (r Report) String() string {
	return fmt.Sprintf("%s: %d processed, %d failed", r.Workflow, r.Processed, r.Failed)
}

// Run runs one workflow by name, or all of them in order. A workflow that
// fails does not keep the next from running (a delete run whose residue
// purge waited on a long pg_dump must not hold back the 90-day cleanup);
// Run returns the first error. Each workflow, and each claim of requests
// in it, first checks that no newer binary migrated the database meanwhile
// (store.CheckVersion): a replica left on the previous binary in a rolling
// upgrade stops writing a schema it does not know.
func (s *Service) Run(ctx context.Context, name string) ([]Report, error) {
	names := []string{name}
	if name == "all" {
		names = Workflows
	}
	if err := s.FlushDownloadCounts(ctx); err != nil {
		s.log.WarnContext(ctx, "repeat-download counts not written yet", "err", err)
	}
	var (
		out      []Report
		firstErr error
	)
	for _, n := range names {
		if ctx.Err() != nil {
			if firstErr == nil {
				firstErr = ctx.Err()
			}
			break // stopped: the next workflows too
		}
		var run func(context.Context) (Report, error)
		switch n {
		case Collect:
			run = s.CollectRequests
		case Delete:
			run = s.DeleteRequestsData
		case Cleanup:
			run = s.CleanupRequests
		default:
			return out, apperr.Errorf(apperr.Invalid, "Unknown workflow '%s' (%s, %s, %s or all).", n, Collect, Delete, Cleanup)
		}
		start := time.Now()
		r, err := Report{Workflow: n}, s.db.CheckVersion(ctx)
		refused := err != nil
		if !refused {
			r, err = run(ctx)
		}
		// A refused run is a failed run too: on a replica left behind by
		// an upgrade, every run is refused, and the alert on
		// result="error" is what says so.
		s.cfg.Metrics.WorkflowRun(n, time.Since(start), r.Processed, r.Failed, runResult(ctx, err))
		if refused {
			return out, err
		}
		out = append(out, r)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return out, firstErr
}

// runResult is a run's result for the metrics: a run whose context ended
// was stopped on request (the service's shutdown, a StopWorkflow), as its
// xtk:workflow row says (runTaken); its requests are released for the
// next run. That is not a failure: counted as one, every rolling deploy
// that met a run would fire the alert on result="error". A run ended by
// the loss of its lease (errWorkflowLeaseLost) is one.
func runResult(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return metrics.RunOK
	case ctx.Err() != nil && !errors.Is(context.Cause(ctx), errWorkflowLeaseLost):
		return metrics.RunStopped
	}
	return metrics.RunError
}

// claimBatch is how many requests one claim takes.
const claimBatch = 10

func ptr[T any](v T) *T { return &v }

// CollectRequests runs collectPrivacyRequests: it finds the subject of each
// new (or retry-pending) request, writes the data-subject file and moves the
// request on: access → complete; delete with the 2-step process →
// confirmDeletePending; delete without → deletePending; nobody found →
// errorDataNotFound.
func (s *Service) CollectRequests(ctx context.Context) (Report, error) {
	rep := Report{Workflow: Collect}
	if err := s.expireConfirmations(ctx); err != nil {
		return rep, err
	}
	s.refreshStatistics(ctx)
	from := []store.Status{StatusNew.stored(), StatusRetryPending.stored(), StatusProcessing.stored(), StatusRetryInProgress.stored()}
	to := map[store.Status]store.Status{StatusNew.stored(): StatusProcessing.stored(), StatusRetryPending.stored(): StatusRetryInProgress.stored()}
	return s.process(ctx, rep, from, to, StatusRetryPending, s.withLookups, s.collectOne)
}

// step works on one claimed request. With batch set it may hand back the
// request's share of the worker's batch commit instead of finishing the
// request itself (nil: it finished it, or the step could not be batched).
type step func(ctx context.Context, req *store.Request, batch bool) (*store.BatchItem, error)

// process runs cfg.Workers workers that claim requests in from (moving them
// to to) and hand each to step until none is left. A failed step is
// recorded with fail (retry back to retryStatus, or error). The steps of
// one claim that can be batched end in one transaction (commitBatch);
// prepare reads what the claim's steps need together (withLookups).
func (s *Service) process(ctx context.Context, rep Report, from []store.Status, to map[store.Status]store.Status, retryStatus Status,
	prepare func(context.Context, []store.Request) context.Context, step step) (Report, error) {
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	count := func(processed, failed int) {
		mu.Lock()
		rep.Processed += processed
		rep.Failed += failed
		s.progress(rep)
		mu.Unlock()
	}
	for w := 0; w < s.cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := s.workerName(w)
			ctx := context.WithValue(ctx, workerKey{}, worker)
			for ctx.Err() == nil {
				var reqs []store.Request
				err := s.db.CheckVersion(ctx) // a long run outlives an upgrade of the database
				if err == nil {
					err = s.renewDeleted(ctx)
				}
				if err == nil {
					reqs, err = s.db.ClaimRequests(ctx, from, to, claimBatch, worker, s.cfg.Lease)
				}
				if err == nil && len(reqs) == 0 {
					return
				}
				bctx := prepare(withNamespaceCache(ctx), reqs)
				var (
					items   []store.BatchItem
					pending []*store.Request
					stopped = len(reqs) // the first request whose step did not end
				)
				for i := 0; err == nil && i < len(reqs); i++ {
					item, serr := step(bctx, &reqs[i], true)
					switch {
					case serr != nil && ctx.Err() != nil:
						err, stopped = ctx.Err(), i
					case serr != nil:
						if err = s.fail(bctx, &reqs[i], retryStatus, serr); err != nil {
							stopped = i
						}
						count(0, 1)
					case item != nil:
						items, pending = append(items, *item), append(pending, &reqs[i])
					default:
						count(1, 0)
					}
				}
				if err == nil && len(items) > 0 {
					err = s.commitBatch(bctx, items, pending, retryStatus, step, count)
				} else if err != nil {
					// Stopped (or failed) before the batch's commit: the
					// requests whose step did not end, or whose end was
					// not committed, changed nothing yet. The next run
					// takes them at once, not after the lease.
					var open []int64
					for _, r := range pending {
						open = append(open, r.ID)
					}
					for _, r := range reqs[stopped:] {
						open = append(open, r.ID)
					}
					s.releaseClaims(ctx, worker, open)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return rep, firstErr
}

// renewDeleted renews, every third of the lease, the claims on the
// requests this run deleted, which wait for its residue purge: their
// lease began at their delete, and a run longer than the lease would
// otherwise claim them back — deleteInProgress, their holder's lease
// run out, as after a crash — and delete and check each again, a second
// record of the same delete in its audit and on the chain. Renewed before
// each of the run's claims, which would take them back; a worker that
// comes while another renews waits for the renewal's end before it claims.
func (s *Service) renewDeleted(ctx context.Context) error {
	s.renewing.Lock()
	defer s.renewing.Unlock()
	ids := s.touched.renewDue(s.cfg.Now(), s.cfg.Lease/3)
	if len(ids) == 0 {
		return nil
	}
	return s.db.RenewClaims(ctx, ids, s.workerNames(), s.cfg.Lease)
}

// releaseClaims gives back, after a stop, the requests a worker claimed
// and did not finish; the context's cancellation does not stop it.
func (s *Service) releaseClaims(ctx context.Context, worker string, ids []int64) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.db.ReleaseClaims(ctx, worker, ids); err != nil {
		s.log.WarnContext(ctx, "the stopped run's requests wait for their lease", "requests", len(ids), "err", err)
	}
}

// workerKey carries, in a worker's context, the name its claims hold
// requests under (workerName).
type workerKey struct{}

// workerName is the name worker w of a run claims under: the process's
// (Config.Worker) and w, so that the fence of every commit (claimed_by)
// tells apart two workers of one process too — a worker whose lease ran
// out must not commit over the one that took its requests over.
func (s *Service) workerName(w int) string { return s.cfg.Worker + "#" + strconv.Itoa(w) }

// workerNames are the names every worker of a run claims under.
func (s *Service) workerNames() []string {
	out := make([]string, s.cfg.Workers)
	for w := range out {
		out[w] = s.workerName(w)
	}
	return out
}

// worker is the name the worker running in ctx claims under.
func (s *Service) worker(ctx context.Context) string {
	if w, ok := ctx.Value(workerKey{}).(string); ok {
		return w
	}
	return s.cfg.Worker
}

// commitBatch ends the batched steps of one claim in one transaction. If
// that transaction fails, nothing of it was applied: each request then
// runs again alone, so only a request whose own work fails is failed.
func (s *Service) commitBatch(ctx context.Context, items []store.BatchItem, reqs []*store.Request, retryStatus Status,
	step step, count func(processed, failed int)) error {
	// Not cancelled by a shutdown once begun: a COMMIT the server has
	// done while the stop cut the reading of its answer would leave the
	// run not knowing its deletes were done, and their requests held
	// until the lease ends instead of released by the run's end. The
	// shutdown waits for the run.
	res, err := s.db.CommitBatch(context.WithoutCancel(ctx), s.worker(ctx), items)
	if err == nil {
		for i, r := range res {
			if !r.Held || r.Remaining > 0 {
				count(0, 1) // another worker took it over, or it failed its check
				continue
			}
			count(1, 0)
			s.stepDone(ctx, reqs[i].ID, r.Update)
		}
		return s.failpoint("batch-after-commit")
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.log.WarnContext(ctx, "batch commit failed; the requests run again one by one", "requests", len(items), "err", err)
	ctx = withoutLookups(ctx)
	for _, req := range reqs {
		if _, serr := step(ctx, req, false); serr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := s.fail(ctx, req, retryStatus, serr); err != nil {
				return err
			}
			count(0, 1)
			continue
		}
		count(1, 0)
	}
	return nil
}

// done ends a step with upd and releases the request: in the batch when
// batch is set, else alone.
func (s *Service) done(ctx context.Context, req *store.Request, upd store.RequestUpdate, batch bool) (*store.BatchItem, error) {
	upd.Release = true
	return s.endStep(ctx, req, upd, batch)
}

// endStep ends a step with upd: in the batch when batch is set, else alone.
func (s *Service) endStep(ctx context.Context, req *store.Request, upd store.RequestUpdate, batch bool) (*store.BatchItem, error) {
	receipt, err := s.receiptFunc(ctx, req, upd, "")
	if err != nil {
		return nil, err
	}
	item := &store.BatchItem{ID: req.ID, Update: upd, Receipt: receipt}
	if batch {
		return item, nil
	}
	return nil, s.commitOne(ctx, req, *item)
}

func (s *Service) collectOne(ctx context.Context, req *store.Request, batch bool) (*store.BatchItem, error) {
	since := s.db.Now()
	found, total, err := s.lookup(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := s.failpoint("collect-lookup"); err != nil {
		return nil, err
	}
	audit := []string{"Processing request data....", "Request is being processed."}
	var counts []store.RequestData
	for _, t := range found {
		audit = append(audit, "Collecting data in "+t.schema.ID(), fmt.Sprintf("%d record(s) found in %s", len(t.ids), t.schema.ID()))
		if len(t.ids) > 0 {
			counts = append(counts, store.RequestData{Schema: t.schema.ID(), RecordCount: int64(len(t.ids))})
		}
	}
	linked, err := s.linkedNotOwned(ctx, found)
	if err != nil {
		return nil, err
	}
	audit = append(audit, coverageAudit(linked)...)
	if total == 0 {
		return s.done(ctx, req, store.RequestUpdate{Status: ptr(StatusErrorDataNotFound.stored()),
			Audit: append(audit, "Error data not found"), ClearDedupe: true}, batch)
	}
	// The file (for an access, or a delete that waits for its
	// confirmation), then one transaction: counts, file complete, status.
	var next store.RequestUpdate
	if req.Type == TypeAccess || req.ConfirmDeletePending {
		chunks, size, err := s.writeExport(ctx, req, req.ReconciliationValue, found, linked)
		if err != nil {
			return nil, err
		}
		if err := s.failpoint("collect-after-export"); err != nil {
			return nil, err
		}
		next.ExportChunks, next.ExportSize = chunks, size
		next.ErasedSince = s.erasedSince(since)
	}
	if req.Type != TypeAccess && req.ConfirmDeletePending {
		// What the operator will review is what the confirmed delete removes.
		next.Reviewed = reviewedRows(found)
	}
	next.Linked = linkedRows(linked)
	next.Counts = counts
	if next.Counts == nil {
		next.Counts = []store.RequestData{}
	}
	if req.Type == TypeDelete {
		// The delete is a phase of its own: the collect's failed
		// attempts are not counted against its attempts.
		next.RetryCount = ptr(0)
	}
	switch {
	case req.Type == TypeAccess:
		next.Status, next.ClearDedupe = ptr(StatusComplete.stored()), true
		next.Audit = append(audit, "Collecting data is finished. The data is ready to be downloaded.")
	case req.ConfirmDeletePending:
		deadline := s.cfg.Now().Add(s.cfg.ConfirmWindow)
		next.Status, next.ConfirmDeadline = ptr(StatusConfirmDeletePending.stored()), &deadline
		next.Audit = append(audit, "Collecting data is finished. Request needs to be confirmed before data is deleted",
			"Confirm before "+deadline.UTC().Format("2006-01-02 15:04:05Z")+".")
	default:
		next.Status = ptr(StatusDeletePending.stored())
		next.Audit = append(audit, "Collecting data is finished. The data will be deleted.")
	}
	return s.done(ctx, req, next, batch)
}

// DeleteRequestsData runs deletePrivacyRequestsData: for each request
// waiting for deletion (confirmed, or one-step) it deletes the subject's
// rows, children before parents, in bounded batches whose progress is
// recorded; then it looks again and records that nothing remains. A crash
// leaves the request deleteInProgress; after the lease it is taken back and
// the delete, idempotent, finishes.
func (s *Service) DeleteRequestsData(ctx context.Context) (Report, error) {
	rep := Report{Workflow: Delete}
	start := s.db.Now()
	if err := s.expireConfirmations(ctx); err != nil {
		return rep, err
	}
	s.refreshStatistics(ctx)
	from := []store.Status{StatusDeletePending.stored(), StatusDeleteInProgress.stored()}
	to := map[store.Status]store.Status{StatusDeletePending.stored(): StatusDeleteInProgress.stored()}
	// The deletes' receipts report what the collect recorded.
	prepare := func(ctx context.Context, reqs []store.Request) context.Context {
		return s.withRecords(s.withLookups(ctx, reqs), requestIDs(reqs))
	}
	rep, err := s.process(ctx, rep, from, to, StatusDeletePending, prepare, s.deleteOne)
	tables, requests, deleted := s.touched.take()
	return rep, s.purgeResidue(ctx, start, tables, requests, deleted, err, nil)
}

func (s *Service) deleteOne(ctx context.Context, req *store.Request, batch bool) (*store.BatchItem, error) {
	found, total, err := s.lookup(ctx, req)
	if err != nil {
		return nil, err
	}
	// recorded is what the step records of the subject's rows: a one-step
	// delete's found and its earlier attempts' (an id written again since
	// stays recorded, as deleted then, but is neither followed nor
	// deleted), a two-step delete's reviewed set and its earlier rounds'.
	var recorded []tableIDs
	if !req.ConfirmDeletePending {
		var earlier []tableIDs
		if found, earlier, total, err = s.withEarlierAttempt(ctx, req, found); err != nil {
			return nil, err
		}
		recorded = union(found, earlier)
	}
	if err := s.failpoint("delete-lookup"); err != nil {
		return nil, err
	}
	if batch && !req.ConfirmDeletePending && total <= s.cfg.DeleteBatch {
		// A one-step delete that fits one delete batch: its deletes, the
		// check and its completion join the worker's batch commit.
		return s.deleteItem(ctx, req, found, recorded)
	}
	// A one-step delete removes what the value matches now, as ACC. A
	// confirmed two-step delete removes exactly the reviewed set: a
	// reviewed row that no longer matches is deleted as reviewed, and a row
	// that matches but was not reviewed is kept for a new review.
	var (
		audit      []string
		unreviewed []tableIDs
		newRows    int
	)
	checked := found // the rows whose children the check looks for
	if req.ConfirmDeletePending {
		reviewed, deleted, err := s.recordedSets(ctx, req, found)
		if err != nil {
			return nil, err
		}
		// The rows earlier rounds deleted (the request went back to
		// review) that are still gone.
		gone, err := s.stillGone(ctx, deleted)
		if err != nil {
			return nil, err
		}
		// What the reviewed rows, and those gone, own now counts as
		// matching too: a child added to a reviewed recipient after the
		// review (whose e-mail may have changed since), or written for a
		// row an earlier round or attempt deleted, is not in the set, and
		// must go to a new review, not be left behind nor deleted unseen.
		owned, err := s.ownedBy(ctx, found, union(reviewed, gone))
		if err != nil {
			return nil, err
		}
		unreviewed, newRows = minus(union(found, owned), union(reviewed, gone))
		checked = union(reviewed, gone)
		recorded = union(reviewed, deleted)
		if stale, n := minus(reviewed, found); n > 0 {
			// Rows an earlier attempt already deleted are not stale: count
			// only those still there.
			var hops []store.Hop
			for _, t := range stale {
				if len(t.ids) > 0 {
					hops = append(hops, store.Hop{Table: t.schema.Data.Table, Column: "id", Parents: t.ids})
				}
			}
			left, err := s.db.CountHops(ctx, hops)
			if err != nil {
				return nil, err
			}
			if left > 0 {
				audit = append(audit, fmt.Sprintf("%d reviewed record(s) no longer matched the value and were deleted as reviewed", left))
			}
		}
		found = reviewed
	}
	// Children before parents; tables grouped into transactions of at
	// most DeleteBatch rows, each recording its own progress: a two-step
	// delete marks its reviewed rows deleted with their deletes. A one-step
	// delete records its subject's rows with its first batch: if the
	// attempt does not finish (a crash, a failure before the check), its
	// retry follows them to rows added meanwhile, the value no longer
	// leading to them once the recipient is gone (withEarlierAttempt).
	//
	// A foreign key into the subject's tables (a DBA's, from a table
	// outside the data model) may refuse one of the deletes, at every
	// attempt: the batches before it would stay committed, the subject
	// half erased for good. Such a subject's deletes are one transaction,
	// which the refusal rolls back whole.
	limit := s.cfg.DeleteBatch
	if n := rowCount(found); n > limit {
		held, err := s.db.HasForeignKeysInto(ctx, tablesOf(found))
		if err != nil {
			return nil, err
		}
		if held {
			limit = n
		}
	}
	var parts []store.DeletePart
	rows := 0
	var record []store.ReviewedRow
	if !req.ConfirmDeletePending {
		record = reviewedRows(recorded)
	}
	flush := func() error {
		if len(parts) == 0 {
			return nil
		}
		if err := s.db.DeleteOwned(ctx, req.ID, s.worker(ctx), parts, s.cfg.Lease, record, req.ConfirmDeletePending); err != nil {
			return err
		}
		record = nil
		s.cfg.Metrics.RowsDeleted(rows)
		s.touched.add(req.ID, parts)
		parts, rows = nil, 0
		if err := s.failpoint("delete-after-batch"); err != nil {
			return err
		}
		return nil
	}
	for i := len(found) - 1; i >= 0; i-- {
		t := found[i]
		for start := 0; start < len(t.ids); start += limit {
			end := min(start+limit, len(t.ids))
			if rows+end-start > limit {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			parts = append(parts, t.deletePart(t.ids[start:end]))
			rows += end - start
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if newRows > 0 {
		return nil, s.reviewAgain(ctx, req, unreviewed, newRows, recorded, audit)
	}
	check, err := s.remainingCheck(ctx, req, checked)
	if err != nil {
		return nil, err
	}
	remaining, err := s.db.CountRemaining(ctx, check)
	if err != nil {
		return nil, err
	}
	if remaining > 0 {
		if req.ConfirmDeletePending { // its reviewed set is recorded already
			return nil, errRemaining(remaining, nil)
		}
		return nil, errRemaining(remaining, recorded)
	}
	return s.endStep(ctx, req, s.deletedUpdate(req, found, recorded, audit), false)
}

// remainingError says that rows of the subject were left after an
// attempt's deletes: rows added while it ran, owned by rows it found — and
// perhaps deleted, a recipient gone before the delivery log written for it
// meanwhile. found, recorded with the failed attempt (failUpdate), lets the
// retry reach them (withEarlierAttempt): the value no longer leads to them.
type remainingError struct {
	error
	found []tableIDs
}

func (e *remainingError) Unwrap() error { return e.error }

func errRemaining(n int64, found []tableIDs) error {
	return &remainingError{apperr.Errorf(apperr.Conflict, "%d record(s) of the subject remain after the delete.", n), found}
}

// withEarlierAttempt completes a one-step delete's subject with every row
// owned now by the rows its failed attempts found and deleted
// (remainingError): rows owned by rows already gone are reached through
// their ids. A recorded id that names a row again (written since with that
// id, by a client that chose it) is not followed: that row is not the
// subject's.
func (s *Service) withEarlierAttempt(ctx context.Context, req *store.Request, found []tableIDs) (_, earlier []tableIDs, total int, err error) {
	if earlier, _, err = s.recordedSets(ctx, req, found); err != nil {
		return nil, nil, 0, err
	}
	gone, err := s.stillGone(ctx, earlier)
	if err != nil {
		return nil, nil, 0, err
	}
	owned, err := s.ownedBy(ctx, found, gone)
	if err != nil {
		return nil, nil, 0, err
	}
	found = union(found, owned)
	return found, earlier, rowCount(found), nil
}

// stillGone returns the rows of recorded that no longer exist. A recorded
// id that names a row again (written since with that id, by a client that
// chose it) is left out: that row is not the subject's.
func (s *Service) stillGone(ctx context.Context, recorded []tableIDs) ([]tableIDs, error) {
	out := make([]tableIDs, len(recorded))
	var hops []store.Hop
	for i, t := range recorded {
		out[i].schema = t.schema
		if len(t.ids) > 0 {
			hops = append(hops, store.Hop{Tag: i, Table: t.schema.Data.Table, Column: "id", Parents: t.ids})
		}
	}
	if len(hops) == 0 {
		return out, nil
	}
	again, err := s.db.FindHops(ctx, hops)
	if err != nil {
		return nil, err
	}
	for i, t := range recorded {
		exists := map[int64]bool{}
		for _, r := range again[i] {
			exists[r.ID] = true
		}
		for _, id := range t.ids {
			if !exists[id] {
				out[i].ids = append(out[i].ids, id)
			}
		}
	}
	return out, nil
}

// ownedBy returns rows, in the tables of like (the owned order), with
// every row they own now: rows of any owned schema, gone or not, lead to
// the rows that refer to them through the own links.
func (s *Service) ownedBy(ctx context.Context, like, rows []tableIDs) ([]tableIDs, error) {
	seeds := map[string][]int64{}
	for _, t := range rows {
		if len(t.ids) > 0 {
			seeds[t.schema.ID()] = t.ids
		}
	}
	if len(seeds) == 0 {
		out := make([]tableIDs, len(like))
		for i, t := range like {
			out[i].schema = t.schema
		}
		return out, nil
	}
	g, err := s.graphFor(like[0].schema.ID())
	if err != nil {
		return nil, err
	}
	owned, _, err := s.traverse(ctx, g, []map[string][]int64{seeds})
	if err != nil {
		return nil, err
	}
	return owned[0], nil
}

// tablesOf returns the tables found has rows in.
func tablesOf(found []tableIDs) []string {
	var out []string
	for _, t := range found {
		if len(t.ids) > 0 {
			out = append(out, t.schema.Data.Table)
		}
	}
	return out
}

// rowCount is how many rows found holds.
func rowCount(found []tableIDs) int {
	n := 0
	for _, t := range found {
		n += len(t.ids)
	}
	return n
}

// deletedUpdate ends a delete step whose check found nothing left. The
// request does not complete yet: the deleted rows' bytes are still in the
// database's files. It stays deleteInProgress, held by this worker, until
// the residue purge at the run's end; finishDeleted then completes it with
// its receipt (or releases it, if the purge did not finish, for the next
// run). A crash in between leaves it deleteInProgress: after the lease the
// next run takes it back, the delete finds nothing, and the purge follows.
//
// A two-step delete's review file goes with the delete: the file and its
// key are deleted in the same commit, and their tables purged with the
// rest, so that nothing of the subject is left once the request is
// complete (ACC keeps the file until the cleanup, 90 days later).
func (s *Service) deletedUpdate(req *store.Request, found, recorded []tableIDs, audit []string) store.RequestUpdate {
	// The subject's other files (an earlier access file, another delete's
	// reviewed file) are copies of the same rows: they go too.
	upd := store.RequestUpdate{Status: ptr(StatusDeleteInProgress.stored()), ExtendLease: s.cfg.Lease, DropSubjectFiles: true,
		Audit: append(audit, fmt.Sprintf("Checked: no record of the subject remains in the %d table(s) searched.", len(found)))}
	// Recorded with the deletes: a run that ends before its purge leaves
	// the request deleteInProgress, and the next run follows the rows
	// still gone to rows written for them since (withEarlierAttempt,
	// stillGone). A two-step delete's reviewed rows are marked deleted: an
	// id written again since names another row, which the next run must
	// not delete as reviewed.
	if req.ConfirmDeletePending {
		upd.Reviewed = deletedRows(recorded)
		upd.DropExport = true
		upd.Audit = append(upd.Audit, "The reviewed file and its key are destroyed.")
	} else {
		upd.Reviewed = reviewedRows(recorded)
	}
	upd.Audit = append(upd.Audit, "Records deleted; the request completes after the residue purge at the end of the run.")
	return upd
}

// awaitsPurge reports whether a step ended with deletedUpdate.
func awaitsPurge(upd store.RequestUpdate) bool {
	return upd.Status != nil && *upd.Status == StatusDeleteInProgress.stored() && !upd.Release
}

// deleteItem is a one-step delete's share of a batch commit: its rows,
// children before parents, then the check that nothing of the subject
// remains, then deletedUpdate (the request completes after the run's
// residue purge) — or, if something remains, the failed attempt, as the
// step alone would record it.
func (s *Service) deleteItem(ctx context.Context, req *store.Request, found, recorded []tableIDs) (*store.BatchItem, error) {
	var parts []store.DeletePart
	for i := len(found) - 1; i >= 0; i-- {
		if t := found[i]; len(t.ids) > 0 {
			parts = append(parts, t.deletePart(t.ids))
		}
	}
	check, err := s.remainingCheck(ctx, req, found)
	if err != nil {
		return nil, err
	}
	item, err := s.endStep(ctx, req, s.deletedUpdate(req, found, recorded, nil), true)
	if err != nil {
		return nil, err
	}
	item.Deletes, item.Check = parts, check
	item.Remaining = func(n int64) store.RequestUpdate {
		upd := s.failUpdate(ctx, req, StatusDeletePending, errRemaining(n, recorded))
		upd.Release = true
		return upd
	}
	// The run's VACUUM covers these tables (a batch that rolls back only
	// adds a vacuum of a table nothing was deleted from).
	s.touched.add(req.ID, parts)
	return item, nil
}

// reviewAgain returns a two-step delete to confirmDeletePending with the
// rows that matched at delete time but were not reviewed: they become the
// new reviewed set, with a new file of just them and a new deadline. The
// rows its rounds deleted stay recorded, marked deleted: the next round
// follows them to rows written for them since.
func (s *Service) reviewAgain(ctx context.Context, req *store.Request, rows []tableIDs, n int, deleted []tableIDs, audit []string) error {
	since := s.db.Now() // the rows were looked up just before: a delete done since may have erased them
	chunks, size, err := s.writeExport(ctx, req, req.ReconciliationValue, rows, nil)
	if err != nil {
		return err
	}
	counts := []store.RequestData{}
	for _, t := range rows {
		if len(t.ids) > 0 {
			counts = append(counts, store.RequestData{Schema: t.schema.ID(), RecordCount: int64(len(t.ids))})
		}
	}
	deadline := s.cfg.Now().Add(s.cfg.ConfirmWindow)
	// The next round's delete has attempts of its own.
	return s.finish(ctx, req, store.RequestUpdate{Status: ptr(StatusConfirmDeletePending.stored()), ConfirmDeadline: &deadline, RetryCount: ptr(0),
		ExportChunks: chunks, ExportSize: size, ErasedSince: s.erasedSince(since), Counts: counts, Reviewed: append(reviewedRows(rows), deletedRows(deleted)...),
		Audit: append(audit, fmt.Sprintf("%d record(s) matched the value but were not reviewed; they were not deleted.", n),
			"Request needs to be confirmed before data is deleted",
			"Confirm before "+deadline.UTC().Format("2006-01-02 15:04:05Z")+".")})
}

// erasedSince is the check a file's completion makes (store.ErasedSince):
// a delete of the same subject that deleted its rows (deleteInProgress,
// then complete) since the lookup that began at since destroys the file
// instead, as it destroys the files it finds done (DropSubjectFiles).
func (s *Service) erasedSince(since time.Time) *store.ErasedSince {
	return &store.ErasedSince{Since: since, DeleteType: TypeDelete,
		Done: []store.Status{StatusDeleteInProgress.stored(), StatusComplete.stored()}}
}

// reviewedRows is the reviewed set of found, table by table.
func reviewedRows(found []tableIDs) []store.ReviewedRow {
	out := []store.ReviewedRow{}
	for _, t := range found {
		for _, id := range t.ids {
			out = append(out, store.ReviewedRow{Schema: t.schema.ID(), RowID: id})
		}
	}
	return out
}

// deletedRows is found as rows an earlier round deleted.
func deletedRows(found []tableIDs) []store.ReviewedRow {
	out := reviewedRows(found)
	for i := range out {
		out[i].Deleted = true
	}
	return out
}

// recordedSets reads a request's recorded rows into the tables of like
// (the owned order, parents first): its reviewed set (a one-step delete's:
// the rows its attempts found), and the rows earlier rounds of a two-step
// delete deleted.
func (s *Service) recordedSets(ctx context.Context, req *store.Request, like []tableIDs) (reviewed, deleted []tableIDs, err error) {
	rows, err := s.recordedRows(ctx, req.ID)
	if err != nil {
		return nil, nil, err
	}
	byID := [2]map[string][]int64{{}, {}}
	for _, r := range rows {
		k := 0
		if r.Deleted {
			k = 1
		}
		byID[k][r.Schema] = append(byID[k][r.Schema], r.RowID)
	}
	var sets [2][]tableIDs
	for k, m := range byID {
		sets[k] = make([]tableIDs, len(like))
		for i, t := range like {
			sets[k][i] = tableIDs{t.schema, uniqueSorted(m[t.schema.ID()])}
			delete(m, t.schema.ID())
		}
		// Rows of a schema the data model no longer owns from the
		// subject's: a reviewed set cannot be deleted as reviewed; the
		// rows an attempt or a round deleted only lead to others, and
		// those are no longer the subject's.
		for sc := range m {
			if k == 0 && req.ConfirmDeletePending {
				return nil, nil, apperr.Errorf(apperr.Invalid, "The reviewed records of %s are no longer owned by the subject's schema.", sc)
			}
		}
	}
	return sets[0], sets[1], nil
}

// minus returns the ids of a not in b, table by table, and how many.
// union returns the rows of a or b, table by table (both in the owned
// order).
func union(a, b []tableIDs) []tableIDs {
	out := make([]tableIDs, len(a))
	for i, t := range a {
		out[i] = tableIDs{t.schema, uniqueSorted(append(append([]int64(nil), t.ids...), b[i].ids...))}
	}
	return out
}

func minus(a, b []tableIDs) ([]tableIDs, int) {
	out := make([]tableIDs, len(a))
	n := 0
	for i, t := range a {
		in := make(map[int64]bool, len(b[i].ids))
		for _, id := range b[i].ids {
			in[id] = true
		}
		out[i].schema = t.schema
		for _, id := range t.ids {
			if !in[id] {
				out[i].ids = append(out[i].ids, id)
			}
		}
		n += len(out[i].ids)
	}
	return out, n
}

// purgeCutoff is what a cleanup run at now destroys: the data whose
// retention ends before the UTC date of the next scheduled run (without a
// schedule, before tomorrow's). Data is so kept until the date its
// receipt names and never into the next one, at most a day less than
// Retention where runs are daily; where the schedule's local time skips a
// UTC date (a run near midnight UTC across a change of the clocks), the
// run before it destroys that date's data.
func (s *Service) purgeCutoff(now time.Time) time.Time {
	next := now.UTC().AddDate(0, 0, 1)
	if s.cfg.Schedule != nil {
		next = s.cfg.Schedule.Next(now).UTC() // in now's zone, local as RunSchedule's
	}
	y, m, d := next.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Add(-s.cfg.Retention)
}

// CleanupRequests runs cleanupPrivacyRequests: personal data whose
// retention period (90 days) ends today or ended before — the file, its
// key, the per-table counts and the reconciliation value — is destroyed,
// and the run ends with the residue purge of the tables it changed, as a
// delete run does. The request row keeps its status and audit. Only
// finished requests are purged: the run first ends the two-step deletes
// whose confirmation window has closed, as the other runs do, each with
// its receipt when an earlier round deleted rows, so that their files go
// with this run.
//
// The retention ends on a date (UTC), the one a request's receipt names
// (file_purged_on): a run on that date or before destroys the data, not
// the first run after the very hour, which the daily schedule (01:00)
// would reach only the next day (purgeCutoff).
func (s *Service) CleanupRequests(ctx context.Context) (Report, error) {
	rep := Report{Workflow: Cleanup}
	start := s.db.Now()
	if err := s.expireConfirmations(ctx); err != nil {
		return rep, err
	}
	now, err := s.purgeClock(ctx)
	if err != nil {
		return rep, err
	}
	before := s.purgeCutoff(now)
	terminal := []store.Status{StatusComplete.stored(), StatusError.stored(), StatusErrorDataNotFound.stored()}
	purged, err := s.purgeRequests(ctx, &rep, before, terminal)
	var tables []string
	if len(purged) > 0 {
		// The blanked values and the deleted wrapped keys are residue too.
		tables = store.PurgedRequestTables
	}
	// Only its own tables' marks: a delete run's (the data model's, and
	// those outside it) are left to the delete run that completes its
	// requests, which finds and names what they still hold (J159).
	return rep, s.purgeResidue(ctx, start, tables, purged, nil, err, append(slices.Clone(store.PurgedRequestTables), store.ExportTables...))
}

// purgeClock is the time the cleanup purges by: the earlier of the
// service's clock and the database's, so that neither clock jumped ahead
// (a day, by a broken time source) destroys data early (security-bar
// #105). A difference over a minute is logged.
func (s *Service) purgeClock(ctx context.Context) (time.Time, error) {
	now := s.cfg.Now().UTC()
	db, err := s.db.DatabaseNow(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if d := now.Sub(db); d > time.Minute || d < -time.Minute {
		s.log.WarnContext(ctx, "the service's clock and the database's differ: the cleanup purges by the earlier",
			"service_ahead_by", d.Round(time.Second).String())
	}
	if db.Before(now) {
		return db, nil
	}
	return now, nil
}

func (s *Service) purgeRequests(ctx context.Context, rep *Report, before time.Time, terminal []store.Status) (purged []int64, err error) {
	for {
		ids, err := s.db.FindPurgeable(ctx, before, terminal, 100)
		if err != nil || len(ids) == 0 {
			return purged, err
		}
		for _, id := range ids {
			done, err := s.db.PurgeRequest(ctx, id, terminal, fmt.Sprintf("Collected data deleted after the %d-day retention period.", int(s.cfg.Retention/(24*time.Hour))))
			if err != nil {
				return purged, err
			}
			if !done {
				continue // purged meanwhile by another run, or no longer finished
			}
			purged = append(purged, id)
			rep.Processed++
			s.progress(*rep)
			if err := s.failpoint("cleanup-after-request"); err != nil {
				return purged, err
			}
		}
	}
}

// progress tells cfg.Progress how far a workflow is.
func (s *Service) progress(rep Report) {
	if s.cfg.Progress != nil {
		s.cfg.Progress(rep)
	}
}

func (s *Service) expireConfirmations(ctx context.Context) error {
	days := int(s.cfg.ConfirmWindow / (24 * time.Hour))
	n, err := s.db.ExpireConfirmations(ctx, StatusConfirmDeletePending.stored(), StatusError.stored(),
		fmt.Sprintf("Error: the delete was not confirmed within %d days; nothing was deleted.", days))
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.InfoContext(ctx, "unconfirmed deletes expired", "count", n)
	}
	// A request sent back to review after a round that deleted rows: its
	// delete had started, and it ends with a receipt that says so.
	for {
		reqs, err := s.db.ClaimExpiredRounds(ctx, StatusConfirmDeletePending.stored(), s.cfg.Worker, s.cfg.Lease)
		if err != nil || len(reqs) == 0 {
			return err
		}
		for i := range reqs {
			reqs[i].Status = StatusDeleteInProgress.stored() // for its receipt: the delete started
			// Its reviewed file goes, as a confirmed delete's that ends in
			// error (failUpdate): nobody will confirm it, and the records
			// it holds were written for those the earlier rounds deleted.
			// A new request collects what is left.
			upd := store.RequestUpdate{Status: ptr(StatusError.stored()), ClearDedupe: true, DropExport: true, Audit: []string{fmt.Sprintf(
				"Error: the records that matched after the review were not confirmed within %d days and were not deleted; the records confirmed before were deleted.", days),
				"The reviewed file and its key are destroyed."}}
			if err := s.finish(ctx, &reqs[i], upd); err != nil {
				return err
			}
		}
	}
}

// errLostClaim: another worker took the request over.
var errLostClaim = store.ErrLostClaim

// finish applies the final update of a step and releases the claim, in
// one transaction with the request's receipt when it is due.
func (s *Service) finish(ctx context.Context, req *store.Request, upd store.RequestUpdate) error {
	_, err := s.done(ctx, req, upd, false)
	return err
}

// commitOne applies one request's batch item alone.
func (s *Service) commitOne(ctx context.Context, req *store.Request, item store.BatchItem) error {
	res, err := s.db.CommitBatch(context.WithoutCancel(ctx), s.worker(ctx), []store.BatchItem{item}) // as commitBatch
	if err != nil {
		return err
	}
	if !res[0].Held {
		return errLostClaim
	}
	s.stepDone(ctx, req.ID, res[0].Update)
	return nil
}

// stepDone follows a committed step: a delete whose rows are gone waits
// for the run's residue purge, which also covers a dropped file's tables.
func (s *Service) stepDone(ctx context.Context, id int64, upd store.RequestUpdate) {
	if awaitsPurge(upd) {
		s.touched.deleted(id)
	}
	if upd.DropExport || upd.DropSubjectFiles {
		s.touched.addTables(store.ExportTables...)
	}
	s.log.InfoContext(ctx, "privacy request step done", "id", id, "status", Status(*upd.Status).String())
}

// fail records a failed attempt: back to retryStatus after a back-off, or
// Error once the attempts are spent. The audit gets the caller-safe reason
// only; the log gets the cause.
func (s *Service) fail(ctx context.Context, req *store.Request, retryStatus Status, cause error) error {
	if errors.Is(cause, errLostClaim) {
		return nil // the other worker owns it now
	}
	return s.finish(ctx, req, s.failUpdate(ctx, req, retryStatus, cause))
}

// failUpdate is the update that records a failed attempt.
func (s *Service) failUpdate(ctx context.Context, req *store.Request, retryStatus Status, cause error) store.RequestUpdate {
	attempt := req.RetryCount + 1
	reason := apperr.MessageOf(cause)
	s.log.WarnContext(ctx, "privacy request attempt failed", "id", req.ID, "attempt", attempt, "err", cause)
	upd := store.RequestUpdate{RetryCount: &attempt}
	if re := (*remainingError)(nil); errors.As(cause, &re) && re.found != nil {
		upd.Reviewed = reviewedRows(re.found)
	}
	if attempt >= s.cfg.MaxAttempts {
		upd.Status = ptr(StatusError.stored())
		upd.ClearDedupe = true
		upd.Audit = []string{fmt.Sprintf("Error: attempt %d failed (%s); no more retries.", attempt, reason)}
		if req.Type == TypeDelete && req.ConfirmDeletePending && retryStatus == StatusDeletePending {
			// A confirmed delete that ends here may have deleted rows: its
			// reviewed file would go on serving them (a completed delete
			// destroys it too). A new request collects what is left.
			upd.DropExport = true
			upd.Audit = append(upd.Audit, "The reviewed file and its key are destroyed.")
		}
	} else {
		next := s.cfg.Now().Add(time.Duration(1<<min(attempt-1, 10)) * s.cfg.RetryDelay)
		upd.Status = ptr(retryStatus.stored())
		upd.NextAttemptAt = &next
		upd.Audit = []string{fmt.Sprintf("Attempt %d failed (%s); retrying after %s.", attempt, reason, next.UTC().Format("2006-01-02 15:04:05Z"))}
	}
	return upd
}

// tableIDs are the ids of the subject's rows in one table.
type tableIDs struct {
	schema *schemas.Schema
	ids    []int64
}

// deletePart is the delete of ids, rows of t's table, with its audit line
// ("3 record(s) deleted in nms:broadLogRcp").
func (t tableIDs) deletePart(ids []int64) store.DeletePart {
	schema := t.schema.ID()
	return store.DeletePart{Table: t.schema.Data.Table, Schema: schema, IDs: ids,
		AuditLine: func(n int64) string { return fmt.Sprintf("%d record(s) deleted in %s", n, schema) }}
}

// graph is the owned part of the data model around a target schema, cut
// into levels: each schema's parents are all in earlier levels, so one
// statement per level finds the subject's rows.
type graph struct {
	owned  *schemas.Owned
	levels [][]*schemas.Schema // levels[0] is the root alone
}

// graphFor computes (once per target schema) the traversal graph.
func (s *Service) graphFor(target string) (*graph, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.graphs[target]; ok {
		return g, nil
	}
	owned, err := s.registry.OwnedBy(target)
	if err != nil {
		return nil, apperr.Wrap(apperr.Invalid, err, "The data model around "+target+" is inconsistent.")
	}
	level := map[string]int{owned.Order[0].ID(): 0}
	g := &graph{owned: owned, levels: [][]*schemas.Schema{{owned.Order[0]}}}
	for _, sc := range owned.Order[1:] {
		l := 0
		for _, link := range owned.Parents[sc] {
			if pl, ok := level[link.Target]; ok && pl+1 > l {
				l = pl + 1
			}
		}
		level[sc.ID()] = l
		for len(g.levels) <= l {
			g.levels = append(g.levels, nil)
		}
		g.levels[l] = append(g.levels[l], sc)
	}
	s.graphs[target] = g
	return g, nil
}

// namespaceByID reads a namespace. It is not cached beyond one claim: its
// match rule may change (namespace update), and a request must be looked
// up under the rule the stored data was rewritten to.
func (s *Service) namespaceByID(ctx context.Context, id int64) (*Namespace, error) {
	cache, _ := ctx.Value(nsCacheKey{}).(*nsCache)
	if cache != nil {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		if ns, ok := cache.byID[id]; ok {
			return ns, nil
		}
	}
	row, err := s.db.FindNamespaceByID(ctx, id)
	if err != nil {
		return nil, err
	}
	ns := namespaceOf(row)
	if cache != nil {
		cache.byID[id] = ns
	}
	return ns, nil
}

// nsCache keeps the namespaces read while one claim is worked on (a few
// seconds at most), so that its requests do not read theirs three times.
type nsCache struct {
	mu   sync.Mutex
	byID map[int64]*Namespace
}

type nsCacheKey struct{}

func withNamespaceCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, nsCacheKey{}, &nsCache{byID: map[int64]*Namespace{}})
}

// lookup finds the subject of a request: the rows of the namespace's target
// schema whose reconciliation field equals the value exactly, then every
// row owned by them, level by level through the own links — indexed,
// parameterised statements, so the cost follows the subject's rows, not the
// table sizes. A self link (replies of notes) is followed to its fixpoint
// within its level. The result is in the owned order (parents first). A
// request of a claim was looked up with the claim's others (withLookups).
func (s *Service) lookup(ctx context.Context, req *store.Request) ([]tableIDs, int, error) {
	if claimed, _ := ctx.Value(lookupsKey{}).(map[int64]lookedUp); claimed != nil {
		if l, ok := claimed[req.ID]; ok {
			return l.found, l.total, nil
		}
	}
	l, errs := s.lookupAll(ctx, []*store.Request{req})
	return l[0].found, l[0].total, errs[0]
}

// lookedUp is a request's subject: its rows in the owned order, and how
// many.
type lookedUp struct {
	found []tableIDs
	total int
}

type lookupsKey struct{}

// withLookups looks up the subjects of a claim's requests together and
// keeps them for the claim's steps: per namespace, one statement for the
// root rows of every value, one check of the namespace and one statement
// per level of the data model, where a request alone costs as many. A
// request the claim's lookup could not find the subject of is looked up
// alone by its step, which meets and records the error.
func (s *Service) withLookups(ctx context.Context, reqs []store.Request) context.Context {
	ptrs := make([]*store.Request, len(reqs))
	for i := range reqs {
		ptrs[i] = &reqs[i]
	}
	found, errs := s.lookupAll(ctx, ptrs)
	claimed := make(map[int64]lookedUp, len(reqs))
	for i, req := range ptrs {
		if errs[i] == nil {
			claimed[req.ID] = found[i]
		}
	}
	return context.WithValue(ctx, lookupsKey{}, claimed)
}

// withoutLookups makes the steps look up again: a request run again alone
// after its batch failed is looked up afresh.
func withoutLookups(ctx context.Context) context.Context {
	return context.WithValue(ctx, lookupsKey{}, map[int64]lookedUp(nil))
}

// lookupAll finds the subjects of reqs (lookup), those of one namespace
// together; an error is the request's own (its value, its namespace) or
// that of its namespace's statements.
func (s *Service) lookupAll(ctx context.Context, reqs []*store.Request) ([]lookedUp, []error) {
	out, errs := make([]lookedUp, len(reqs)), make([]error, len(reqs))
	type group struct {
		ns      *Namespace
		column  string
		g       *graph
		values  []string
		members []int // the requests' indexes in reqs
	}
	var groups []*group
	byNS := map[int64]*group{}
	for i, req := range reqs {
		ns, column, g, value, err := s.subject(ctx, req)
		if err != nil {
			errs[i] = err
			continue
		}
		gr := byNS[ns.ID]
		if gr == nil {
			gr = &group{ns: ns, column: column, g: g}
			byNS[ns.ID] = gr
			groups = append(groups, gr)
		}
		gr.values, gr.members = append(gr.values, value), append(gr.members, i)
	}
	for _, gr := range groups {
		found, totals, err := s.lookupGroup(ctx, gr.ns, gr.column, gr.g, gr.values)
		for j, i := range gr.members {
			if err != nil {
				errs[i] = err
				continue
			}
			out[i] = lookedUp{found[j], totals[j]}
		}
	}
	return out, errs
}

// subject is what a request's lookup matches: the column of its
// namespace's target schema, the data model around it, and the value in the
// namespace's canonical form.
func (s *Service) subject(ctx context.Context, req *store.Request) (ns *Namespace, column string, g *graph, value string, err error) {
	if req.ReconciliationValue == "" {
		return nil, "", nil, "", apperr.Errorf(apperr.Invalid, "The request has no reconciliation value.")
	}
	if ns, err = s.namespaceByID(ctx, req.NamespaceID); err != nil {
		return nil, "", nil, "", err
	}
	if ns.Canonical < canon.Version {
		// A namespace update's rewrite of the stored field is under way:
		// a lookup now would match some rows under the old form and miss
		// the others. The step is retried.
		return nil, "", nil, "", store.ErrNamespaceRewritten
	}
	attr, err := s.reconciliationAttribute(ns.TargetSchema, ns.ReconciliationKey)
	if err != nil {
		return nil, "", nil, "", err
	}
	if g, err = s.graphFor(ns.TargetSchema); err != nil {
		return nil, "", nil, "", err
	}
	if value, err = matchValue(ns, req.ReconciliationValue); err != nil {
		return nil, "", nil, "", err
	}
	return ns, attr.SQLName, g, value, nil
}

// lookupGroup finds the subjects of values, all of namespace ns.
func (s *Service) lookupGroup(ctx context.Context, ns *Namespace, column string, g *graph, values []string) ([][]tableIDs, []int, error) {
	byValue, err := s.db.FindIDsByValue(ctx, g.owned.Order[0].Data.Table, column, values)
	if err != nil {
		return nil, nil, err
	}
	// The namespace is still what the lookup matched under, so no
	// update's rewrite ran beside it (a rewrite starts only after its
	// update, which this would see, commits).
	if err := s.db.CheckNamespace(ctx, ns.row()); err != nil {
		return nil, nil, err
	}
	seeds := make([]map[string][]int64, len(values))
	for j, v := range values {
		seeds[j] = map[string][]int64{g.owned.Order[0].ID(): byValue[v]}
	}
	return s.traverse(ctx, g, seeds)
}

// traverse completes sets of rows (one per subject: ids by schema, rows
// of the target schema or, for a retried delete, of any owned schema) with
// every row they own, level by level through the own links and each
// table's self links — one statement per level for all the subjects — and
// returns each subject's rows in the owned order (parents first) with
// their total.
func (s *Service) traverse(ctx context.Context, g *graph, seeds []map[string][]int64) ([][]tableIDs, []int, error) {
	root := g.owned.Order[0]
	byID := make([]map[string][]int64, len(seeds))
	for r, seed := range seeds {
		ids, err := s.followSelf(ctx, g, root, uniqueSorted(slices.Clone(seed[root.ID()])))
		if err != nil {
			return nil, nil, err
		}
		byID[r] = map[string][]int64{root.ID(): ids}
	}
	for _, level := range g.levels[1:] {
		// A hop per link into the level, from the parents of every
		// subject; arms says whose rows each one finds.
		type arm struct {
			schema int // index in level
			target string
		}
		var (
			hops []store.Hop
			arms []arm
		)
		for i, sc := range level {
			for _, l := range g.owned.Parents[sc] {
				var parents []int64
				for _, m := range byID {
					parents = append(parents, m[l.Target]...)
				}
				if len(parents) > 0 {
					hops = append(hops, store.Hop{Tag: len(hops), Table: sc.Data.Table, Column: l.SQLName, Parents: uniqueSorted(parents)})
					arms = append(arms, arm{i, l.Target})
				}
			}
		}
		found, err := s.db.FindHops(ctx, hops)
		if err != nil {
			return nil, nil, err
		}
		for r, m := range byID {
			rows := make([][]int64, len(level))
			for tag, a := range arms {
				parents := m[a.target] // sorted
				for _, row := range found[tag] {
					if _, mine := slices.BinarySearch(parents, row.Parent); mine {
						rows[a.schema] = append(rows[a.schema], row.ID)
					}
				}
			}
			for i, sc := range level {
				rows[i] = append(rows[i], seeds[r][sc.ID()]...)
				if m[sc.ID()], err = s.followSelf(ctx, g, sc, uniqueSorted(rows[i])); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	out, totals := make([][]tableIDs, len(seeds)), make([]int, len(seeds))
	for r, m := range byID {
		out[r] = make([]tableIDs, 0, len(g.owned.Order))
		for _, sc := range g.owned.Order {
			out[r] = append(out[r], tableIDs{sc, m[sc.ID()]})
		}
		totals[r] = rowCount(out[r])
	}
	return out, totals, nil
}

// followSelf completes ids, sorted rows of sc, with the rows they own
// through sc's self links (a reply owned by the note it answers), round
// after round until a round finds nothing new: every depth is reached, and
// a cycle ends because a row already seen is not followed again. The
// result is sorted.
func (s *Service) followSelf(ctx context.Context, g *graph, sc *schemas.Schema, ids []int64) ([]int64, error) {
	var self []*schemas.Link
	for _, l := range g.owned.Parents[sc] {
		if l.Target == sc.ID() {
			self = append(self, l)
		}
	}
	if len(self) == 0 {
		return ids, nil
	}
	seen := make(map[int64]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	for frontier := ids; len(frontier) > 0; {
		hops := make([]store.Hop, len(self))
		for i, l := range self {
			hops[i] = store.Hop{Table: sc.Data.Table, Column: l.SQLName, Parents: frontier}
		}
		found, err := s.db.FindHops(ctx, hops)
		if err != nil {
			return nil, err
		}
		frontier = nil
		for _, row := range found[0] {
			if !seen[row.ID] {
				seen[row.ID] = true
				frontier = append(frontier, row.ID)
			}
		}
		ids = append(ids, frontier...)
	}
	return uniqueSorted(ids), nil
}

// remainingCheck says what must be gone after a subject's delete: the
// rows found before, any row owned by them that appeared meanwhile, and the
// root rows that still match the value.
func (s *Service) remainingCheck(ctx context.Context, req *store.Request, found []tableIDs) (*store.RemainCheck, error) {
	ns, column, g, value, err := s.subject(ctx, req)
	if err != nil {
		return nil, err
	}
	byID := map[string][]int64{}
	var hops []store.Hop
	for _, t := range found {
		byID[t.schema.ID()] = t.ids
		if len(t.ids) > 0 {
			hops = append(hops, store.Hop{Table: t.schema.Data.Table, Column: "id", Parents: t.ids})
		}
	}
	for _, t := range found { // the subject's table too: its self links
		for _, l := range g.owned.Parents[t.schema] {
			if parents := byID[l.Target]; len(parents) > 0 {
				hops = append(hops, store.Hop{Table: t.schema.Data.Table, Column: l.SQLName, Parents: parents})
			}
		}
	}
	return &store.RemainCheck{Hops: hops, Table: found[0].schema.Data.Table, Column: column, Value: value, Namespace: ns.row()}, nil
}

// matchValue is the value the lookup compares with "=": the recorded
// value in the namespace's current canonical form (it was canonical when
// recorded, but the rule may have changed since). It never widens a match:
// an empty or unparseable value is an Invalid error, not a scan.
func matchValue(ns *Namespace, v string) (string, error) {
	c, err := canon.Value(ns.MatchRule, ns.DefaultRegion, v)
	if err != nil {
		return "", apperr.Errorf(apperr.Invalid, "The reconciliation value does not fit the namespace's %s rule: %s.", ruleName(ns), err)
	}
	return c, nil
}

func ruleName(ns *Namespace) string {
	if ns.MatchRule == "" {
		return canon.Exact
	}
	return ns.MatchRule
}

func requestIDs(reqs []store.Request) []int64 {
	ids := make([]int64, len(reqs))
	for i, r := range reqs {
		ids[i] = r.ID
	}
	return ids
}

func uniqueSorted(ids []int64) []int64 {
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

// failpoint lets fault tests stop the process, or fail, at a chosen step.
func (s *Service) failpoint(name string) error {
	if s.cfg.Failpoint != nil {
		return s.cfg.Failpoint(name)
	}
	return nil
}
