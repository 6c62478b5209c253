package privacy

import (
	"context"
	"sort"
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
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tables == nil {
		t.tables = map[string]bool{}
	}
	for _, p := range parts {
		t.tables[p.Table] = true
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
// behind (WAL pages, dead tuples). It runs even when the run failed half
// way, since the batches already committed left residue too; the run's own
// error wins over the purge's.
func (s *Service) purgeResidue(ctx context.Context, runErr error) error {
	tables := s.touched.take()
	if len(tables) == 0 {
		return runErr
	}
	err := s.db.PurgeResidue(context.WithoutCancel(ctx), tables)
	if err != nil {
		// The next run purges again; the deleted rows are gone either way.
		s.log.WarnContext(ctx, "could not purge the residue of a delete run", "tables", len(tables), "err", err)
	}
	if runErr != nil {
		return runErr
	}
	return err
}
