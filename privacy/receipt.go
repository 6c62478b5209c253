package privacy

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// An erasure receipt (DESIGN.md §4b "Proof") is a JWS signed with Ed25519
// that a finished request gets: what was asked, what was found, exported
// and deleted per table, how, and the audit chain head at that moment. It
// is verifiable offline with the public key alone (campaign-privacy
// receipt verify). It holds no personal data: the reconciliation value
// appears only as an HMAC under a key derived from the receipt key, so the
// instance can show that a receipt is about a given value, and nobody
// without the key can test guesses against it.

// ReceiptMethod is how a delete erases the subject: the residue purge is
// SQLite's secure_delete and WAL checkpoint, or PostgreSQL's VACUUM FULL.
// ReceiptMethodPlainVacuum says a plain VACUUM (Config.PlainVacuum): the
// freed space is not zeroed. A delete completes, and its receipt is
// signed, only after the purge: the claim residue_purge names it, and its
// audit line comes before the chain head the receipt carries.
const (
	ReceiptMethod            = "row delete + residue purge before completion (residue_purge) + destruction of every file of the subject, with its key"
	ReceiptMethodPlainVacuum = "row delete + VACUUM before completion (freed space not zeroed; residue_purge) + destruction of every file of the subject, with its key"
	// ReceiptMethodStatsNotZeroed: the tables rewritten, but the database
	// role may not rewrite pg_statistic, whose old samples of the erased
	// values are freed without being zeroed.
	ReceiptMethodStatsNotZeroed = "row delete + residue purge before completion (residue_purge; planner statistics freed, not zeroed) + destruction of every file of the subject, with its key"
	// ReceiptMethodUnfinished is an error receipt's: a delete that did
	// not finish completes nothing, and only a completed delete destroys
	// the subject's files; ReceiptMethodUnfinishedFileDestroyed, when the
	// step that ended it destroyed its own reviewed file.
	ReceiptMethodUnfinished              = "row delete, not finished: neither a residue purge nor the destruction of the subject's files is claimed"
	ReceiptMethodUnfinishedFileDestroyed = "row delete, not finished + destruction of its reviewed file, with its key: neither a residue purge nor the destruction of the subject's other files is claimed"
)

// ReceiptTable is one table's share of a request.
type ReceiptTable struct {
	Table    string `json:"table"`
	Exported int64  `json:"exported"`
	Deleted  int64  `json:"deleted"`
}

// ReceiptLinked is one line of the coverage report in a receipt.
type ReceiptLinked struct {
	Table  string `json:"table"`
	Link   string `json:"link"`
	Target string `json:"target"`
	Count  int64  `json:"count"`
}

// ReceiptConfirmation is one round's confirmation of a two-step delete.
type ReceiptConfirmation struct {
	By string `json:"by"` // the operator's login
	At string `json:"at"`
}

// ReceiptClaims are the claims of a receipt.
type ReceiptClaims struct {
	RequestID   int64          `json:"request_id"`
	RequestName string         `json:"request_name"`
	Type        string         `json:"type"`
	Regulation  string         `json:"regulation"`
	Namespace   string         `json:"namespace"`
	Status      string         `json:"status"`
	SubjectHash string         `json:"subject_hash"` // the request's subject hash (subject.go), hex
	Tables      []ReceiptTable `json:"tables"`
	// LinkedNotCollected is the coverage report: rows that refer to the
	// subject through ordinary links, neither collected nor erased.
	LinkedNotCollected []ReceiptLinked `json:"linked_not_collected"`
	// ReviewedSetSHA256 is, for a two-step delete, the SHA-256 of the
	// reviewed set ("schema:id" lines, sorted): the rows the operator
	// confirmed, in every round when new rows sent it back to review,
	// which are the rows the delete removed.
	ReviewedSetSHA256 string `json:"reviewed_set_sha256,omitempty"`
	// ConfirmedBy and ConfirmedAt, for a two-step delete, are the last
	// confirmation's (the round the receipt ends); Confirmations are every
	// round's, in order: each operator confirmed the rows of their round.
	ConfirmedBy   string                `json:"confirmed_by,omitempty"` // the operator's login
	ConfirmedAt   string                `json:"confirmed_at,omitempty"`
	Confirmations []ReceiptConfirmation `json:"confirmations,omitempty"`
	Method        string                `json:"method"`
	// Verification is the result of the sweep after a delete.
	Verification string `json:"verification"`
	// FilePurgedOn is the date (UTC) the cleanup destroys the file and
	// counts: the day their retention ends (completion + Retention), on
	// which its first run purges them (CleanupRequests); a two-step
	// delete's, the day it completed, with the reviewed file.
	FilePurgedOn   string `json:"file_purged_on"`
	AuditChainSeq  int64  `json:"audit_chain_seq"`
	AuditChainHead string `json:"audit_chain_head"`
	// ResiduePurge, on a completed delete's receipt, is the residue purge
	// its run ended with, and when: a delete completes only after it.
	ResiduePurge string `json:"residue_purge,omitempty"`
	jwt.RegisteredClaims
}

