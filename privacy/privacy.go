// Package privacy owns what a privacy request is and what happens to it:
// namespaces (how a reconciliation value finds a person), CreateRequestByName
// and ConfirmDeletePending with their validation, and the status machine.
// The technical workflows that collect and delete the data build on it.
package privacy

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// Config holds the privacy settings; cmd fills it.
type Config struct {
	// Deduplicate makes CreateRequestByName return the id of an identical
	// request still active (same namespace, value, type, regulation,
	// confirmDeletePending) instead of creating a second one. On by default (DESIGN.md §4).
	Deduplicate bool
	// ConfirmWindow is how long a two-step delete waits for its
	// confirmation: 15 days in ACC.
	ConfirmWindow time.Duration
	// ExportKey is the 256-bit master key that wraps each export's data
	// key. It lives outside the database; replicas share it.
	ExportKey []byte
	// PreviousExportKeys still open the files they wrapped: rotate by
	// making the current key a previous one and setting a new ExportKey;
	// files older than Retention are gone, so a key can be retired after it.
	PreviousExportKeys [][]byte
	// Retention is how long collected data is kept: 90 days in ACC.
	Retention time.Duration
	// Schedule is when the workflows run (CP_WORKFLOW_SCHEDULE), nil when
	// not known: a cleanup run purges what the next scheduled run would
	// destroy a date too late (see purgeCutoff).
	Schedule *Schedule
	// ReceiptKey signs the erasure receipts (receipt.go); nil issues none.
	// ReceiptIssuer is their iss claim (the instance name).
	ReceiptKey    ed25519.PrivateKey
	ReceiptIssuer string
	// ReceiptPreviousKeys are the public keys of earlier receipt keys
	// (CP_RECEIPT_PREVIOUS_KEYS): a rotation, which CheckKeys accepts.
	ReceiptPreviousKeys []ed25519.PublicKey
	// Worker names this process in claims; Lease is how long a claim holds
	// before another worker may take the request back.
	Worker string
	Lease  time.Duration
	// MaxAttempts bounds the attempts of a failing request; RetryDelay is
	// the first back-off, doubled at each attempt.
	MaxAttempts int
	RetryDelay  time.Duration
	// DeleteBatch bounds the rows deleted in one transaction.
	DeleteBatch int
	// PlainVacuum makes a delete run end, on PostgreSQL, with a plain
	// VACUUM of the tables it deleted from instead of a VACUUM FULL: no
	// exclusive lock, but the freed space keeps the erased rows' bytes
	// until new rows overwrite them (store.ResiduePurge).
	PlainVacuum bool
	// ResidueWait bounds how long that purge waits for older transactions
	// to end and for the rewrite's lock: 1 minute by default.
	ResidueWait time.Duration
	// Workers is how many requests one workflow run works on at once:
	// 4 on PostgreSQL, 1 on SQLite (one writer at a time) by default.
	Workers int
	// Failpoint, if set, is called at named steps (fault tests): it may
	// stop the process there, or return an error the step then fails with
	// ("export-chunk" before each chunk of a file is stored: a full disk).
	Failpoint func(name string) error
	// Progress, if set, is told each time a workflow finishes a request
	// (moved on or failed), with the workflow's report so far: the
	// command's progress bar.
	Progress func(Report)
	Now      func() time.Time
	Logger   *slog.Logger
	// SubjectKey keys the subject hash (subject.go): 32 bytes that
	// replicas share, kept outside the database (subject.key,
	// CP_SUBJECT_KEY). Empty: a random key for this process alone (tests).
	SubjectKey []byte
	// CreateRate and CreateBurst are the request-creation quota per
	// operator (CP_CREATE_RATE, CP_CREATE_BURST): a token bucket of
	// CreateBurst calls refilled at CreateRate per second, per operator
	// and per replica. A CreateRequestByName beyond it is refused with a
	// Busy fault and changes nothing. Zero takes the defaults (50 per
	// second, burst 500); a negative CreateRate turns the quota off.
	CreateRate  float64
	CreateBurst int
	// OnQuotaRefused, if set, is told each refused call ("requests"): the
	// metrics counter.
	OnQuotaRefused func(quota string)
	// Metrics records workflow runs, rows exported and deleted, and file
	// bytes written; nil records nothing.
	Metrics *metrics.Metrics
}

