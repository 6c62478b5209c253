package privacy

import (
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// The domain types of the privacy API: what the console, the download page
// and the command line see of requests and namespaces. The store keeps its
// own rows (with the workers' claim and deduplication columns); the
// functions at the end of this file are the one place that maps between
// the two, so a change of the tables stops here.

// Request is a privacy request (schemas nms:gdprRequest and
// nms:privacyRequest).
type Request struct {
	ID                   int64
	Name                 string // "privacyRequest42"
	Label                string
	NamespaceID          int64
	ReconciliationValue  string // "" once purged
	Type                 int    // TypeAccess or TypeDelete
	Regulation           int    // RegulationGDPR, ...
	Status               Status
	ConfirmDeletePending bool
	ConfirmDeadline      *time.Time // while a two-step delete waits for its confirmation
	URLFile              string     // the download URL
	RetryCount           int
	Audit                string // the audit text, one timestamped line per event
	OperatorID           int64  // who created it
	PurgedAt             *time.Time
	Created              time.Time
	LastModified         time.Time
}

// Namespace is how a reconciliation value finds a person
// (nms:privacyNamespace).
type Namespace struct {
	ID                int64
	Name              string
	Label             string
	TargetSchema      string // "nms:recipient"
	ReconciliationKey string // "@email"
	AecID             int64
	MatchRule         string // canon.Exact, canon.Email or canon.Phone
	DefaultRegion     string // the phone rule's region, "US"; "" for +country only
	Canonical         int    // the canon.Version the stored field was rewritten to
	Created           time.Time
	LastModified      time.Time
}

// TableCount is what the collect found in one table (nms:gdprRequestData).
type TableCount struct {
	Schema      string // "nms:broadLogRcp"
	RecordCount int64
}

// AuditHead is the head of the instance's audit chain: how many lines it
// holds and the hash of the last, as `campaign-privacy audit verify`
// prints them and receipts carry them.
type AuditHead struct {
	Seq  int64
	Hash string
}

// requestOf maps a stored request to the domain type.
func requestOf(r *store.Request) Request {
	return Request{
		ID: r.ID, Name: r.Name, Label: r.Label, NamespaceID: r.NamespaceID, ReconciliationValue: r.ReconciliationValue,
		Type: r.Type, Regulation: r.Regulation, Status: Status(r.Status), ConfirmDeletePending: r.ConfirmDeletePending,
		ConfirmDeadline: r.ConfirmDeadline, URLFile: r.URLFile, RetryCount: r.RetryCount, Audit: r.Audit,
		OperatorID: r.OperatorID, PurgedAt: r.PurgedAt, Created: r.Created, LastModified: r.LastModified,
	}
}

// namespaceOf maps a stored namespace to the domain type.
func namespaceOf(ns *store.Namespace) *Namespace {
	return &Namespace{
		ID: ns.ID, Name: ns.Name, Label: ns.Label, TargetSchema: ns.TargetSchema, ReconciliationKey: ns.ReconciliationKey,
		AecID: ns.AecID, MatchRule: ns.MatchRule, DefaultRegion: ns.DefaultRegion, Canonical: ns.Canonical,
		Created: ns.Created, LastModified: ns.LastModified,
	}
}

// namespacesOf maps stored namespaces to the domain type.
func namespacesOf(rows []store.Namespace) []Namespace {
	out := make([]Namespace, len(rows))
	for i := range rows {
		out[i] = *namespaceOf(&rows[i])
	}
	return out
}

// row is the namespace as the store writes it.
func (ns *Namespace) row() *store.Namespace {
	return &store.Namespace{
		ID: ns.ID, Name: ns.Name, Label: ns.Label, TargetSchema: ns.TargetSchema, ReconciliationKey: ns.ReconciliationKey,
		AecID: ns.AecID, MatchRule: ns.MatchRule, DefaultRegion: ns.DefaultRegion, Canonical: ns.Canonical,
		Created: ns.Created, LastModified: ns.LastModified,
	}
}

// tableCountsOf maps the stored per-table counts to the domain type.
func tableCountsOf(rows []store.RequestData) []TableCount {
	out := make([]TableCount, len(rows))
	for i, r := range rows {
		out[i] = TableCount{Schema: r.Schema, RecordCount: r.RecordCount}
	}
	return out
}