// receiptDue reports whether reaching status from the claimed request's
// status finishes the request with something to prove: complete, or an
// error once a delete had started (rows may be gone; the receipt says so).
func receiptDue(req *store.Request, status Status) bool {
	switch status {
	case StatusComplete:
		return true
	case StatusError:
		s := Status(req.Status)
		return s == StatusDeletePending || s == StatusDeleteInProgress
	}
	return false
}

// receiptFunc prepares the receipt of a request whose step ends with upd
// (or, for a delete, with the failed attempt that may replace it): what
// the receipt says is read now, and the returned function signs it inside
// the commit, with the audit chain head right after the request's lines,
// so a request never finishes without its receipt. purge, for a delete
// that completes, is the residue purge it completes after. It returns nil
// when no receipt can be due (or receipts are not configured).
func (s *Service) receiptFunc(ctx context.Context, req *store.Request, upd store.RequestUpdate, purge string) (func(store.RequestUpdate, store.ChainHead, map[string]int64) (string, error), error) {
	if s.cfg.ReceiptKey == nil {
		return nil, nil // receipts not configured (package tests that do not look at them)
	}
	if !receiptDue(req, Status(*upd.Status)) && !receiptDue(req, StatusError) {
		return nil, nil
	}
	ns, err := s.namespaceByID(ctx, req.NamespaceID)
	if err != nil {
		return nil, err
	}
	counts, linked := upd.Counts, upd.Linked
	if counts == nil || linked == nil {
		stored, storedLinked, err := s.records(ctx, req.ID)
		if err != nil {
			return nil, err
		}
		if counts == nil {
			counts = stored
		}
		if linked == nil {
			linked = storedLinked
		}
	}
	// A two-step delete's reviewed set: every round's rows, which its
	// files held.
	var reviewed []store.ReviewedRow
	if req.Type == TypeDelete && req.ConfirmDeletePending {
		if reviewed = upd.Reviewed; reviewed == nil {
			if reviewed, err = s.recordedRows(ctx, req.ID); err != nil {
				return nil, err
			}
		}
		if reviewed == nil {
			reviewed = []store.ReviewedRow{}
		}
	}
	// The file, where one stays after this step (an access request's, the
	// reviewed file of a two-step delete that ends in error), is purged by
	// its creation date (store.FindPurgeable): the receipt names that one.
	var fileCreated *time.Time
	if req.Type == TypeAccess || req.ConfirmDeletePending {
		e, err := s.db.FindExport(ctx, req.ID)
		switch {
		case err == nil:
			fileCreated = &e.Created
		case apperr.CodeOf(err) != apperr.NotFound:
			return nil, err
		}
	}
	// deleted, from the store inside the commit: the rows the request's
	// DELETE statements removed, by table, over all its attempts and
	// rounds — not what the collect counted nor what the delete looked
	// for (a reviewed row someone else deleted first, rows written or gone
	// in between, an attempt that failed after its first deletes).
	return func(applied store.RequestUpdate, head store.ChainHead, deleted map[string]int64) (string, error) {
		// Inside the commit's transaction, once per request (fault tests).
		if err := s.failpoint("batch-item"); err != nil {
			return "", err
		}
		status := Status(*applied.Status)
		if !receiptDue(req, status) {
			return "", nil
		}
		return s.signReceipt(req, status, ns, counts, deleted, linked, reviewed, purge, head, fileCreated, applied.DropExport)
	}, nil
}