// The request-creation quota's defaults: far above a person or an
// integration sending its requests as they come, below a flood.
const (
	DefaultCreateRate  = 50
	DefaultCreateBurst = 500
)

// Service implements the privacy request API.
type Service struct {
	db       *store.DB
	registry *schemas.Registry
	cfg      Config
	log      *slog.Logger
	// randomSubjectKey: Config gave no subject key, New drew one for this
	// process alone (tests); CheckKeys does not record it.
	randomSubjectKey bool
	// statsNotZeroed: the database role may not rewrite pg_statistic
	// (Setup), so a purge frees the erased values' old samples there
	// without zeroing them, and the receipts say so.
	statsNotZeroed atomic.Bool

	mu     sync.Mutex
	graphs map[string]*graph // traversal graph per target schema

	touched  touchedTables // tables the running delete removed rows from
	renewing sync.Mutex    // one renewal of the deleted requests' claims at a time (renewDeleted)

	downloads map[downloadKey]*downloadCount // under mu: this hour's repeat downloads (views.go)

	runs sync.WaitGroup // workflow runs started over SOAP (technical.go)
	// runsDone ends when StopWorkflows is called: the runs started over
	// SOAP stop with it.
	runsDone context.Context
	stopRuns context.CancelFunc

	creates map[int64]*rate.Limiter // under mu: the request-creation quota per operator
	// namespaces caches the namespaces CreateRequestByName reads, by
	// name. A cached copy is only a guess: the create batch checks it
	// against the stored row (store.ErrNamespaceChanged), and the call is
	// retried with a fresh read.
	namespaces sync.Map // string → *Namespace
}

// Validate checks the settings that cannot work together (unset ones take
// their defaults). A retention shorter than the confirmation window would
// purge the file of a delete still waiting for its review.
func (c Config) Validate() error {
	window, retention := c.ConfirmWindow, c.Retention
	if window <= 0 {
		window = defaultConfirmWindow
	}
	if retention <= 0 {
		retention = defaultRetention
	}
	if retention < window {
		return fmt.Errorf("CP_RETENTION (%s) is shorter than the confirmation window of two-step deletes (ConfirmWindow, %s): a request waiting for its confirmation would lose its file", retention, window)
	}
	return nil
}

// ACC's defaults: 15 days to confirm a delete, 90 days of retention.
const (
	defaultConfirmWindow = 15 * 24 * time.Hour
	defaultRetention     = 90 * 24 * time.Hour
)

