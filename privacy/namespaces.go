package privacy

import (
	"context"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// DefaultNamespaces are the three namespaces Campaign ships, seeded at first
// start: internal names and labels as the v8 console shows them, AEC
// namespace ids 6 (Email) and 7 (Phone) of Adobe's Identity Service. They
// match exactly, as in ACC; `namespace update --match` changes that.
var DefaultNamespaces = []Namespace{
	{Name: "defaultNamespace1", Label: "Recipient - email", TargetSchema: "nms:recipient", ReconciliationKey: "@email", AecID: 6, MatchRule: canon.Exact},
	{Name: "defaultNamespace2", Label: "Recipient - mobile phone", TargetSchema: "nms:recipient", ReconciliationKey: "@mobilePhone", AecID: 0, MatchRule: canon.Exact},
	{Name: "defaultNamespace3", Label: "Recipient - phone", TargetSchema: "nms:recipient", ReconciliationKey: "@phone", AecID: 7, MatchRule: canon.Exact},
}

var namespaceNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// Setup seeds the default namespaces and makes sure every namespace's
// reconciliation field is indexed; it warns when the residue purge will
// not reach pg_statistic. It runs at each start.
func (s *Service) Setup(ctx context.Context) error {
	for _, ns := range DefaultNamespaces {
		if _, err := s.db.CreateNamespaceIfMissing(ctx, ns.row()); err != nil {
			return err
		}
	}
	all, err := s.Namespaces(ctx)
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
		if ns.Canonical < canon.Version {
			if err := s.canonicalise(ctx, &ns, sc.Data.Table, attr.SQLName, attr.Length); err != nil {
				return err
			}
		}
	}
	if err := s.fillSubjectHashes(ctx); err != nil {
		return err
	}
	may, err := s.db.MayVacuumStatistics(ctx)
	if err != nil {
		return err
	}
	s.statsNotZeroed.Store(!may)
	if !may && !s.cfg.PlainVacuum {
		s.log.WarnContext(ctx, "the database role may not vacuum pg_statistic: after a delete, the old statistics samples of the erased values stay in its file until autovacuum frees their space (without zeroing it); make the role the database's owner, or grant it pg_maintain (PostgreSQL 17)")
	}
	nss, err := s.db.FindNamespaces(ctx)
	if err != nil {
		return err
	}
	refused, err := s.db.NotVacuumable(ctx, s.modelTables(nss, false))
	if err != nil {
		return err
	}
	if len(refused) > 0 {
		s.log.WarnContext(ctx, "the database role may not vacuum tables of the data model: the deletes that reach them wait in deleteInProgress, as their residue cannot be purged; make the role their owner", "tables", strings.Join(refused, ","))
	}
	return nil
}

// fillSubjectHashes gives the requests made before migration 0009 their
// subject hash, which only a new request got: the DPO's search by value
// never found them, and once the cleanup blanked the value nothing could.
// The hash is of the value in its namespace's canonical form, as a new
// request's (a request made before the match rules stored the value as
// typed). A value that does not fit its namespace's rule, or whose
// namespace is gone, keeps none: no typed value finds it either.
func (s *Service) fillSubjectHashes(ctx context.Context) error {
	ctx = withNamespaceCache(ctx)
	var unfit int64
	n, err := s.db.FillSubjectHashes(ctx, func(namespaceID int64, value string) (string, bool) {
		ns, err := s.namespaceByID(ctx, namespaceID)
		if err == nil {
			value, err = matchValue(ns, value)
		}
		if err != nil {
			unfit++
			return "", false
		}
		return s.subjectHash(value), true
	})
	if err != nil {
		return err
	}
	if n > 0 || unfit > 0 {
		// Counts, never values.
		s.log.InfoContext(ctx, "subject hashes filled for requests made before them", "requests", n, "without_hash", unfit)
	}
	return nil
}

