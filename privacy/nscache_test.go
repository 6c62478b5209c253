package privacy_test

import (
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestNamespaceCacheFollowsAnotherProcess: CreateRequestByName keeps the
// namespaces it read in a cache; when another process (here a second
// service on the same database) changes a namespace's match rule, the next
// request is still stored under the new rule: the create batch finds the
// cached copy stale and the call is made again with a fresh read.
func TestNamespaceCacheFollowsAnotherProcess(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		before := f.create(t, "defaultNamespace1", "Cache@Example.COM", privacy.TypeAccess, false) // cached now, exact rule
		other := privacy.New(f.env.DB, f.env.Registry, privacy.Config{ExportKey: servertest.Key[:32], Worker: "other"})
		if err := other.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace1", MatchRule: canon.Email}); err != nil {
			t.Fatal(err)
		}
		after := f.create(t, "defaultNamespace1", "Cache@Example.COM", privacy.TypeAccess, false)
		for id, want := range map[int64]string{before: "Cache@Example.COM", after: "cache@example.com"} {
			r, err := f.env.DB.FindRequestByID(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.ReconciliationValue != want {
				t.Fatalf("request %d stored %q, want %q (the cached rule was used after the change)", id, r.ReconciliationValue, want)
			}
		}
	})
}
