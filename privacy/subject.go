package privacy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// The subject hash: HMAC-SHA256 under the instance's subject key
// (Config.SubjectKey) of a request's canonical reconciliation value. It is
// stored with the request and outlives the 90-day purge of the value, so
// the DPO can find every request about one person by typing the value —
// matched through the hash, never with LIKE — and the receipt can name the
// person without holding the value. Without the key the hash reveals
// nothing; an attacker with the key can only confirm a guessed value.

// subjectHash is the keyed hash of a canonical value.
func (s *Service) subjectHash(canonical string) string {
	mac := hmac.New(sha256.New, s.cfg.SubjectKey)
	mac.Write([]byte(canonical))
	return hex.EncodeToString(mac.Sum(nil))
}

// RequestQuery filters the request list of the console. Zero fields do not
// filter.
type RequestQuery struct {
	Status     *Status
	Type       *int
	Regulation *int
	// CreatedFrom and CreatedBefore bound the creation time.
	CreatedFrom, CreatedBefore time.Time
	// Subject is a reconciliation value: the requests about that person,
	// under each namespace's match rule, matched exactly through the
	// subject hash.
	Subject       string
	Limit, Offset int
}

// Requests lists the requests that match q, newest first, with their
// total.
func (s *Service) Requests(ctx context.Context, c *session.Caller, q RequestQuery) ([]RequestView, int64, error) {
	if err := requireRight(c); err != nil {
		return nil, 0, err
	}
	f := store.RequestFilter{Type: q.Type, Regulation: q.Regulation, CreatedFrom: q.CreatedFrom,
		CreatedBefore: q.CreatedBefore, Limit: q.Limit, Offset: q.Offset}
	if q.Status != nil {
		f.Status = ptr(q.Status.stored())
	}
	if q.Subject != "" {
		hashes, err := s.subjectHashes(ctx, q.Subject)
		if err != nil {
			return nil, 0, err
		}
		f.SubjectHashes = hashes
	}
	rows, total, err := s.db.FindRequests(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	out := make([]RequestView, 0, len(rows))
	for i := range rows {
		v, err := s.view(ctx, &rows[i], false)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, *v)
	}
	return out, total, nil
}

// subjectHashes are the hashes a typed value has under the namespaces'
// rules (a value that fits no rule has none, and finds nothing).
func (s *Service) subjectHashes(ctx context.Context, value string) ([]string, error) {
	nss, err := s.db.FindNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, ns := range nss {
		c, err := canon.Value(ns.MatchRule, ns.DefaultRegion, value)
		if err != nil {
			continue
		}
		if h := s.subjectHash(c); !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

// AuditChainHead returns the head of the audit chain.
func (s *Service) AuditChainHead(ctx context.Context, c *session.Caller) (AuditHead, error) {
	if err := requireRight(c); err != nil {
		return AuditHead{}, err
	}
	h, err := s.db.FindChainHead(ctx)
	return AuditHead{Seq: h.Seq, Hash: h.Hash}, err
}