// New returns a Service.
func New(db *store.DB, registry *schemas.Registry, cfg Config) *Service {
	if cfg.ConfirmWindow <= 0 {
		cfg.ConfirmWindow = defaultConfirmWindow
	}
	if cfg.Retention <= 0 {
		cfg.Retention = defaultRetention
	}
	if cfg.Worker == "" {
		host, _ := os.Hostname()
		cfg.Worker = fmt.Sprintf("%s:%d:%x", host, os.Getpid(), randomUint32())
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 15 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Minute
	}
	if cfg.DeleteBatch <= 0 {
		cfg.DeleteBatch = 10_000
	}
	if cfg.ResidueWait <= 0 {
		cfg.ResidueWait = time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
		if db.Dialect() == store.Postgres {
			cfg.Workers = 4
		}
	}
	if cfg.CreateRate == 0 {
		cfg.CreateRate = DefaultCreateRate
	}
	if cfg.CreateBurst <= 0 {
		cfg.CreateBurst = DefaultCreateBurst
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	randomSubjectKey := len(cfg.SubjectKey) == 0
	if randomSubjectKey {
		cfg.SubjectKey = make([]byte, 32)
		_, _ = rand.Read(cfg.SubjectKey)
	}
	runsDone, stopRuns := context.WithCancel(context.Background())
	return &Service{db: db, registry: registry, cfg: cfg, log: cfg.Logger, randomSubjectKey: randomSubjectKey,
		graphs: map[string]*graph{}, downloads: map[downloadKey]*downloadCount{},
		creates: map[int64]*rate.Limiter{}, runsDone: runsDone, stopRuns: stopRuns}
}

func randomUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// requireRight checks the Privacy Data Right (admin implies it).
func requireRight(c *session.Caller) error { return session.RequirePrivacyRight(c) }

// CreateRequest are the parameters of CreateRequestByName.
type CreateRequest struct {
	NamespaceName        string
	ReconciliationValue  string
	Type                 int64
	ConfirmDeletePending bool
	Regulation           int64 // 0 = GDPR, as ACC before 20.2
	// DownloadURL is the prefix of @urlFile, "https://host/nms/gdpr.jssp?id=".
	DownloadURL string
}

// CreateRequestByName validates and records a request, returning its id.
// Invalid input changes nothing. With deduplication on, an identical
// request still active gets its existing id back.
func (s *Service) CreateRequestByName(ctx context.Context, c *session.Caller, in CreateRequest) (int64, error) {
	if err := requireRight(c); err != nil {
		return 0, err
	}
	if err := s.createAllowed(ctx, c.OperatorID); err != nil {
		return 0, err
	}
	if in.Type != TypeAccess && in.Type != TypeDelete {
		return 0, apperr.Errorf(apperr.Invalid, "The type must be 1 (access) or 2 (delete).")
	}
	regulation := in.Regulation
	if regulation == 0 {
		regulation = RegulationGDPR
	}
	if _, ok := regulationEnum[int(regulation)]; !ok {
		return 0, apperr.Errorf(apperr.Invalid, "The regulation must be 1 (GDPR), 2 (CCPA), 3 (PDPA) or 4 (LGPD).")
	}
	id, err := s.createRequest(ctx, c, in, regulation, true)
	if errors.Is(err, store.ErrNamespaceChanged) {
		// The cached namespace was stale: once more, read afresh.
		id, err = s.createRequest(ctx, c, in, regulation, false)
	}
	return id, err
}

// createRequest is CreateRequestByName after the checks that need no
// namespace; cached says whether the namespace may come from the cache.
func (s *Service) createRequest(ctx context.Context, c *session.Caller, in CreateRequest, regulation int64, cached bool) (int64, error) {
	if !cached {
		s.namespaces.Delete(in.NamespaceName)
	}
	ns, attr, err := s.namespace(ctx, in.NamespaceName)
	if err != nil {
		return 0, err
	}
	value, err := CheckReconciliationValue(in.ReconciliationValue, attr, ns)
	if err != nil {
		return 0, err
	}
	req := &store.Request{
		NamespaceID:          ns.ID,
		ReconciliationValue:  value,
		Type:                 int(in.Type),
		Regulation:           int(regulation),
		Status:               StatusNew.stored(),
		ConfirmDeletePending: in.ConfirmDeletePending,
		OperatorID:           c.OperatorID,
		SubjectHash:          ptr(s.subjectHash(value)),
		Namespace:            ns.row(),
	}
	if s.cfg.Deduplicate {
		// confirmDeletePending is part of a delete request: a one-step
		// delete is not the same request as one waiting for a review. An
		// access request is the same with or without it (the console's
		// box is checked by default, ACC's clients send false).
		twoStep := in.ConfirmDeletePending && in.Type == TypeDelete
		sum := sha256.Sum256([]byte(fmt.Sprintf("%d\x00%d\x00%d\x00%t\x00%s", ns.ID, in.Type, regulation, twoStep, value)))
		key := hex.EncodeToString(sum[:])
		req.DedupeKey = &key
	}
	id, existing, err := s.db.CreateRequest(ctx, req, in.DownloadURL, fmt.Sprintf("Request created by operator '%s'.", c.Login))
	if err != nil {
		return 0, err
	}
	s.log.InfoContext(ctx, "privacy request", "id", id, "existing", existing, "type", typeEnum[int(in.Type)].name,
		"regulation", regulationEnum[int(regulation)].name, "namespace", ns.Name, "operator_id", c.OperatorID)
	return id, nil
}

// createAllowed takes one call from the operator's request-creation quota.
// The log line names the operator id only: no value, no login.
func (s *Service) createAllowed(ctx context.Context, operatorID int64) error {
	if s.cfg.CreateRate < 0 {
		return nil
	}
	s.mu.Lock()
	l := s.creates[operatorID]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(s.cfg.CreateRate), s.cfg.CreateBurst)
		s.creates[operatorID] = l
	}
	s.mu.Unlock()
	if l.AllowN(s.cfg.Now(), 1) {
		return nil
	}
	s.log.WarnContext(ctx, "request quota: CreateRequestByName refused", "operator_id", operatorID,
		"rate", s.cfg.CreateRate, "burst", s.cfg.CreateBurst)
	s.cfg.Metrics.QuotaRefused("requests")
	if s.cfg.OnQuotaRefused != nil {
		s.cfg.OnQuotaRefused("requests")
	}
	return apperr.Errorf(apperr.Busy, "Too many privacy requests created by this operator: at most %g per second (bursts of %d). Try again later.",
		s.cfg.CreateRate, s.cfg.CreateBurst)
}

