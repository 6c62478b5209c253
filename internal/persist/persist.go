// Package persist implements xtk:persist#Write and WriteCollection for the
// data-model schemas: the way ACC clients insert, update and delete
// recipients and their logs. A document names its schema (xtkschema), the
// operation (_operation: insert, update, insertOrUpdate, delete) and the
// key that finds an existing record (_key="@email", or @id); its other
// attributes are values, link keys written "<link>-id". Everything is
// checked against the schema registry before a single row is touched, and
// a collection is written in one transaction.
package persist

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// MaxCollection bounds the records of one WriteCollection.
const MaxCollection = 1000

// Service writes entities.
type Service struct {
	db       *store.DB
	registry *schemas.Registry
	now      func() time.Time
}

// New returns a Service; now nil means time.Now.
func New(db *store.DB, registry *schemas.Registry, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, registry: registry, now: now}
}

// Write writes one entity document.
func (s *Service) Write(ctx context.Context, doc *etree.Element) error {
	if doc == nil {
		return apperr.Errorf(apperr.Invalid, "Write needs a document.")
	}
	return s.write(ctx, func(rules map[string]rule) ([]store.EntityWrite, error) {
		w, err := s.entity(doc, doc.SelectAttrValue("xtkschema", ""), doc.SelectAttrValue("_operation", ""), rules)
		if err != nil {
			return nil, err
		}
		return []store.EntityWrite{w}, nil
	})
}

// WriteCollection writes <x-collection xtkschema="…"><x …/>…</x-collection>
// in one transaction. Each child may override _operation and xtkschema.
func (s *Service) WriteCollection(ctx context.Context, doc *etree.Element) error {
	if doc == nil {
		return apperr.Errorf(apperr.Invalid, "WriteCollection needs a document.")
	}
	children := doc.ChildElements()
	if len(children) == 0 {
		return apperr.Errorf(apperr.Invalid, "The collection is empty.")
	}
	if len(children) > MaxCollection {
		return apperr.Errorf(apperr.Invalid, "A collection holds at most %d records.", MaxCollection)
	}
	return s.write(ctx, func(rules map[string]rule) ([]store.EntityWrite, error) {
		var writes []store.EntityWrite
		for i, c := range children {
			schema := c.SelectAttrValue("xtkschema", doc.SelectAttrValue("xtkschema", ""))
			op := c.SelectAttrValue("_operation", doc.SelectAttrValue("_operation", ""))
			w, err := s.entity(c, schema, op, rules)
			if err != nil {
				return nil, apperr.Errorf(apperr.CodeOf(err), "Record %d: %s", i+1, apperr.MessageOf(err))
			}
			writes = append(writes, w)
		}
		return writes, nil
	})
}

// write builds the writes with the namespaces' match rules as read now and
// applies them in one transaction that first checks the namespaces of the
// written schemas are still those read: a namespace update in between (its
// rule changed, its field rewritten to the new rule) or a namespace
// created in between on a written field (its field rewritten before this
// Write commits) would otherwise leave a value stored in a form no request
// reaches. The writes are then built again with the rules as they are.
func (s *Service) write(ctx context.Context, build func(map[string]rule) ([]store.EntityWrite, error)) error {
	for attempt := 1; ; attempt++ {
		nss, err := s.db.FindNamespaces(ctx)
		if err != nil {
			return err
		}
		rules := make(map[string]rule, len(nss))
		for _, ns := range nss {
			rules[ns.TargetSchema+ns.ReconciliationKey] = rule{ns.MatchRule, ns.DefaultRegion}
		}
		writes, err := build(rules)
		if err != nil {
			return err
		}
		if err := s.checkKeys(ctx, writes); err != nil {
			return err
		}
		// The namespaces of the schemas written: their rules shaped the
		// values, and the store checks that no other one exists by then.
		var used []store.Namespace
		for _, ns := range nss {
			if slices.ContainsFunc(writes, func(w store.EntityWrite) bool { return w.Schema == ns.TargetSchema }) {
				used = append(used, ns)
			}
		}
		err = s.db.WriteEntities(ctx, writes, used)
		if errors.Is(err, store.ErrNamespaceRewritten) {
			if attempt < 3 {
				continue
			}
			return apperr.Errorf(apperr.Conflict, "A namespace's match rule changed while the records were written; nothing was written, send them again.")
		}
		return err
	}
}

