package privacy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// What the web console and the download page read. Every call checks the
// Privacy Data Right, as the SOAP API does.

// RequestView is a request with what an operator needs to see about it.
type RequestView struct {
	Request
	StatusLabel string
	TypeName    string // "access", "delete"
	TypeLabel   string // "Access", "Delete"
	Regulation  string // "GDPR"
	Namespace   string // internal name
	Counts      []TableCount
	Linked      []LinkedCount // the coverage report: linked, not collected or erased
	FileReady   bool          // the data-subject file can be downloaded
	HasReceipt  bool          // a signed erasure receipt was issued (receipt.go), and verifies
	// ReceiptInvalid: the receipt stored for the request is not its valid
	// receipt (changed, or another's); the download refuses it.
	ReceiptInvalid bool
	Purged         bool
	Destroyed      bool // a two-step delete's reviewed file, gone with the delete
	AuditLines     []string
	ConfirmBefore  *time.Time // while a delete waits for its confirmation
}

// Label is the status as the console shows it.
func (s Status) Label() string { return statusEnum[int(s)].label }

// Statuses lists every status in life-cycle order, for filters.
func Statuses() []Status {
	out := make([]Status, 0, len(statusEnum))
	for s := StatusNew; s <= StatusErrorDataNotFound; s++ {
		out = append(out, s)
	}
	return out
}

