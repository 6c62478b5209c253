// Package web serves what people open in a browser: the JSSP-style
// download /nms/gdpr.jssp?id=N of a request's data-subject file, the
// "DOWNLOAD GDPR DATA" page of Adobe's documentation, and the privacy
// console (logon, request list and detail, new request, confirm delete,
// namespaces, run the workflows).
//
// Everything here is behind the same three gates, checked in this order:
// the client address must be inside the security zone (CP_ALLOWED_SUBNETS,
// X-Forwarded-For believed only from CP_TRUSTED_PROXIES), the caller must be
// logged on, and hold the Privacy Data Right. Errors are translated to HTTP
// statuses once, in fail.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Cookie names. The session token travels in ACC's own __sessiontoken
// cookie, so a session opened through SOAP works for downloads too; the
// security token, in a cookie of its own, is echoed in every form (CSRF).
const (
	sessionCookie  = session.SessionCookie
	securityCookie = "cp_security"
)

// Config holds the web settings; cmd fills it.
type Config struct {
	Zone netzone.Zone
	// Revision is the build's short VCS revision, shown in every page's
	// footer (the same as /r/test and serverInfo's commitId).
	Revision string
	// Workflows runs the technical workflows for the console's admin button.
	Workflows func(ctx context.Context) ([]privacy.Report, error)
	Now       func() time.Time
	Logger    *slog.Logger
	// Metrics counts the bytes of data-subject files sent; nil counts
	// nothing.
	Metrics *metrics.Metrics
	// Downloads bounds the data-subject files being sent (SECURITY-
	// CATALOGUE "Slow readers"); zero fields take the defaults.
	Downloads DownloadLimits
}

// DownloadLimits bound the downloads in flight: at most Total at once and
// PerOperator per operator (more get 503 and Retry-After), and a reader
// that takes less than MinRate bytes per second for longer than Stall is
// dropped.
type DownloadLimits struct {
	Total       int           // default 64
	PerOperator int           // default 4
	MinRate     int64         // bytes per second; default 16 KiB/s
	Stall       time.Duration // default 10 s
}

// Server serves the web pages.
type Server struct {
	cfg      Config
	sessions *session.Service
	privacy  *privacy.Service
	pages    *template.Template
	log      *slog.Logger

	mu      sync.Mutex
	lastRun string        // the report of the last workflows run, for its notice
	sending map[int64]int // downloads in flight by operator
	total   int           // downloads in flight
}

// New returns a Server.
func New(cfg Config, sessions *session.Service, priv *privacy.Service) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &cfg.Downloads
	if d.Total <= 0 {
		d.Total = 64
	}
	if d.PerOperator <= 0 {
		d.PerOperator = 4
	}
	if d.MinRate <= 0 {
		d.MinRate = 16 << 10
	}
	if d.Stall <= 0 {
		d.Stall = 10 * time.Second
	}
	pages := template.Must(template.New("").Funcs(template.FuncMap{
		"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"add":  func(a, b int) int { return a + b },
		"pager": func(p page, to int, label string) pagerLink {
			return pagerLink{Page: p, To: to, Label: label}
		},
	}).ParseFS(assets, "templates/*.html"))
	return &Server{cfg: cfg, sessions: sessions, privacy: priv, pages: pages, log: cfg.Logger, sending: map[int64]int{}}
}

// Register mounts the web routes on mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /nms/gdpr.jssp", s.gate(s.handleFile, false))
	mux.HandleFunc("GET /nl/jsp/logon.jsp", s.zoned(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/privacy/logon?target="+url.QueryEscape(safeTarget(r.URL.Query().Get("target"))), http.StatusFound)
	}))
	mux.HandleFunc("GET /privacy/static/app.css", s.zoned(s.handleCSS))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /privacy/logon", s.zoned(s.handleLogonForm))
	mux.HandleFunc("POST /privacy/logon", s.zoned(s.handleLogon))
	mux.HandleFunc("POST /privacy/logoff", s.signedIn(s.handleLogoff, true, false))
	mux.HandleFunc("GET /privacy/{$}", s.gate(s.handleList, false))
	mux.HandleFunc("POST /privacy/{$}", s.gate(s.handleList, true)) // a search: its subject never in an address
	mux.HandleFunc("GET /privacy", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/privacy/", http.StatusFound) })
	mux.HandleFunc("GET /privacy/requests/{id}", s.gate(s.handleDetail, false))
	mux.HandleFunc("POST /privacy/requests/{id}/confirm", s.gate(s.handleConfirm, true))
	mux.HandleFunc("GET /privacy/new", s.gate(s.handleNewForm, false))
	mux.HandleFunc("POST /privacy/new", s.gate(s.handleNew, true))
	mux.HandleFunc("GET /privacy/namespaces", s.gate(s.handleNamespaces, false))
	mux.HandleFunc("POST /privacy/namespaces", s.gate(s.handleNewNamespace, true))
	mux.HandleFunc("POST /privacy/workflows", s.gate(s.handleRunWorkflows, true))
	mux.HandleFunc("GET /privacy/download", s.gate(s.handleDownloadPage, false))
}