// checkKeys refuses a _key that no index leads: each record would scan the
// table under the write lock (1,000 records of a collection, 1,000 scans),
// and on SQLite every other write — logons, new requests — would wait
// behind them. A key is accepted when one of its attributes is @id, a link
// or an indexed field (each namespace's reconciliation field is indexed).
func (s *Service) checkKeys(ctx context.Context, writes []store.EntityWrite) error {
	indexed := map[string]map[string]bool{}
	for i, w := range writes {
		if w.Op == store.OpInsert || len(w.Key) == 0 {
			continue
		}
		cols, ok := indexed[w.Table]
		if !ok {
			var err error
			if cols, err = s.db.IndexedColumns(ctx, w.Table); err != nil {
				return err
			}
			indexed[w.Table] = cols
		}
		var names []string
		probe := false
		for c := range w.Key {
			probe = probe || cols[c]
			names = append(names, "@"+s.attributeName(w.Schema, c))
		}
		if probe {
			continue
		}
		sort.Strings(names)
		var usable []string
		for c := range cols {
			usable = append(usable, "@"+s.attributeName(w.Schema, c))
		}
		sort.Strings(usable)
		key, list := strings.Join(names, ","), strings.Join(usable, ", ")
		if len(writes) > 1 {
			return apperr.Errorf(apperr.Invalid, "Record %d: the key %s of %s is not indexed: a %s finds its record by @id or an indexed attribute (%s).",
				i+1, key, w.Schema, w.Op, list)
		}
		return apperr.Errorf(apperr.Invalid, "The key %s of %s is not indexed: a %s finds its record by @id or an indexed attribute (%s).",
			key, w.Schema, w.Op, list)
	}
	return nil
}

// attributeName is the document's name of a column of schemaID: the
// attribute's name, or "<link>-id" for a link's column.
func (s *Service) attributeName(schemaID, column string) string {
	sc, ok := s.registry.Schema(schemaID)
	if !ok || sc.Data == nil {
		return column
	}
	for _, a := range sc.Data.Attributes {
		if a.SQLName == column {
			return a.Name
		}
	}
	for _, l := range sc.Data.Links {
		if l.SQLName == column {
			return l.Name + "-id"
		}
	}
	return column
}

var operations = map[string]string{
	"": store.OpInsertOrUpdate, "insertOrUpdate": store.OpInsertOrUpdate,
	"insert": store.OpInsert, "update": store.OpUpdate, "delete": store.OpDelete,
}

// rule is how a namespaced field is stored: its namespace's match rule.
// rule is the match rule of a field some namespace reconciles on, by
// "nms:recipient" + "@email". The rules are read at each Write, not
// cached: a namespace may be created or changed by another process
// meanwhile.
type rule struct{ name, region string }

