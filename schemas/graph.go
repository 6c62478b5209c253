package schemas

import (
	"fmt"
	"sort"
)

// Owned is the part of the data model that belongs to a subject: the root
// schema (nms:recipient) and every schema reachable from it through links
// whose revIntegrity is "own" (or "owncopy"), multi-hop, custom schemas
// included. ACC deletes these rows with the recipient; the privacy
// workflows collect and delete exactly these.
type Owned struct {
	// Order lists the schemas parents first: the root, then each schema
	// after every schema it is owned through. Collect reads in this order;
	// delete walks it backwards, children before parents.
	Order []*Schema
	// Parents gives, for each schema but the root, the own links that make
	// it part of the subject's data (trackingLogRcp has two: recipient and
	// broadLog).
	Parents map[*Schema][]*Link
	// Linked are the ordinary links into the owned part (no owning
	// integrity): from tables outside it (a custom table pointing at a
	// recipient), and from tables inside it (a case the subject owns has a
	// contact person; a recipient names its referrer). Their rows refer to
	// the subject but are neither collected nor erased by the data model's
	// rules, unless they are the subject's own; the coverage report counts
	// the others so that the DPO sees what the policy leaves behind.
	Linked []*Link
}

// ownedRank orders the standard tables the way ACC's collect workflow logs
// them (privacy-anchors.md §4.3); other schemas follow by id.
var ownedRank = map[string]int{
	"nms:recipient": 0, "nms:broadLogRcp": 1, "nms:trackingLogRcp": 2, "nms:broadLogEventHisto": 3,
	"nms:rcpGrpRel": 4, "nms:propositionVisitor": 5, "nms:visitor": 6, "nms:subHisto": 7,
	"nms:subscription": 8, "nms:propositionRcp": 9,
}

func ownedLess(a, b *Schema) bool {
	ra, oka := ownedRank[a.ID()]
	rb, okb := ownedRank[b.ID()]
	switch {
	case oka && okb:
		return ra < rb
	case oka != okb:
		return oka
	}
	return a.ID() < b.ID()
}

// OwnedBy computes the owned part of the data model from root. It fails on
// a cycle of own links, through root or not, which would make "delete
// children first" meaningless; a table's own links to itself (root's
// included) are followed to their fixpoint instead.
func (r *Registry) OwnedBy(root string) (*Owned, error) {
	rs, ok := r.schemas[root]
	if !ok || rs.Data == nil || rs.Data.View {
		return nil, fmt.Errorf("%s is not a data schema", root)
	}
	parents := map[*Schema][]*Link{}
	reached := map[*Schema]bool{rs: true}
	queue := []*Schema{rs}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, l := range r.LinksTo(s.ID()) {
			if l.RevIntegrity != IntegrityOwn && l.RevIntegrity != IntegrityOwnCopy {
				continue
			}
			if l.Schema.Data.View {
				continue
			}
			parents[l.Schema] = append(parents[l.Schema], l)
			if !reached[l.Schema] {
				reached[l.Schema] = true
				queue = append(queue, l.Schema)
			}
		}
	}
	// The root is first whatever links it has, so Kahn's algorithm below
	// never sees a cycle through it: an own link from the root to a table
	// it owns (a recipient owned by its household, the household by its
	// head) would be neither followed nor refused. Only the root's self
	// links (a recipient owned by another recipient) are followed.
	for _, l := range parents[rs] {
		if l.Target != rs.ID() {
			return nil, fmt.Errorf("the own links reachable from %s form a cycle through it: its link %q to %s, which it owns", root, l.Name, l.Target)
		}
	}
	// Kahn's algorithm over the reached part, ties broken by ownedLess.
	pending := map[*Schema]int{}
	for s, ls := range parents {
		for _, l := range ls {
			if l.Target != s.ID() { // a self link does not block
				pending[s]++
			}
		}
	}
	order := []*Schema{rs}
	ready := []*Schema{}
	done := map[*Schema]bool{rs: true}
	release := func(p *Schema) {
		for s, ls := range parents {
			if done[s] {
				continue
			}
			for _, l := range ls {
				if l.Target == p.ID() && l.Target != s.ID() {
					pending[s]--
				}
			}
			if pending[s] == 0 && !contains(ready, s) {
				ready = append(ready, s)
			}
		}
	}
	release(rs)
	for len(ready) > 0 {
		sort.Slice(ready, func(i, j int) bool { return ownedLess(ready[i], ready[j]) })
		s := ready[0]
		ready = ready[1:]
		done[s] = true
		order = append(order, s)
		release(s)
	}
	if len(order) != len(reached) {
		return nil, fmt.Errorf("the own links reachable from %s form a cycle", root)
	}
	var linked []*Link
	for _, target := range order {
		for _, l := range r.LinksTo(target.ID()) {
			own := l.RevIntegrity == IntegrityOwn || l.RevIntegrity == IntegrityOwnCopy
			if !l.Schema.Data.View && (!reached[l.Schema] || !own) {
				linked = append(linked, l)
			}
		}
	}
	return &Owned{Order: order, Parents: parents, Linked: linked}, nil
}

func contains(list []*Schema, s *Schema) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