// ConfirmDeletePending confirms a two-step delete: only a request waiting
// for its confirmation, within the confirm window, moves on to deletion.
// It confirms whichever review round is waiting: ACC's method names no
// round.
func (s *Service) ConfirmDeletePending(ctx context.Context, c *session.Caller, id int64) error {
	return s.confirm(ctx, c, id, nil)
}

// ConfirmRound confirms the review round whose confirm deadline is round
// (RequestView.ConfirmBefore, as the caller showed it). A request sent
// back for review since (a new round, a new file) is not confirmed: the
// store's update checks the round, so a confirmation that read the old
// round just before a delete run cannot confirm the new one.
func (s *Service) ConfirmRound(ctx context.Context, c *session.Caller, id int64, round time.Time) error {
	return s.confirm(ctx, c, id, &round)
}

func (s *Service) confirm(ctx context.Context, c *session.Caller, id int64, round *time.Time) error {
	if err := requireRight(c); err != nil {
		return err
	}
	if id <= 0 {
		return apperr.Errorf(apperr.Invalid, "The privacy request id must be a positive integer.")
	}
	moved, err := s.db.ConfirmDeleteRequest(ctx, id, round, StatusConfirmDeletePending.stored(), StatusDeletePending.stored(),
		fmt.Sprintf("Deletion confirmed by operator '%s'.", c.Login))
	if err != nil {
		return err
	}
	if moved {
		s.log.InfoContext(ctx, "privacy request delete confirmed", "id", id, "operator_id", c.OperatorID)
		return nil
	}
	req, err := s.db.FindRequestByID(ctx, id)
	if err != nil {
		return err
	}
	if Status(req.Status) != StatusConfirmDeletePending {
		return apperr.Errorf(apperr.Invalid, "The privacy request %d is not waiting for a delete confirmation (status %s).", id, Status(req.Status))
	}
	if round != nil && (req.ConfirmDeadline == nil || !req.ConfirmDeadline.Equal(*round)) {
		return apperr.Errorf(apperr.Conflict, "The privacy request %d was sent back for review after this confirmation's round: check its new file, then confirm again. Nothing was deleted.", id)
	}
	return apperr.Errorf(apperr.Invalid, "The confirmation window of privacy request %d has closed.", id)
}

// namespace finds a namespace and the attribute its reconciliation key names.
func (s *Service) namespace(ctx context.Context, name string) (*Namespace, *schemas.Attribute, error) {
	if name == "" || len(name) > 64 {
		return nil, nil, apperr.Errorf(apperr.Invalid, "The namespace name must have 1 to 64 characters.")
	}
	ns, err := s.namespaceByName(ctx, name)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil, apperr.Errorf(apperr.Invalid, "The namespace '%s' does not exist.", printable(name))
	} else if err != nil {
		return nil, nil, err
	}
	attr, err := s.reconciliationAttribute(ns.TargetSchema, ns.ReconciliationKey)
	if err != nil {
		return nil, nil, err
	}
	return ns, attr, nil
}

