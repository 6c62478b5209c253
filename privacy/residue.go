package privacy

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// touchedTables collects the tables a delete run removed rows from, so
// that the run ends with one PurgeResidue of exactly those tables
// (DESIGN §4b "No residue"). Workers of one run add to it concurrently.
type touchedTables struct {
	mu     sync.Mutex
	tables map[string]bool
}

func (t *touchedTables) add(parts []store.DeletePart) {
	names := make([]string, len(parts))
	for i, p := range parts {
		names[i] = p.Table
	}
	t.addTables(names)
}

func (t *touchedTables) addTables(names []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tables == nil {
		t.tables = map[string]bool{}
	}
	for _, name := range names {
		t.tables[name] = true
	}
}

// take returns the tables, sorted, and empties the set.
func (t *touchedTables) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.tables))
	for name := range t.tables {
		out = append(out, name)
	}
	t.tables = nil
	sort.Strings(out)
	return out
}

// purgeResidue ends a delete run: the database drops what the deletes left
// behind (WAL pages, dead tuples, their bytes in the table files). It runs
// even when the run failed half way, since the batches already committed
// left residue too; the run's own error wins over the purge's. A table it
// could not purge (an older transaction still open, the rewrite's lock not
// granted) goes back into the set: the next delete run purges it again.
func (s *Service) purgeResidue(ctx context.Context, runErr error) error {
	tables := s.touched.take()
	if len(tables) == 0 {
		return runErr
	}
	purge := store.ResiduePurge{Rewrite: !s.cfg.PlainVacuum, Wait: s.cfg.ResidueWait}
	pending, err := s.db.PurgeResidue(context.WithoutCancel(ctx), tables, purge)
	s.touched.addTables(pending)
	if err != nil {
		s.log.WarnContext(ctx, "could not purge the residue of a delete run", "tables", len(tables), "pending", len(pending), "err", err)
	}
	if runErr != nil {
		return runErr
	}
	return err
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
