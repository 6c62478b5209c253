package privacy

import (
	"context"
	"fmt"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// The coverage report: the tables that refer to the subject's rows through
// an ordinary link (no owning integrity) are neither collected nor erased
// by the data model's rules — ACC's own behaviour. Every request counts
// them, and the audit, the export and the receipt say so, so that the DPO
// sees what the policy leaves behind instead of assuming it is gone.

// LinkedCount is how many rows of one table refer to the subject's data
// through one ordinary link (Schema "cus:ticket", Link "recipient",
// Target "nms:recipient").
type LinkedCount struct {
	Schema      string // "cus:ticket"
	Link        string // "recipient"
	Target      string // the subject's schema it points at
	RecordCount int64
}

// linkedOf maps a stored coverage report to the domain type.
func linkedOf(rows []store.LinkedCount) []LinkedCount {
	out := make([]LinkedCount, len(rows))
	for i, r := range rows {
		out[i] = LinkedCount{Schema: r.Schema, Link: r.Link, Target: r.Target, RecordCount: r.RecordCount}
	}
	return out
}

// linkedRows is a coverage report as the store writes it: never nil, so
// that an empty report replaces the previous one.
func linkedRows(linked []LinkedCount) []store.LinkedCount {
	out := make([]store.LinkedCount, len(linked))
	for i, l := range linked {
		out[i] = store.LinkedCount{Schema: l.Schema, Link: l.Link, Target: l.Target, RecordCount: l.RecordCount}
	}
	return out
}

// coverageNote heads the report in the file, the receipt and the console.
const coverageNote = "linked, not collected or erased by the data model's rules"

// linkedNotOwned counts, per ordinary link into the subject's data, the
// rows that point at what found holds (found[0] is the target schema).
// Links with no row are left out.
func (s *Service) linkedNotOwned(ctx context.Context, found []tableIDs) ([]LinkedCount, error) {
	if len(found) == 0 {
		return nil, nil
	}
	g, err := s.graphFor(found[0].schema.ID())
	if err != nil {
		return nil, err
	}
	ids := map[string][]int64{}
	for _, t := range found {
		ids[t.schema.ID()] = t.ids
	}
	var out []LinkedCount
	for _, l := range g.owned.Linked {
		parents := ids[l.Target]
		if len(parents) == 0 {
			continue
		}
		hop := []store.Hop{{Table: l.Schema.Data.Table, Column: l.SQLName, Parents: parents}}
		var n int64
		if own, owned := ids[l.Schema.ID()]; owned {
			// A table the subject owns rows of: those are collected and
			// erased; only the others count.
			mine := make(map[int64]bool, len(own))
			for _, id := range own {
				mine[id] = true
			}
			rows, err := s.db.FindHops(ctx, hop)
			if err != nil {
				return nil, err
			}
			for _, r := range rows[0] {
				if !mine[r.ID] {
					n++
				}
			}
		} else if n, err = s.db.CountHops(ctx, hop); err != nil {
			return nil, err
		}
		if n > 0 {
			out = append(out, LinkedCount{Schema: l.Schema.ID(), Link: l.Name, Target: l.Target, RecordCount: n})
		}
	}
	return out, nil
}

// coverageAudit is the audit's account of the linked rows.
func coverageAudit(linked []LinkedCount) []string {
	var out []string
	for _, c := range linked {
		out = append(out, fmt.Sprintf("Linked, not collected or erased by the data model's rules: %d record(s) in %s (link %s to %s).",
			c.RecordCount, c.Schema, c.Link, c.Target))
	}
	return out
}
