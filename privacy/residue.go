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

// touchedTables collects the tables a delete run removed rows from, and
// the requests it removed them for, so that the run ends with one
// PurgeResidue of those tables (DESIGN §4b "No residue"; the store also
// marks them, for a process that dies first) and records it in each
// request's audit. Workers of one run add to it concurrently.
type touchedTables struct {
	mu       sync.Mutex
	tables   map[string]bool
	requests map[int64]bool
}

func (t *touchedTables) add(request int64, parts []store.DeletePart) {
	t.addTables([]int64{request}, store.PartTables(parts))
}

func (t *touchedTables) addTables(requests []int64, names []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tables == nil {
		t.tables, t.requests = map[string]bool{}, map[int64]bool{}
	}
	for _, name := range names {
		t.tables[name] = true
	}
	for _, id := range requests {
		t.requests[id] = true
	}
}

// take returns the tables and the requests, sorted, and empties the set.
func (t *touchedTables) take() (tables []string, requests []int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tables = slices.Sorted(maps.Keys(t.tables))
	requests = slices.Sorted(maps.Keys(t.requests))
	t.tables, t.requests = nil, nil
	return tables, requests
}

// purgeResidue ends a delete or cleanup run: the database drops what the
// run left behind in tables (WAL pages, dead tuples, their bytes in the
// table files), with what an earlier run marked before runStart and did
// not purge (it died first, or an older transaction outlasted its wait),
// and each of requests gets an audit line saying so. It runs even when
// the run failed half way, since the batches already committed left
// residue too; the run's own error wins over the purge's. A table it could
// not purge keeps its mark, and its requests wait in s.touched: the next
// delete run purges it again and writes their line then. With attest (a
// delete run), the requests' receipts are signed again with the purge.
func (s *Service) purgeResidue(ctx context.Context, runStart time.Time, tables []string, requests []int64, attest bool, runErr error) error {
	ctx = context.WithoutCancel(ctx)
	purge := store.ResiduePurge{Rewrite: !s.cfg.PlainVacuum, Wait: s.cfg.ResidueWait}
	purged, pending, err := s.db.PurgeResidue(ctx, tables, runStart, purge)
	what := fmt.Sprintf("%s of %d table(s)", s.purgeMethod(), len(purged))
	line := "Residue purged: " + what + "."
	if err != nil {
		s.touched.addTables(requests, nil)
		s.log.WarnContext(ctx, "could not purge the residue of a workflow run", "tables", len(purged)+len(pending), "pending", len(pending), "err", err)
		line = fmt.Sprintf("Residue purge of %d table(s) not finished (see the service log); the next run purges them again.", len(pending))
	}
	if auditErr := s.db.AppendAuditAll(ctx, requests, line); auditErr != nil {
		s.log.WarnContext(ctx, "could not record the residue purge in the requests' audit", "requests", len(requests), "err", auditErr)
	}
	if err == nil && attest {
		if signErr := s.attestPurge(ctx, requests, what); signErr != nil {
			s.log.WarnContext(ctx, "could not sign the receipts again with the residue purge", "requests", len(requests), "err", signErr)
		}
	}
	if runErr != nil {
		return runErr
	}
	return err
}

// purgeMethod names what PurgeResidue does on this store.
func (s *Service) purgeMethod() string {
	switch {
	case s.db.Dialect() != store.Postgres:
		return "secure_delete and a WAL checkpoint"
	case s.cfg.PlainVacuum:
		return "VACUUM (ANALYZE; freed space not zeroed)"
	default:
		return "VACUUM (FULL, ANALYZE)"
	}
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
	seen := map[string]bool{"privacy_requests": true}
	tables := []string{"privacy_requests"}
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
			if l.Schema != nil && l.Schema.Data != nil && !l.Schema.Data.View {
				add(l.Schema.Data.Table)
			}
		}
	}
	analyzed, err := s.db.AnalyzeStale(ctx, tables)
	if err != nil {
		s.log.WarnContext(ctx, "could not refresh planner statistics", "err", err)
		return
	}
	if len(analyzed) > 0 {
		s.log.InfoContext(ctx, "planner statistics refreshed before the workflow", "tables", strings.Join(analyzed, ","))
	}
}