// records is what the receipt of request id reports beside its row, as
// its collect recorded it: the per-table counts and the coverage report —
// read with the rest of its claim or batch when they were (withRecords).
func (s *Service) records(ctx context.Context, id int64) ([]store.RequestData, []store.LinkedCount, error) {
	r, err := s.requestRecords(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return r.Counts, r.Linked, nil
}

// recordedRows is the rows of request id's subject a step recorded: a
// two-step delete's reviewed set, or what a one-step delete's attempt
// found.
func (s *Service) recordedRows(ctx context.Context, id int64) ([]store.ReviewedRow, error) {
	r, err := s.requestRecords(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.Rows, nil
}

// requestRecords reads request id's records, or takes them from its
// claim's (withRecords).
func (s *Service) requestRecords(ctx context.Context, id int64) (*store.RequestRecords, error) {
	if claimed, _ := ctx.Value(recordsKey{}).(map[int64]*store.RequestRecords); claimed != nil {
		if r, ok := claimed[id]; ok {
			return r, nil
		}
	}
	read, err := s.db.FindRequestRecords(ctx, []int64{id})
	if err != nil {
		return nil, err
	}
	return read[id], nil
}

type recordsKey struct{}

// withRecords reads the records of the requests ids together, for their
// steps and receipts: three statements where each request alone takes
// as many. Only the worker holding a request changes them, and a step
// that does ends the claim's use of them. If the read fails, each reads
// its own.
func (s *Service) withRecords(ctx context.Context, ids []int64) context.Context {
	read, err := s.db.FindRequestRecords(ctx, ids)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, recordsKey{}, read)
}

// signReceipt signs a request's receipt. counts are what its collect
// found per table; deletedBy, what its deletes removed; reviewed, a
// two-step delete's reviewed set over its rounds (nil otherwise);
// fileDropped, whether the step it ends destroyed the request's file.
func (s *Service) signReceipt(req *store.Request, status Status, ns *Namespace, counts []store.RequestData, deletedBy map[string]int64,
	linked []store.LinkedCount, reviewed []store.ReviewedRow, purge string, head store.ChainHead, fileCreated *time.Time, fileDropped bool) (string, error) {
	now := s.cfg.Now().UTC()
	kept := now // what the cleanup's retention counts from
	if fileCreated != nil && fileCreated.Before(now) {
		kept = fileCreated.UTC()
	}
	subject := s.subjectHash(req.ReconciliationValue)
	if req.SubjectHash != nil {
		subject = *req.SubjectHash
	}
	c := ReceiptClaims{
		RequestID: req.ID, RequestName: req.Name, Type: typeEnum[req.Type].name, Regulation: regulationEnum[req.Regulation].name,
		Namespace: ns.Name, Status: status.String(), SubjectHash: subject,
		Tables:        []ReceiptTable{},
		FilePurgedOn:  kept.Add(s.cfg.Retention).Format("2006-01-02"),
		AuditChainSeq: head.Seq, AuditChainHead: head.Hash,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.cfg.ReceiptIssuer, Subject: req.Name, IssuedAt: jwt.NewNumericDate(now),
			ID: "receipt-" + strconv.FormatInt(req.ID, 10),
		},
	}
	deleted := req.Type == TypeDelete && status == StatusComplete
	if fileDropped || deleted && req.ConfirmDeletePending {
		c.FilePurgedOn = now.Format("2006-01-02") // the reviewed file went with this step
	}
	// exported: an access request's file, what its collect found; a
	// two-step delete's files, one a round, held its reviewed set, whose
	// rows it counts by table (what the collect counts is the last
	// round's only).
	exportedBy := map[string]int64{}
	switch {
	case req.Type == TypeAccess:
		for _, d := range counts {
			exportedBy[d.Schema] = d.RecordCount
		}
	case reviewed != nil:
		for _, r := range reviewed {
			exportedBy[r.Schema]++
		}
	}
	// A delete that failed after it had deleted rows says so too.
	countDeleted := deleted || len(deletedBy) > 0 && status == StatusError
	if !countDeleted {
		deletedBy = nil
	}
	listed := map[string]bool{}
	for _, d := range counts {
		c.Tables = append(c.Tables, ReceiptTable{Table: d.Schema, Exported: exportedBy[d.Schema], Deleted: deletedBy[d.Schema]})
		listed[d.Schema] = true
	}
	// Tables only an earlier round, or only the delete, found rows in
	// (written after the collect).
	others := map[string]bool{}
	for schema := range exportedBy {
		others[schema] = !listed[schema]
	}
	for schema := range deletedBy {
		others[schema] = !listed[schema]
	}
	for _, schema := range slices.Sorted(maps.Keys(others)) {
		if others[schema] {
			c.Tables = append(c.Tables, ReceiptTable{Table: schema, Exported: exportedBy[schema], Deleted: deletedBy[schema]})
		}
	}
	switch {
	case req.Type == TypeAccess:
		c.Method, c.Verification = "export (encrypted file)", "not applicable (access request)"
	case deleted:
		c.Method, c.ResiduePurge = s.receiptMethod(), purge
		c.Verification = fmt.Sprintf("passed: no record of the subject remains in the %d table(s) searched", len(counts))
	default:
		// What was done, not a completed delete's claims: its reviewed
		// file at most is destroyed (the other files of the subject only
		// go with a completed delete), and no purge completes it.
		c.Method = ReceiptMethodUnfinished
		if fileDropped {
			c.Method = ReceiptMethodUnfinishedFileDestroyed
		}
		c.Verification = "failed: the delete did not finish; see the request's audit"
	}
	if req.ConfirmDeletePending {
		c.Confirmations = confirmations(req.Audit)
		if n := len(c.Confirmations); n > 0 {
			c.ConfirmedBy, c.ConfirmedAt = c.Confirmations[n-1].By, c.Confirmations[n-1].At
		}
	}
	c.LinkedNotCollected = []ReceiptLinked{}
	for _, l := range linked {
		c.LinkedNotCollected = append(c.LinkedNotCollected, ReceiptLinked{Table: l.Schema, Link: l.Link, Target: l.Target, Count: l.RecordCount})
	}
	if reviewed != nil {
		c.ReviewedSetSHA256 = reviewedDigest(reviewed)
	}
	return jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(s.cfg.ReceiptKey)
}

