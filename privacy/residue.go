package privacy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// touchedTables collects the tables a delete run removed rows from, the
// requests it removed them for, and the requests whose rows are all gone
// (deletedUpdate), so that the run ends with one PurgeResidue of those
// tables (DESIGN §4b "No residue"; the store also marks them, for a
// process that dies first), records it in each request's audit, and only
// then completes the deleted requests. Workers of one run add to it
// concurrently.
type touchedTables struct {
	mu       sync.Mutex
	tables   map[string]bool
	requests map[int64]bool
	done     map[int64]bool
	renewed  time.Time // when the claims on done were last renewed (renewDue)
}

func (t *touchedTables) add(request int64, parts []store.DeletePart) {
	t.update(func() {
		for _, name := range store.PartTables(parts) {
			t.tables[name] = true
		}
		t.requests[request] = true
	})
}

// addTables adds tables a step changed outside its delete parts (a
// dropped export's).
func (t *touchedTables) addTables(names ...string) {
	t.update(func() {
		for _, name := range names {
			t.tables[name] = true
		}
	})
}

// deleted notes a request whose rows are all gone: it completes after the
// purge.
func (t *touchedTables) deleted(request int64) {
	t.update(func() { t.done[request] = true })
}

// renewDue returns the deleted requests when their claims were last
// renewed at least every ago (or never), and notes now as their renewal.
func (t *touchedTables) renewDue(now time.Time, every time.Duration) []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.done) == 0 || now.Sub(t.renewed) < every {
		return nil
	}
	t.renewed = now
	return slices.Sorted(maps.Keys(t.done))
}

// update runs fn on the sets, made if need be, under the lock.
func (t *touchedTables) update(fn func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tables == nil {
		t.tables, t.requests, t.done = map[string]bool{}, map[int64]bool{}, map[int64]bool{}
	}
	fn()
}

// take returns the tables, the requests and the deleted requests, sorted,
// and empties the set.
func (t *touchedTables) take() (tables []string, requests, deleted []int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tables = slices.Sorted(maps.Keys(t.tables))
	requests = slices.Sorted(maps.Keys(t.requests))
	deleted = slices.Sorted(maps.Keys(t.done))
	t.tables, t.requests, t.done, t.renewed = nil, nil, nil, time.Time{}
	return tables, requests, deleted
}

// purgeResidue ends a delete or cleanup run: the database drops what the
// run left behind in tables (WAL pages, dead tuples, their bytes in the
// table files), with what an earlier run marked before runStart and did
// not purge (it died first, or an older transaction outlasted its wait).
// Then the deleted requests complete, each with the purge in its audit and
// its receipt; the other requests get the audit line only. If the purge
// did not finish, or the run was stopped (ctx done: then it does not
// start), the deleted requests are released still deleteInProgress: the
// next run takes them back, finds nothing to delete, purges again and
// completes them. It runs even when the run failed half way, since the
// batches already committed left residue too; the run's own error wins
// over the purge's. only, when set, limits the earlier marks it takes to
// those tables' (store.ResiduePurge.Only: a cleanup's).
func (s *Service) purgeResidue(ctx context.Context, runStart time.Time, tables []string, requests, deleted []int64, runErr error, only []string) error {
	var (
		purged, pending, kept, notPurged, cascaded []string
		err                                        error
	)
	if err = s.failpoint("residue-purge"); err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		// Stopped (a shutdown, ^C): no purge, which may take minutes; the
		// marks keep the tables for the next run, and the deleted requests
		// are released for it below.
		pending = tables
	} else {
		purge := store.ResiduePurge{Rewrite: !s.cfg.PlainVacuum, Wait: s.cfg.ResidueWait, Kept: &kept, NotPurged: &notPurged, Cascaded: &cascaded, Only: only}
		purged, pending, err = s.db.PurgeResidue(ctx, tables, runStart, purge)
	}
	ctx = context.WithoutCancel(ctx)
	method, note := s.purgeMethod()
	what := fmt.Sprintf("%s of %d table(s)", method, len(purged))
	if note != "" {
		what += "; " + note
	}
	if len(kept) > 0 {
		// In the audit line and the receipt's residue_purge claim: what
		// the purge could not remove is said, not hidden.
		what += fmt.Sprintf("; planner statistics the purge could not drop kept for %s (see the service log)", strings.Join(kept, ", "))
	}
	if len(cascaded) > 0 {
		// The database's own deletes, outside what the service deletes
		// and counts: named, not counted (PostgreSQL counts attempted
		// deletes and rows moved between partitions alike, and a count
		// would keep each request's deletes out of the claims' batches).
		what += fmt.Sprintf("; foreign keys outside the data model cascade the deletes into %s (the database deleted or unlinked rows there with the subject's; not counted)", listed(cascaded))
	}
	if len(notPurged) > 0 {
		// Outside the data model, what the receipt speaks for, but the
		// deletes' rows are still there: said too.
		what += fmt.Sprintf("; outside the data model, not purged: %s (see the service log)", listed(notPurged))
	}
	line := "Residue purged: " + what + "."
	if err != nil {
		s.log.WarnContext(ctx, "could not purge the residue of a workflow run", "tables", len(purged)+len(pending), "pending", len(pending), "err", err)
		line = fmt.Sprintf("Residue purge of %d table(s) not finished (see the service log); the next run purges them again.", len(pending))
	}
	var others []int64
	for _, id := range requests {
		if _, ok := slices.BinarySearch(deleted, id); !ok {
			others = append(others, id)
		}
	}
	if auditErr := s.db.AppendAuditAll(ctx, others, line); auditErr != nil {
		s.log.WarnContext(ctx, "could not record the residue purge in the requests' audit", "requests", len(others), "err", auditErr)
	}
	purgedAt := fmt.Sprintf("%s, done %s", what, s.cfg.Now().UTC().Format(time.RFC3339))
	if finErr := s.finishDeleted(ctx, deleted, err == nil, line, purgedAt); finErr != nil {
		s.log.WarnContext(ctx, "could not complete the deleted requests after the residue purge", "requests", len(deleted), "err", finErr)
		if err == nil {
			err = finErr
		}
	}
	if runErr != nil {
		return runErr
	}
	return err
}