// canonicalise rewrites the namespace's stored field to the canonical form
// of its rule, once (privacy_namespaces.canonical records it). Write keeps
// it so from then on. This is the design choice for data written by
// earlier versions: rewriting the field's form (NFD to NFC, soft hyphens
// and zero-width spaces out, ends trimmed, e-mails lower case, phones
// E.164) keeps the lookup one indexed equality on both stores; a shadow
// match column is not possible for arbitrary custom schemas, and lower()
// or an expression index would differ between SQLite (ASCII only) and
// PostgreSQL. A value that does not fit the rule is only cleaned (Text).
//
// A value whose canonical form is longer than the field is kept as it was
// (never truncated, which could make it another person's value), and no
// request reaches it: CheckReconciliationValue refuses a value longer than
// the field. CreateNamespace and UpdateNamespace therefore refuse a rule
// under which a stored value would not fit (checkFits); what the rewrite
// still meets (a value written meanwhile, a new canon version at start) is
// counted in a warning.
func (s *Service) canonicalise(ctx context.Context, ns *Namespace, table, column string, length int) error {
	rule, region := ruleName(ns), ns.DefaultRegion
	var unfit int64
	n, err := s.db.RewriteColumn(ctx, table, column, func(v string) string {
		c := canon.Stored(rule, region, v)
		if length > 0 && utf8.RuneCountInString(c) > length {
			unfit++
			return v
		}
		return c
	})
	if err != nil {
		return err
	}
	if unfit > 0 {
		// Counts, never values.
		s.log.WarnContext(ctx, "namespace field: values longer than the field in canonical form are kept as stored, and no request reaches them; widen the field or change the rule",
			"namespace", ns.Name, "rule", rule, "field_length", length, "rows", unfit)
	}
	// The requests' subject hashes are of the canonical value: under the
	// new form, or they would no longer find the subject's requests (the
	// DPO's search, a delete destroying the subject's other files).
	rehashed, err := s.db.RehashSubjects(ctx, ns.ID, func(_ int64, value string) (string, bool) {
		c, err := matchValue(ns, value)
		return s.subjectHash(c), err == nil
	})
	if err != nil {
		return err
	}
	if err := s.db.SetNamespaceCanonical(ctx, ns.ID, canon.Version); err != nil {
		return err
	}
	ns.Canonical = canon.Version
	s.namespaces.Delete(ns.Name)
	// A count, never a value.
	s.log.InfoContext(ctx, "namespace field canonicalised", "namespace", ns.Name, "rule", rule, "rows", n, "requests_rehashed", rehashed)
	return nil
}

// checkFits refuses a rule (and region) under which a value stored in the
// namespace's field would be longer than the field in canonical form: the
// rewrite would have to keep it as it is (truncating could make it another
// person's value), and CheckReconciliationValue refuses every request
// longer than the field, so no request could reach that person. A phone
// rule on a field sized for national numbers ("0612345678", 10 characters,
// E.164 "+33612345678" 12) is the usual case. The count, never a value,
// is in the message.
func (s *Service) checkFits(ctx context.Context, ns *Namespace, table, column string, length int) error {
	if length <= 0 {
		return nil
	}
	rule, region := ruleName(ns), ns.DefaultRegion
	n, err := s.db.CountColumnValues(ctx, table, column, func(v string) bool {
		return utf8.RuneCountInString(canon.Stored(rule, region, v)) > length
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return apperr.Errorf(apperr.Invalid, "%d stored value(s) of %s would be longer than the field's %d characters in the %s rule's form, where no request could reach them: widen the field, or choose another rule or region.",
			n, ns.ReconciliationKey, length, rule)
	}
	return nil
}

// checkRule refuses an unknown rule, and a rule that differs from another
// namespace's on the same field: the field is stored in one canonical form.
func (s *Service) checkRule(ctx context.Context, ns *Namespace) error {
	if !canon.ValidRule(ns.MatchRule) {
		return apperr.Errorf(apperr.Invalid, "The match rule must be exact, email or phone.")
	}
	if ns.MatchRule == "" {
		ns.MatchRule = canon.Exact
	}
	if !regionPattern.MatchString(ns.DefaultRegion) {
		return apperr.Errorf(apperr.Invalid, "The default region is a two-letter country code such as US, or empty.")
	}
	ns.DefaultRegion = strings.ToUpper(ns.DefaultRegion)
	all, err := s.Namespaces(ctx)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Name != ns.Name && o.TargetSchema == ns.TargetSchema && o.ReconciliationKey == ns.ReconciliationKey &&
			(ruleName(&o) != ns.MatchRule || o.DefaultRegion != ns.DefaultRegion) {
			return apperr.Errorf(apperr.Invalid, "The namespace '%s' reads %s with the %s rule: namespaces on one field share its rule.",
				o.Name, o.ReconciliationKey, ruleName(&o))
		}
	}
	return nil
}

var regionPattern = regexp.MustCompile(`^([A-Za-z]{2})?$`)