// securityHeaders are sent with every page and file.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}

type ctxKey int

const (
	callerKey ctxKey = iota
	addrKey
	csrfKey
	credKey
)

// maxFormBytes bounds the body of a console form post.
const maxFormBytes = 16 << 10

// routeOf is the route a request matched ("GET /privacy/requests/{id}"),
// for the log: the path itself is the caller's text, and may hold
// anything, personal data too.
func routeOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unmatched"
}

// zoned refuses clients outside the security zone with 403.
func (s *Server) zoned(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		addr, ok := s.cfg.Zone.Allows(r)
		if !ok {
			s.log.InfoContext(r.Context(), "web request outside the security zone", "path", routeOf(r), "addr", addr.String())
			http.Error(w, "Forbidden: your address is not allowed to reach this page.", http.StatusForbidden)
			return
		}
		next := context.WithValue(r.Context(), addrKey, addr)
		h(w, r.WithContext(next))
	}
}

// gate adds the session: no session → the logon page; a form post must
// carry the security token (CSRF); the caller must hold the Privacy Data
// Right.
func (s *Server) gate(h http.HandlerFunc, post bool) http.HandlerFunc {
	return s.signedIn(h, post, true)
}

// signedIn is gate, the right required or not: any operator may log off.
func (s *Server) signedIn(h http.HandlerFunc, post, needRight bool) http.HandlerFunc {
	return s.zoned(func(w http.ResponseWriter, r *http.Request) {
		cred := session.ReadCredentials(r, session.Envelope{})
		cred.SafeRead, cred.From = !post, addrOf(r).String()
		if post {
			// Read before the caller is known: bounded (a console form is
			// a few fields).
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			cred.SecurityToken = r.PostFormValue("csrf")
			// A form is a browser's, with the session of its logon: an
			// IMS token in Authorization (which a proxy in front may
			// add to every browser request) has no security token to
			// check the form against.
			cred.Bearer = false
			if cred.SecurityToken == "" {
				http.Error(w, "Forbidden: the form is missing its security token. Reload the page.", http.StatusForbidden)
				return
			}
		}
		caller, err := s.sessions.Authenticate(r.Context(), cred)
		if err != nil {
			if apperr.CodeOf(err) == apperr.BadSession && !post {
				// safeTarget, as the logon page will: a subject never in
				// the address (handleList).
				http.Redirect(w, r, "/privacy/logon?target="+url.QueryEscape(safeTarget(r.URL.RequestURI())), http.StatusFound)
				return
			}
			s.fail(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), callerKey, caller)
		ctx = context.WithValue(ctx, credKey, cred) // a download checks them again as it goes
		if c, err := r.Cookie(securityCookie); err == nil {
			ctx = context.WithValue(ctx, csrfKey, c.Value)
		}
		r = r.WithContext(ctx)
		if needRight && session.RequirePrivacyRight(caller) != nil {
			s.log.InfoContext(r.Context(), "web request without the privacy right", "operator_id", caller.OperatorID, "path", routeOf(r))
			s.render(w, r, http.StatusForbidden, "error.html", page{Title: "Access denied", Caller: caller,
				Detail: "Your operator does not hold the Privacy Data Right (privacyRight)."})
			return
		}
		h(w, r)
	})
}

func callerOf(r *http.Request) *session.Caller {
	c, _ := r.Context().Value(callerKey).(*session.Caller)
	return c
}

func addrOf(r *http.Request) netip.Addr {
	a, _ := r.Context().Value(addrKey).(netip.Addr)
	return a
}

// httpStatus is the one table from error codes to the web's HTTP statuses;
// a code not in it is a 500, logged.
var httpStatus = map[apperr.Code]int{
	apperr.NotFound:   http.StatusNotFound,
	apperr.Forbidden:  http.StatusForbidden,
	apperr.BadSession: http.StatusForbidden,
	apperr.BadLogon:   http.StatusForbidden,
	apperr.Invalid:    http.StatusBadRequest,
	apperr.Conflict:   http.StatusBadRequest,
	apperr.Busy:       http.StatusServiceUnavailable,
}