// entity turns one element into a checked write. A field that is a
// namespace's reconciliation key is stored in canonical form (canon.Stored:
// NFC, invisible characters out, trimmed, then the namespace's rule), the
// form CreateRequestByName gives the reconciliation value, so the subject
// is found by one indexed equality and erased. Other fields keep what the
// client wrote, as ACC does.
func (s *Service) entity(el *etree.Element, schemaID, operation string, rules map[string]rule) (store.EntityWrite, error) {
	var w store.EntityWrite
	if schemaID == "" {
		return w, apperr.Errorf(apperr.Invalid, "The document does not name its schema (xtkschema).")
	}
	sc, ok := s.registry.Schema(schemaID)
	if !ok || sc.Data == nil {
		return w, apperr.Errorf(apperr.Invalid, "The schema '%s' is not a data schema.", apperr.Quote(schemaID, 64))
	}
	if sc.Data.View {
		return w, apperr.Errorf(apperr.Invalid, "Records of %s cannot be written: privacy requests are created only through CreateRequestByName.", sc.ID())
	}
	if el.Tag != sc.Name {
		return w, apperr.Errorf(apperr.Invalid, "The element <%s> does not match the schema %s.", apperr.Quote(el.Tag, 64), sc.ID())
	}
	op, ok := operations[operation]
	if !ok {
		return w, apperr.Errorf(apperr.Invalid, "Unknown _operation '%s' (insert, update, insertOrUpdate or delete).", apperr.Quote(operation, 64))
	}
	w = store.EntityWrite{Schema: sc.ID(), Table: sc.Data.Table, Op: op, Key: map[string]any{}, Values: map[string]any{}}
	keyNames := map[string]bool{}
	if k := el.SelectAttrValue("_key", ""); k != "" {
		for _, part := range strings.Split(k, ",") {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "@") {
				return w, apperr.Errorf(apperr.Invalid, "A _key lists attributes written @name, not '%s'.", apperr.Quote(part, 64))
			}
			keyNames[part[1:]] = true
		}
	}
	for _, a := range el.Attr {
		if a.Space != "" || strings.HasPrefix(a.Key, "_") || a.Key == "xtkschema" {
			continue
		}
		col, value, err := s.column(sc, a.Key, a.Value)
		if err != nil {
			return w, err
		}
		if r, ok := rules[sc.ID()+"@"+a.Key]; ok {
			if text, isText := value.(string); isText {
				c := canon.Stored(r.name, r.region, text)
				if attr, ok := sc.Data.Attribute(a.Key); ok && attr.Length > 0 && utf8.RuneCountInString(c) > attr.Length {
					return w, apperr.Errorf(apperr.Invalid, "@%s is longer than %d characters in canonical form.", attr.Name, attr.Length)
				}
				value = c
				if c == "" {
					value = nil // nothing left: NULL, as for empty text
				}
			}
		}
		if keyNames[a.Key] || a.Key == "id" {
			if value == nil {
				return w, apperr.Errorf(apperr.Invalid, "The key attribute @%s is empty.", a.Key)
			}
			w.Key[col] = value
			delete(keyNames, a.Key)
			continue
		}
		w.Values[col] = value
	}
	for name := range keyNames {
		return w, apperr.Errorf(apperr.Invalid, "The key attribute @%s has no value in the document.", apperr.Quote(name, 64))
	}
	if op == store.OpInsert {
		if _, hasID := w.Key["id"]; hasID {
			return w, apperr.Errorf(apperr.Invalid, "@id is assigned by the server on insert.")
		}
	}
	// created and lastModified are the server's, whatever the document
	// says (server/README.md).
	now := s.now().UTC()
	if a, ok := sc.Data.Attribute("lastModified"); ok && a.Type == schemas.TypeDatetime {
		w.Values[a.SQLName] = now
	}
	if a, ok := sc.Data.Attribute("created"); ok && a.Type == schemas.TypeDatetime {
		delete(w.Values, a.SQLName)
		w.OnInsert = map[string]any{a.SQLName: now}
	}
	if op == store.OpDelete {
		for _, l := range s.registry.LinksTo(sc.ID()) {
			if l.RevIntegrity == schemas.IntegrityOwn || l.RevIntegrity == schemas.IntegrityOwnCopy {
				w.Dependents = append(w.Dependents, store.Dependent{Schema: l.Schema.ID(), Table: l.Schema.Data.Table, Column: l.SQLName})
			}
		}
	}
	return w, nil
}

// column checks an attribute of the document against the schema and
// converts its text to the value to store. Empty text stores NULL.
func (s *Service) column(sc *schemas.Schema, name, text string) (string, any, error) {
	if strings.HasSuffix(name, "-id") {
		l, ok := sc.Data.Link(strings.TrimSuffix(name, "-id"))
		if !ok {
			return "", nil, apperr.Errorf(apperr.Invalid, "%s has no link '%s'.", sc.ID(), apperr.Quote(strings.TrimSuffix(name, "-id"), 64))
		}
		if text == "" || text == "0" {
			return l.SQLName, nil, nil
		}
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil || v < 0 {
			return "", nil, apperr.Errorf(apperr.Invalid, "@%s must be a record id.", name)
		}
		return l.SQLName, v, nil
	}
	a, ok := sc.Data.Attribute(name)
	if !ok {
		return "", nil, apperr.Errorf(apperr.Invalid, "%s has no attribute @%s.", sc.ID(), apperr.Quote(name, 64))
	}
	if text == "" {
		return a.SQLName, nil, nil
	}
	v, err := convert(a, text)
	if err != nil {
		return "", nil, err
	}
	return a.SQLName, v, nil
}

// convert parses text as the attribute's type, the way ACC writes values in
// documents.
func convert(a *schemas.Attribute, text string) (any, error) {
	t := schemas.TypeOf(a.Type)
	if t == nil {
		return nil, apperr.Errorf(apperr.Invalid, "@%s must be of a supported type.", a.Name)
	}
	v, err := t.Parse(text, a.Length)
	var pe *schemas.ParseError
	switch {
	case err == nil:
		return v, nil
	case errors.As(err, &pe) && pe.Length > 0:
		return nil, apperr.Errorf(apperr.Invalid, "@%s is longer than %d characters.", a.Name, pe.Length)
	case pe != nil:
		return nil, apperr.Errorf(apperr.Invalid, "@%s must be %s.", a.Name, pe.Want)
	}
	return nil, err
}