// finishBatch is how many deleted requests one commit completes.
const finishBatch = 100

// finishDeleted ends the requests whose rows a delete step removed
// (deletedUpdate) and which this worker still holds: complete, with the
// purge's audit line and a receipt that names it (claim residue_purge),
// when the purge finished; else released with the line, still
// deleteInProgress, for the next run.
func (s *Service) finishDeleted(ctx context.Context, ids []int64, purged bool, line, purgedAt string) error {
	var firstErr error
	for start := 0; start < len(ids); start += finishBatch {
		held, err := s.db.HeldRequests(ctx, ids[start:min(start+finishBatch, len(ids))], s.workerNames())
		if err != nil {
			return err
		}
		items := map[string][]store.BatchItem{} // by the worker that holds them
		ctx := s.withRecords(ctx, requestIDs(held))
		for i := range held {
			req := &held[i]
			if Status(req.Status) != StatusDeleteInProgress {
				continue
			}
			upd := store.RequestUpdate{Status: ptr(StatusDeleteInProgress.stored()), Release: true,
				Audit: []string{line, "The request completes after the next run's residue purge."}}
			if purged {
				upd = store.RequestUpdate{Status: ptr(StatusComplete.stored()), Release: true, ClearDedupe: true,
					Audit: []string{line, "Request is complete."}}
			}
			receipt, err := s.receiptFunc(ctx, req, upd, purgedAt)
			if err != nil {
				return err
			}
			worker := *req.ClaimedBy
			items[worker] = append(items[worker], store.BatchItem{ID: req.ID, Update: upd, Receipt: receipt})
		}
		for worker, items := range items {
			res, err := s.db.CommitBatch(ctx, worker, items)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			for i, r := range res {
				if r.Held {
					s.log.InfoContext(ctx, "privacy request step done", "id", items[i].ID, "status", Status(*r.Update.Status).String())
				}
			}
		}
	}
	return firstErr
}

// listed is names sorted, each once, for a record: "a, b, c".
func listed(names []string) string {
	return strings.Join(slices.Compact(slices.Sorted(slices.Values(names))), ", ")
}

// purgeMethod names what PurgeResidue does on this store, and what it
// leaves (a note, or "").
func (s *Service) purgeMethod() (method, note string) {
	switch {
	case s.db.Dialect() != store.Postgres:
		return "secure_delete and a WAL checkpoint", ""
	case s.cfg.PlainVacuum:
		return "VACUUM (ANALYZE; freed space not zeroed)", ""
	case s.statsNotZeroed.Load():
		return "VACUUM (FULL, ANALYZE)", "pg_statistic vacuumed, freed space not zeroed"
	default:
		return "VACUUM (FULL, ANALYZE)", ""
	}
}

// modelTables lists the tables the namespaces' target schemas own (the
// ones their deletes delete from), and with linked the tables of their
// ordinary links too, each once.
func (s *Service) modelTables(nss []store.Namespace, linked bool) []string {
	seen := map[string]bool{"privacy_requests": true}
	var tables []string
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			tables = append(tables, t)
		}
	}
	for _, ns := range nss {
		g, err := s.graphFor(ns.TargetSchema)
		if err != nil {
			continue // the lookup reports it, request by request
		}
		for _, sc := range g.owned.Order {
			add(sc.Data.Table)
		}
		for _, l := range g.owned.Linked {
			if linked && l.Schema != nil && l.Schema.Data != nil && !l.Schema.Data.View {
				add(l.Schema.Data.Table)
			}
		}
	}
	return tables
}

// refreshStatistics brings the planner statistics of the tables the
// workflows read up to date where they are missing or stale (a bulk load
// on a server with autovacuum off; see internal/store/stats.go): the
// owned and linked tables of every namespace's target schema, and the
// requests the claims select. Where autovacuum runs it finds nothing to
// do. A failure is logged: the run goes on with the plans it gets.
func (s *Service) refreshStatistics(ctx context.Context) {
	nss, err := s.db.FindNamespaces(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "could not read the namespaces to refresh planner statistics", "err", err)
		return
	}
	analyzed, err := s.db.AnalyzeStale(ctx, append([]string{"privacy_requests"}, s.modelTables(nss, true)...))
	if err != nil {
		s.log.WarnContext(ctx, "could not refresh planner statistics", "err", err)
		return
	}
	if len(analyzed) > 0 {
		s.log.InfoContext(ctx, "planner statistics refreshed before the workflow", "tables", strings.Join(analyzed, ","))
	}
}