// fail is the one translation of errors to HTTP statuses for the web. A
// purged request's file, or a delete's reviewed file, is gone for good:
// 410.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	msg := apperr.MessageOf(err)
	status, ok := httpStatus[apperr.CodeOf(err)]
	switch {
	case errors.Is(err, privacy.ErrPurged), errors.Is(err, privacy.ErrDestroyed), errors.Is(err, privacy.ErrErased):
		status = http.StatusGone
	case !ok:
		status = http.StatusInternalServerError
		s.log.ErrorContext(r.Context(), "web request failed", "path", routeOf(r), "err", err)
	}
	s.render(w, r, status, "error.html", page{Title: http.StatusText(status), Caller: callerOf(r), Detail: msg})
}

// handleFile is /nms/gdpr.jssp?id=N: the data-subject file, streamed with
// Range and If-None-Match support. The file name carries no personal data.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	if ids := r.URL.Query()["id"]; len(ids) > 1 {
		s.fail(w, r, apperr.Errorf(apperr.Invalid, "The id is given more than once."))
		return
	}
	id, err := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, r, apperr.Errorf(apperr.NotFound, "Unknown privacy request."))
		return
	}
	if r.URL.Query().Get("receipt") == "1" {
		s.handleReceipt(w, r, id)
		return
	}
	open := func() (*privacy.Export, io.ReadSeekCloser, error) {
		if r.Method == http.MethodHead { // the size, not a download
			return s.privacy.OpenDownload(r.Context(), callerOf(r), id)
		}
		// The file's reader authenticates the caller again before each
		// chunk: a download stops when the operator's access ends.
		cred, _ := r.Context().Value(credKey).(session.Credentials)
		again := func(ctx context.Context) (*session.Caller, error) { return s.sessions.Authenticate(ctx, cred) }
		return s.privacy.Download(r.Context(), callerOf(r), id, addrOf(r).String(), again)
	}
	if r.Method != http.MethodHead {
		release, ok := s.startDownload(callerOf(r).OperatorID)
		if !ok {
			s.log.WarnContext(r.Context(), "download refused", "reason", "too many downloads at once", "operator_id", callerOf(r).OperatorID)
			w.Header().Set("Retry-After", "10")
			s.fail(w, r, apperr.Errorf(apperr.Busy, "Too many downloads at once. Try again when one has finished."))
			return
		}
		defer release()
	}
	export, opened, err := open()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rd := &closeAfterRead{rd: opened}
	defer rd.Close()
	h := w.Header()
	h.Set("Content-Type", "text/xml; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="privacyRequest%d.xml"`, id))
	h.Set("ETag", fmt.Sprintf(`"cp-%d-%d-%d"`, id, export.Created.UnixNano(), export.Size))
	if rh := r.Header.Get("Range"); rh != "" {
		if limited, keep := limitRanges(rh, export.Size); keep {
			r.Header.Set("Range", limited)
		} else {
			r.Header.Del("Range")
		}
	}
	counted := &countingReader{ReadSeeker: rd}
	http.ServeContent(&paced{ResponseWriter: w, rc: http.NewResponseController(w), limits: s.cfg.Downloads}, r, "", export.Created, counted)
	s.cfg.Metrics.Downloaded(counted.n.Load())
}

// countingReader counts the bytes read through it: what ServeContent sent
// of the file (a range, or nothing for a 304).
type countingReader struct {
	io.ReadSeeker
	n atomic.Int64 // written by ServeContent's multipart goroutine
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadSeeker.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// closeAfterRead closes the file only between its reads: for a multipart
// answer ServeContent reads it in a goroutine of its own, which may still
// run when the client has gone and the handler returns; Close gives the
// reader's buffers back to a pool the next download takes from. Reads
// after Close fail.
type closeAfterRead struct {
	mu     sync.Mutex
	rd     io.ReadSeekCloser
	closed bool
}

var errFileClosed = errors.New("the file was closed")

func (c *closeAfterRead) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errFileClosed
	}
	return c.rd.Read(p)
}

func (c *closeAfterRead) Seek(offset int64, whence int) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errFileClosed
	}
	return c.rd.Seek(offset, whence)
}

func (c *closeAfterRead) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.rd.Close()
}