// namespaceByName returns a namespace from the cache, or reads it. Its
// rule may change meanwhile (another process): CreateRequest checks the
// copy it was given against the stored row, once per batch.
func (s *Service) namespaceByName(ctx context.Context, name string) (*Namespace, error) {
	if ns, ok := s.namespaces.Load(name); ok {
		return ns.(*Namespace), nil
	}
	ns, err := s.db.FindNamespaceByName(ctx, name)
	if err != nil {
		return nil, err
	}
	n := namespaceOf(ns)
	s.namespaces.Store(name, n)
	return n, nil
}

// reconciliationAttribute resolves "@email" on the target schema.
func (s *Service) reconciliationAttribute(target, key string) (*schemas.Attribute, error) {
	sc, ok := s.registry.Schema(target)
	if !ok || sc.Data == nil || sc.Data.View {
		return nil, apperr.Errorf(apperr.Invalid, "The target schema '%s' is not a data schema.", printable(target))
	}
	attr, ok := sc.Data.Attribute(strings.TrimPrefix(key, "@"))
	if !strings.HasPrefix(key, "@") || !ok || attr.PK {
		return nil, apperr.Errorf(apperr.Invalid, "The reconciliation key '%s' is not an attribute of %s.", printable(key), target)
	}
	if attr.Type != schemas.TypeString {
		return nil, apperr.Errorf(apperr.Invalid, "The reconciliation key '%s' must be a string attribute.", key)
	}
	return attr, nil
}

// MaxReconciliationBytes bounds a reconciliation value whatever its field.
const MaxReconciliationBytes = 1024

// CheckReconciliationValue returns the value to store and match exactly,
// or an Invalid error. The value is brought to the canonical form of the
// namespace's match rule (canon.Value: NFC, then case-folded for email,
// E.164 for phone — the form Write stores the field in); it may not
// be empty, carry control or invisible formatting characters (bidi
// overrides, zero-width), start or end with spaces, exceed the field, or
// consist only of wildcard characters: it is always matched with "=", never
// as a pattern, so "%" would find nobody — refusing it says so at once.
func CheckReconciliationValue(v string, attr *schemas.Attribute, ns *Namespace) (string, error) {
	if v == "" {
		return "", apperr.Errorf(apperr.Invalid, "The reconciliation value is empty.")
	}
	if len(v) > MaxReconciliationBytes {
		return "", apperr.Errorf(apperr.Invalid, "The reconciliation value is longer than %d bytes.", MaxReconciliationBytes)
	}
	if strings.TrimSpace(v) != v {
		return "", apperr.Errorf(apperr.Invalid, "The reconciliation value starts or ends with white space.")
	}
	onlyWild := true
	for _, r := range v {
		// An invisible format character is refused; a visible one (U+0600
		// ARABIC NUMBER SIGN) is kept by canon.Text, so asking with it
		// must be possible.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) && canon.Invisible(r) {
			return "", apperr.Errorf(apperr.Invalid, "The reconciliation value contains a control or formatting character.")
		}
		if !strings.ContainsRune("%_*?", r) {
			onlyWild = false
		}
	}
	if onlyWild {
		return "", apperr.Errorf(apperr.Invalid, "The reconciliation value is only wildcard characters; values are matched exactly.")
	}
	// What the caller typed is refused above rather than cleaned: a
	// request carries no invisible characters. Canonical form then matches
	// the stored values, which Write and the rewrite at start cleaned.
	rule, region := canon.Exact, ""
	if ns != nil {
		rule, region = ruleName(ns), ns.DefaultRegion
	}
	v, err := canon.Value(rule, region, v)
	if err != nil {
		return "", apperr.Errorf(apperr.Invalid, "The reconciliation value does not fit the namespace's %s rule: %s.", rule, err)
	}
	if attr != nil && attr.Length > 0 && utf8.RuneCountInString(v) > attr.Length {
		return "", apperr.Errorf(apperr.Invalid, "The reconciliation value is longer than the %d characters of the field.", attr.Length)
	}
	return v, nil
}

// printable shortens and cleans a caller-given name before it is echoed in
// a fault detail.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '?'
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}
