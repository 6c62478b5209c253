package privacy

import (
	"context"
	"regexp"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// Namespace is how a reconciliation value finds a person (nms:privacyNamespace).
type Namespace = store.Namespace

// DefaultNamespaces are the three namespaces Campaign ships, seeded at first
// start: internal names and labels as the v8 console shows them, AEC
// namespace ids 6 (Email) and 7 (Phone) of Adobe's Identity Service.
var DefaultNamespaces = []store.Namespace{
	{Name: "defaultNamespace1", Label: "Recipient - email", TargetSchema: "nms:recipient", ReconciliationKey: "@email", AecID: 6},
	{Name: "defaultNamespace2", Label: "Recipient - mobile phone", TargetSchema: "nms:recipient", ReconciliationKey: "@mobilePhone", AecID: 0},
	{Name: "defaultNamespace3", Label: "Recipient - phone", TargetSchema: "nms:recipient", ReconciliationKey: "@phone", AecID: 7},
}

var namespaceNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// Setup seeds the default namespaces and makes sure every namespace's
// reconciliation field is indexed. It runs at each start.
func (s *Service) Setup(ctx context.Context) error {
	for _, ns := range DefaultNamespaces {
		if _, err := s.db.CreateNamespaceIfMissing(ctx, &ns); err != nil {
			return err
		}
	}
	all, err := s.db.FindNamespaces(ctx)
	if err != nil {
		return err
	}
	for _, ns := range all {
		attr, err := s.reconciliationAttribute(ns.TargetSchema, ns.ReconciliationKey)
		if err != nil {
			// A custom schema was removed: the namespace stays, requests
			// on it fail with a clear detail.
			s.log.WarnContext(ctx, "namespace unusable", "namespace", ns.Name, "err", err)
			continue
		}
		sc, _ := s.registry.Schema(ns.TargetSchema)
		if err := s.db.EnsureIndex(ctx, sc.Data.Table, attr.SQLName); err != nil {
			return err
		}
	}
	return nil
}

// CreateNamespace adds a custom namespace, usable at once. Only an
// administrator may: c nil means the command line, run by whoever holds the
// database.
func (s *Service) CreateNamespace(ctx context.Context, c *session.Caller, ns store.Namespace) error {
	if c != nil && !c.HasRight(session.RightAdmin) {
		return apperr.Errorf(apperr.Forbidden, "Only an administrator may create a namespace.")
	}
	if !namespaceNamePattern.MatchString(ns.Name) {
		return apperr.Errorf(apperr.Invalid, "A namespace internal name is a letter followed by up to 63 letters, digits or _.")
	}
	if ns.Label == "" || len(ns.Label) > 128 {
		return apperr.Errorf(apperr.Invalid, "A namespace needs a label of 1 to 128 characters.")
	}
	attr, err := s.reconciliationAttribute(ns.TargetSchema, ns.ReconciliationKey)
	if err != nil {
		return err
	}
	sc, _ := s.registry.Schema(ns.TargetSchema)
	if err := s.db.EnsureIndex(ctx, sc.Data.Table, attr.SQLName); err != nil {
		return err
	}
	created, err := s.db.CreateNamespaceIfMissing(ctx, &ns)
	if err != nil {
		return err
	}
	if !created {
		return apperr.Errorf(apperr.Conflict, "The namespace '%s' already exists.", ns.Name)
	}
	return nil
}

// Namespaces lists every namespace.
func (s *Service) Namespaces(ctx context.Context) ([]store.Namespace, error) {
	return s.db.FindNamespaces(ctx)
}