// receiptMethod is a delete receipt's method claim on this store and setting.
func (s *Service) receiptMethod() string {
	switch {
	case s.db.Dialect() != store.Postgres:
		return ReceiptMethod
	case s.cfg.PlainVacuum:
		return ReceiptMethodPlainVacuum
	case s.statsNotZeroed.Load():
		return ReceiptMethodStatsNotZeroed
	}
	return ReceiptMethod
}

// confirmations finds who confirmed each round of a two-step delete, and
// when, in the audit text ConfirmDeleteRequest wrote: "<time> Deletion
// confirmed by operator '<login>'.", one line a round. A login is an
// operator's, not a data subject's.
func confirmations(audit string) []ReceiptConfirmation {
	const marker = " Deletion confirmed by operator '"
	var out []ReceiptConfirmation
	for _, l := range strings.Split(audit, "\n") {
		i := strings.Index(l, marker)
		if i < 0 {
			continue
		}
		rest := l[i+len(marker):]
		if j := strings.LastIndex(rest, "'"); j >= 0 {
			out = append(out, ReceiptConfirmation{By: rest[:j], At: l[:i]})
		}
	}
	return out
}

// Receipt returns the stored receipt (a JWS) of a request.
func (s *Service) Receipt(ctx context.Context, id int64) (string, error) {
	return s.db.FindReceipt(ctx, id)
}