func (s *Service) view(ctx context.Context, r *store.Request, full bool) (*RequestView, error) {
	v := &RequestView{Request: requestOf(r), StatusLabel: Status(r.Status).Label(),
		TypeName: typeEnum[r.Type].name, TypeLabel: typeEnum[r.Type].label, Regulation: regulationEnum[r.Regulation].label, Purged: r.PurgedAt != nil}
	if ns, err := s.db.FindNamespaceByID(ctx, r.NamespaceID); err == nil {
		v.Namespace = ns.Name
	}
	if v.Status == StatusConfirmDeletePending {
		v.ConfirmBefore = r.ConfirmDeadline
	}
	if !full {
		return v, nil
	}
	counts, err := s.db.FindRequestData(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	v.Counts = tableCountsOf(counts)
	linked, err := s.db.FindLinkedCounts(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	v.Linked = linkedOf(linked)
	if e, err := s.db.FindExport(ctx, r.ID); err == nil && e.Complete && !v.Purged {
		v.FileReady = true
	} else if apperr.CodeOf(err) == apperr.NotFound && fileDestroyed(r) {
		v.Destroyed = true
	}
	switch _, err := s.storedReceipt(ctx, r.ID); {
	case err == nil:
		v.HasReceipt = true
	case apperr.CodeOf(err) == apperr.Conflict:
		v.ReceiptInvalid = true
	case apperr.CodeOf(err) != apperr.NotFound:
		return nil, err
	}
	for _, l := range strings.Split(strings.TrimSpace(r.Audit), "\n") {
		if l != "" {
			v.AuditLines = append(v.AuditLines, l)
		}
	}
	return v, nil
}

// Request returns one request with its audit, counts and file state.
func (s *Service) Request(ctx context.Context, c *session.Caller, id int64) (*RequestView, error) {
	if err := requireRight(c); err != nil {
		return nil, err
	}
	r, err := s.db.FindRequestByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.view(ctx, r, true)
}

// Download opens the data-subject file for an operator and records the
// download in the request's audit (who, from where, when): one line at an
// operator's first download of a file in a clock hour; further downloads
// of it in that hour (a resumed download's Range requests, a browser's
// revalidation) are only counted, and when the hour is over their count is
// written as one more line (SECURITY-CATALOGUE "Audit growth"). The counts
// live in this process: a restart loses at most an hour's repeat count,
// never a first download.
//
// again authenticates the caller anew; the file's reader calls it before
// each chunk it hands on (see Recheck). nil: the caller is not checked
// again.
func (s *Service) Download(ctx context.Context, c *session.Caller, id int64, from string, again Recheck) (*Export, io.ReadSeekCloser, error) {
	if err := requireRight(c); err != nil {
		return nil, nil, err
	}
	e, rd, err := s.openExport(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	rd.still = s.stillAllowed(c, id, again)
	first, err := s.recordDownload(ctx, c, id, false, fmt.Sprintf("File downloaded by operator '%s' from %s.", c.Login, from))
	if err != nil {
		rd.Close()
		return nil, nil, err
	}
	if first {
		s.log.InfoContext(ctx, "privacy file downloaded", "id", id, "operator_id", c.OperatorID, "from", from)
	}
	return e, rd, nil
}

// Recheck authenticates the caller of a download under way again, with
// the credentials of the request that opened it (for the web, its session
// check, which a replica caches a second at most and forgets at once on
// Logoff or an operator's change). A download of a large file may run for
// hours at the slowest pace the web allows: it stops at the next chunk
// once the session or the right has ended, as a new request is refused
// (DESIGN §4: the session is checked on every call).
type Recheck func(ctx context.Context) (*session.Caller, error)

// stillAllowed is the check a download's reader makes before each chunk
// after the first: the caller authenticated again, still holding the
// Privacy Data Right. Its first failure fails the read, and is logged.
func (s *Service) stillAllowed(c *session.Caller, id int64, again Recheck) func(context.Context) error {
	if again == nil {
		return nil
	}
	return func(ctx context.Context) error {
		now, err := again(ctx)
		if err == nil {
			err = requireRight(now)
		}
		switch code := apperr.CodeOf(err); code {
		case "":
		case apperr.BadSession, apperr.Forbidden:
			s.log.WarnContext(ctx, "download stopped: the operator's access has ended", "id", id, "operator_id", c.OperatorID, "code", code)
		default:
			s.log.WarnContext(ctx, "download stopped: the operator's access could not be checked", "id", id, "operator_id", c.OperatorID, "err", err)
		}
		return err
	}
}

// recordDownload writes line, the audit line of an operator's first
// download of a request's file (or receipt) in a clock hour, and counts
// the others, written by FlushDownloadCounts once the hour is over.
func (s *Service) recordDownload(ctx context.Context, c *session.Caller, id int64, receipt bool, line string) (first bool, err error) {
	if err := s.FlushDownloadCounts(ctx); err != nil {
		return false, err
	}
	key := downloadKey{request: id, operator: c.OperatorID, hour: s.cfg.Now().UTC().Truncate(time.Hour), receipt: receipt}
	s.mu.Lock()
	if d := s.downloads[key]; d != nil {
		d.count++
		s.mu.Unlock()
		return false, nil
	}
	s.downloads[key] = &downloadCount{login: c.Login, count: 1}
	s.mu.Unlock()
	if err := s.db.AppendAudit(ctx, id, line); err != nil {
		s.mu.Lock()
		delete(s.downloads, key)
		s.mu.Unlock()
		return false, err
	}
	return true, nil
}

// OpenDownload opens the data-subject file for an operator without
// recording a download: a HEAD, which tells the size and nothing else.
func (s *Service) OpenDownload(ctx context.Context, c *session.Caller, id int64) (*Export, io.ReadSeekCloser, error) {
	if err := requireRight(c); err != nil {
		return nil, nil, err
	}
	return s.OpenExport(ctx, id)
}

// downloadKey is one operator's downloads of one file (or its receipt) in
// one clock hour.
type downloadKey struct {
	request, operator int64
	hour              time.Time
	receipt           bool
}

type downloadCount struct {
	login string
	count int
}

// FlushDownloadCounts writes the repeat-download counts of the hours that
// are over; Download calls it, and so does each workflows run.
func (s *Service) FlushDownloadCounts(ctx context.Context) error {
	hour := s.cfg.Now().UTC().Truncate(time.Hour)
	type line struct {
		key downloadKey
		downloadCount
	}
	var done []line
	s.mu.Lock()
	for k, d := range s.downloads {
		if k.hour.Before(hour) {
			done = append(done, line{k, *d})
			delete(s.downloads, k)
		}
	}
	s.mu.Unlock()
	for i, l := range done {
		if l.count < 2 {
			continue
		}
		what := "File"
		if l.key.receipt {
			what = "Receipt"
		}
		err := s.db.AppendAudit(ctx, l.key.request, fmt.Sprintf("%s downloaded %d more times by operator '%s' in the hour from %s.",
			what, l.count-1, l.login, l.key.hour.Format("2006-01-02 15:04Z")))
		if err != nil && apperr.CodeOf(err) != apperr.NotFound {
			s.mu.Lock() // try again next time
			for _, r := range done[i:] {
				s.downloads[r.key] = &downloadCount{login: r.login, count: r.count}
			}
			s.mu.Unlock()
			return err
		}
	}
	return nil
}

// by names, for the log, who asked for a change: an operator, or the
// command line (c nil), run by whoever holds the database.
func by(c *session.Caller) slog.Attr {
	if c == nil {
		return slog.String("by", "command line")
	}
	return slog.Int64("operator_id", c.OperatorID)
}

// CreateNamespaceAs is CreateNamespace for a logged-on operator (admin only).
func (s *Service) CreateNamespaceAs(ctx context.Context, c *session.Caller, ns Namespace) error {
	if c == nil {
		return apperr.Errorf(apperr.Forbidden, "Only an administrator may create a namespace.")
	}
	return s.CreateNamespace(ctx, c, ns)
}