// UpdateNamespace changes a namespace's label, match rule and default
// region. A changed rule rewrites the stored field at once, so requests
// find what they found before plus what the new rule matches.
func (s *Service) UpdateNamespace(ctx context.Context, c *session.Caller, ns Namespace) error {
	if c != nil && !c.HasRight(session.RightAdmin) {
		return apperr.Errorf(apperr.Forbidden, "Only an administrator may change a namespace.")
	}
	old, err := s.namespaceByName(ctx, ns.Name)
	if apperr.CodeOf(err) == apperr.NotFound {
		return apperr.Errorf(apperr.NotFound, "The namespace '%s' does not exist.", printable(ns.Name))
	} else if err != nil {
		return err
	}
	if ns.Label == "" {
		ns.Label = old.Label
	}
	if len(ns.Label) > 128 || strings.ContainsFunc(ns.Label, unicode.IsControl) {
		return apperr.Errorf(apperr.Invalid, "A namespace needs a label of 1 to 128 characters, none of them a control character.")
	}
	ns.TargetSchema, ns.ReconciliationKey = old.TargetSchema, old.ReconciliationKey
	if err := s.checkRule(ctx, &ns); err != nil {
		return err
	}
	ns.ID, ns.Canonical = old.ID, old.Canonical
	changed := ruleName(old) != ns.MatchRule || old.DefaultRegion != ns.DefaultRegion
	if changed {
		ns.Canonical = 0
	}
	var table string
	var attr *schemas.Attribute
	if ns.Canonical < canon.Version {
		if attr, err = s.reconciliationAttribute(ns.TargetSchema, ns.ReconciliationKey); err != nil {
			return err
		}
		sc, _ := s.registry.Schema(ns.TargetSchema)
		table = sc.Data.Table
	}
	if changed {
		// The new rule must leave every stored value reachable.
		if err := s.checkFits(ctx, &ns, table, attr.SQLName, attr.Length); err != nil {
			return err
		}
	}
	if err := s.db.UpdateNamespace(ctx, ns.row()); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "namespace changed", "namespace", ns.Name, "rule", ruleName(&ns), by(c))
	s.namespaces.Delete(ns.Name)
	if ns.Canonical < canon.Version {
		return s.canonicalise(ctx, &ns, table, attr.SQLName, attr.Length)
	}
	return nil
}

// CreateNamespace adds a custom namespace, usable at once. Only an
// administrator may: c nil means the command line, run by whoever holds the
// database.
func (s *Service) CreateNamespace(ctx context.Context, c *session.Caller, ns Namespace) error {
	if c != nil && !c.HasRight(session.RightAdmin) {
		return apperr.Errorf(apperr.Forbidden, "Only an administrator may create a namespace.")
	}
	if !namespaceNamePattern.MatchString(ns.Name) {
		return apperr.Errorf(apperr.Invalid, "A namespace internal name is a letter followed by up to 63 letters, digits or _.")
	}
	if ns.Label == "" || len(ns.Label) > 128 || strings.ContainsFunc(ns.Label, unicode.IsControl) {
		return apperr.Errorf(apperr.Invalid, "A namespace needs a label of 1 to 128 characters, none of them a control character.")
	}
	attr, err := s.reconciliationAttribute(ns.TargetSchema, ns.ReconciliationKey)
	if err != nil {
		return err
	}
	if err := s.checkRule(ctx, &ns); err != nil {
		return err
	}
	sc, _ := s.registry.Schema(ns.TargetSchema)
	if err := s.checkFits(ctx, &ns, sc.Data.Table, attr.SQLName, attr.Length); err != nil {
		return err
	}
	if err := s.db.EnsureIndex(ctx, sc.Data.Table, attr.SQLName); err != nil {
		return err
	}
	ns.Canonical = 0
	row := ns.row()
	created, err := s.db.CreateNamespaceIfMissing(ctx, row)
	if err != nil {
		return err
	}
	ns = *namespaceOf(row)
	if !created {
		return apperr.Errorf(apperr.Conflict, "The namespace '%s' already exists.", ns.Name)
	}
	s.log.InfoContext(ctx, "namespace created", "namespace", ns.Name, "rule", ruleName(&ns), by(c))
	// The field may hold data written before the namespace existed.
	return s.canonicalise(ctx, &ns, sc.Data.Table, attr.SQLName, attr.Length)
}

// Namespaces lists every namespace.
func (s *Service) Namespaces(ctx context.Context) ([]Namespace, error) {
	rows, err := s.db.FindNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	return namespacesOf(rows), nil
}