// VerifyReceipt checks a receipt's signature against any of keys and
// returns its claims. Any changed byte fails.
func VerifyReceipt(jws string, keys []ed25519.PublicKey) (*ReceiptClaims, error) {
	if len(keys) == 0 {
		return nil, errors.New("no public key to verify with")
	}
	// Compact form only: base64url and two dots. The decoder would skip a
	// line break inside, and a changed byte must fail.
	jws = strings.TrimSpace(jws)
	if strings.ContainsFunc(jws, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) {
		return nil, errors.New("the receipt does not verify: it is not a compact JWS (base64url and dots only)")
	}
	var lastErr error
	for _, k := range keys {
		var c ReceiptClaims
		_, err := jwt.ParseWithClaims(jws, &c, func(*jwt.Token) (any, error) { return k, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}), jwt.WithStrictDecoding())
		if err == nil {
			return &c, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("the receipt does not verify: %w", lastErr)
}

// DownloadReceipt returns a request's receipt for an operator, under the
// file's rules (the Privacy Data Right), and records the download in the
// audit as a file's is: a line at an operator's first download in a clock
// hour, the others counted.
func (s *Service) DownloadReceipt(ctx context.Context, c *session.Caller, id int64, from string) (string, error) {
	if err := requireRight(c); err != nil {
		return "", err
	}
	jws, err := s.storedReceipt(ctx, id)
	if err != nil {
		return "", err
	}
	if _, err := s.recordDownload(ctx, c, id, true, fmt.Sprintf("Receipt downloaded by operator '%s' from %s.", c.Login, from)); err != nil {
		return "", err
	}
	return jws, nil
}

// OpenReceipt returns a request's receipt for an operator without
// recording a download: a HEAD, which tells the size and nothing else.
func (s *Service) OpenReceipt(ctx context.Context, c *session.Caller, id int64) (string, error) {
	if err := requireRight(c); err != nil {
		return "", err
	}
	return s.storedReceipt(ctx, id)
}

// storedReceipt returns request id's stored receipt once it is this
// request's: it verifies with the instance's keys and names the request
// and its status. One who may write the database could otherwise hand
// operators another request's valid receipt as this one's proof.
//
// The receipt is read first: it is written in the commit that sets the
// status it names, so the request read after it has that status.
func (s *Service) storedReceipt(ctx context.Context, id int64) (string, error) {
	jws, err := s.db.FindReceipt(ctx, id)
	if err != nil {
		return "", err
	}
	req, err := s.db.FindRequestByID(ctx, id)
	if err != nil {
		return "", err
	}
	var keys []ed25519.PublicKey
	if s.cfg.ReceiptKey != nil {
		keys = append([]ed25519.PublicKey{s.cfg.ReceiptKey.Public().(ed25519.PublicKey)}, s.cfg.ReceiptPreviousKeys...)
	}
	if _, err := CheckReceipt(id, Status(req.Status), jws, keys); err != nil {
		s.log.ErrorContext(ctx, "stored receipt refused", "id", id, "err", err)
		return "", apperr.Errorf(apperr.Conflict, "The receipt stored for request %d is not its valid receipt; run campaign-privacy audit verify.", id)
	}
	return jws, nil
}

// CheckReceipt verifies jws, stored for request id in status, against
// keys: its signature, and that it is that request's, in that status
// (audit verify, the download). Its errors name the request.
func CheckReceipt(id int64, status Status, jws string, keys []ed25519.PublicKey) (*ReceiptClaims, error) {
	c, err := VerifyReceipt(jws, keys)
	switch {
	case err != nil:
		return nil, fmt.Errorf("request %d: no receipt key of this instance verifies its receipt (CP_RECEIPT_KEY, nor CP_RECEIPT_PREVIOUS_KEYS): "+
			"it was changed, or signed with a key retired since (then list that key's public key in CP_RECEIPT_PREVIOUS_KEYS): %w", id, err)
	case c.RequestID != id:
		return nil, fmt.Errorf("request %d: the receipt stored for it is request %d's", id, c.RequestID)
	case c.Status != status.String():
		return nil, fmt.Errorf("request %d: its receipt says %s, the request is %s", id, c.Status, status)
	}
	return c, nil
}

// reviewedDigest is the SHA-256 of a reviewed set: one "schema:id" line
// per row, sorted, so anyone holding the list can check it.
func reviewedDigest(rows []store.ReviewedRow) string {
	lines := make([]string, len(rows))
	for i, r := range rows {
		lines[i] = r.Schema + ":" + strconv.FormatInt(r.RowID, 10) + "\n"
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "")))
	return hex.EncodeToString(sum[:])
}