// startDownload takes a download slot for an operator, if one is free.
func (s *Server) startDownload(operator int64) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.cfg.Downloads.Total || s.sending[operator] >= s.cfg.Downloads.PerOperator {
		return nil, false
	}
	s.total++
	s.sending[operator]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.total--
		if s.sending[operator]--; s.sending[operator] <= 0 {
			delete(s.sending, operator)
		}
	}, true
}

// paced gives each write of a download a deadline: Stall plus the time
// the bytes take at MinRate. A reader slower than that lets the socket's
// buffers fill, the write misses its deadline and the connection is
// dropped, freeing the download's slot (instead of the server's former
// 10 minutes per file, whatever the pace).
type paced struct {
	http.ResponseWriter
	rc     *http.ResponseController
	limits DownloadLimits
}

func (p *paced) Write(b []byte) (int, error) {
	d := p.limits.Stall + time.Duration(int64(len(b))*int64(time.Second)/p.limits.MinRate)
	_ = p.rc.SetWriteDeadline(time.Now().Add(d))
	return p.ResponseWriter.Write(b)
}

// ReadFrom sends the file in writes of up to a whole chunk of it (256 KiB),
// where io.Copy (ServeContent's) would write 32 KiB at a time: eight times
// fewer write system calls and deadlines a download.
func (p *paced) ReadFrom(src io.Reader) (int64, error) {
	buf := sendBuffers.Get().(*[]byte)
	defer func() {
		clear(*buf) // the file's text is a subject's data
		sendBuffers.Put(buf)
	}()
	return io.CopyBuffer(writerOnly{p}, src, *buf)
}

// sendBuffers are paced.ReadFrom's buffers, one a download while it sends.
var sendBuffers = sync.Pool{New: func() any { b := make([]byte, privacy.ChunkSize); return &b }}

// writerOnly hides paced's ReadFrom from io.CopyBuffer, which would call it
// again.
type writerOnly struct{ io.Writer }

// Unwrap lets http.ResponseController reach the connection.
func (p *paced) Unwrap() http.ResponseWriter { return p.ResponseWriter }

func (s *Server) handleCSS(w http.ResponseWriter, r *http.Request) {
	data, _ := assets.ReadFile("static/app.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(data)
}

// page is what every template gets.
type page struct {
	Title    string
	Caller   *session.Caller
	CSRF     string
	Error    string // a message above the content (form errors)
	Detail   string // the explanation on an error page
	Notice   string
	Target   string
	Login    string
	Data     any
	IsAdmin  bool
	CanUse   bool // the caller holds the Privacy Data Right
	Statuses []privacy.Status
	Revision string
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if p.CSRF == "" {
		p.CSRF, _ = r.Context().Value(csrfKey).(string)
	}
	if p.Caller != nil {
		p.IsAdmin = slices.Contains(p.Caller.Rights, session.RightAdmin)
		p.CanUse = p.Caller.HasRight(session.RightPrivacy)
	}
	p.Revision = s.cfg.Revision
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.pages.ExecuteTemplate(w, name, p); err != nil {
		s.log.ErrorContext(r.Context(), "template failed", "page", name, "err", err)
	}
}

// home is where a logon goes when its target is missing or refused.
const home = "/privacy/"

// targetRoutes are the pages a post-logon redirect may lead to: the
// console's pages and the download, nothing else.
var targetRoutes = regexp.MustCompile(`^/privacy/(requests/[0-9]{1,19}|new|namespaces|download)?$|^/nms/gdpr\.jssp$`)

// safeTarget keeps a post-logon redirect on this site (SECURITY-CATALOGUE
// "Open redirect after logon"). Browsers read a Location with the WHATWG
// URL parser, which drops TAB, CR and LF anywhere, trims C0 controls and
// spaces at both ends and reads a backslash as a slash: "/\t/evil.example"
// is "//evil.example", another host. So a target is accepted only if it has
// none of those bytes (nor any other control, space or non-ASCII byte), is
// a path that starts with exactly one slash, has no encoded slashes and
// names exactly a known console or download route. The
// redirect is rebuilt from the parsed path and a re-encoded query, never
// copied. Anything else goes to the request list.
func safeTarget(t string) string {
	if t == "" || len(t) > 2048 || t[0] != '/' || strings.HasPrefix(t, "//") {
		return home
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c == '\\' || c >= 0x7f {
			return home
		}
	}
	u, err := url.Parse(t)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.RawPath != "" || !targetRoutes.MatchString(u.Path) {
		return home
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return home
	}
	q.Del("subject") // never in an address (handleList)
	if enc := q.Encode(); enc != "" {
		return u.Path + "?" + enc
	}
	return u.Path
}
