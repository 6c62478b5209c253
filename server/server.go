// Package server is the SOAP front end of campaign-privacy: the HTTP server,
// the ACC SOAP router /nl/jsp/soaprouter.jsp, the WSDL endpoint, and the small
// health endpoints ACC clients touch (/r/test, /nl/jsp/ping.jsp).
//
// It reads envelopes defensively (size, depth, width and count limits while
// tokenising, no DOCTYPE), resolves the action, reads parameters by position
// as ACC does, calls session and privacy, and writes responses and faults
// with the literal prefixes acc-js-sdk requires. README.md in this folder
// lists every method and how it follows ACC.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/internal/persist"
	"github.com/campaign-privacy/campaign-privacy/internal/querydef"
	"github.com/campaign-privacy/campaign-privacy/internal/siteurl"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/session"
	"github.com/campaign-privacy/campaign-privacy/wsdl"
)

// Config holds the server settings; cmd fills it.
type Config struct {
	Addr         string
	InstanceName string
	Version      string
	// DatabaseID is the instance's database identifier ("u" + 40 hex
	// digits, drawn once and kept in the database: store.DB.DatabaseID),
	// reported as serverInfo's databaseId and GetOption("XtkDatabaseId").
	DatabaseID string
	// CommitID is serverInfo's commitId: the first 7 hex digits of the
	// build's VCS revision (read from the binary when empty).
	CommitID        string
	FaultHTTPStatus int // 200 (ACC, default) or 500 (strict SOAP 1.1 peers)
	Limits          Limits
	CallTimeout     time.Duration // per SOAP call; default 10 s
	Timeouts        Timeouts
	Now             func() time.Time
	Logger          *slog.Logger
	// Ping checks the database for /nl/jsp/ping.jsp.
	Ping func(context.Context) error
	// Queries runs xtk:queryDef#ExecuteQuery.
	Queries *querydef.Service
	// Failpoint, if set, is called as "soap:<service>#<Method>" before a
	// method runs (fault tests); an error it returns is the call's fault.
	// The same hook shape as privacy.Config.Failpoint: cmd gives both one.
	Failpoint func(name string) error
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (CP_TRUSTED_PROXIES), for the per-address logon limit.
	TrustedProxies []netip.Prefix
	// SOAPAllowed are the addresses SOAP calls may come from (ACC's
	// security zone for the API, CP_SOAP_ALLOWED_SUBNETS), checked on every
	// call, Logon included; empty allows every address.
	SOAPAllowed []netip.Prefix
	// Persist writes entities for xtk:persist#Write and WriteCollection.
	Persist *persist.Service
	// Metrics records every call (method, outcome, latency, in flight);
	// nil records nothing.
	Metrics *metrics.Metrics
}

// Timeouts of the HTTP server (security-bar.md §2). Zero fields take the
// defaults; tests shorten them.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
	MaxHeaderBytes                int
}

// DefaultTimeouts: slowloris is cut after 5 s of headers, a slow body after
// 30 s, an answer after 60 s (downloads extend their own), idle keep-alive
// connections after 120 s; headers are at most 64 KiB.
var DefaultTimeouts = Timeouts{ReadHeader: 5 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second, MaxHeaderBytes: 64 << 10}

// Server serves the ACC endpoints.
type Server struct {
	cfg      Config
	registry *schemas.Registry
	sessions *session.Service
	privacy  *privacy.Service
	queries  *querydef.Service
	log      *slog.Logger
	inflight chan struct{}
	handlers map[string]handler
	// methodMetrics caches the collectors of each registry method
	// (*schemas.Method → *metrics.Method); unknownMetrics is the one
	// label every other call shares.
	methodMetrics  sync.Map
	unknownMetrics *metrics.Method
	started        time.Time
	http           *http.Server
}

// New wires a Server.
func New(cfg Config, registry *schemas.Registry, sessions *session.Service, privacy *privacy.Service) *Server {
	if cfg.FaultHTTPStatus == 0 {
		cfg.FaultHTTPStatus = http.StatusOK
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.Timeouts == (Timeouts{}) {
		cfg.Timeouts = DefaultTimeouts
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Ping == nil {
		cfg.Ping = func(context.Context) error { return nil }
	}
	if cfg.InstanceName == "" {
		cfg.InstanceName = "campaign-privacy"
	}
	if cfg.CommitID == "" {
		cfg.CommitID = buildCommit()
	}
	s := &Server{
		cfg: cfg, registry: registry, sessions: sessions, privacy: privacy, log: cfg.Logger,
		inflight: make(chan struct{}, cfg.Limits.MaxInFlight),
		started:  cfg.Now(),
	}
	s.queries = cfg.Queries
	s.handlers = s.methodTable()
	s.unknownMetrics = cfg.Metrics.Method(metrics.UnknownMethod)
	return s
}

// Handler returns an HTTP handler with the SOAP routes alone.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

// Register mounts the SOAP routes on mux (cmd adds the web routes beside).
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("/nl/jsp/soaprouter.jsp", s.handleSOAP)
	mux.HandleFunc("GET /nl/jsp/schemawsdl.jsp", s.handleWSDL)
	mux.HandleFunc("GET /r/test", s.handleRTest)
	mux.HandleFunc("GET /nl/jsp/ping.jsp", s.handlePing)
}

// ListenAndServe serves on cfg.Addr with the timeouts of security-bar.md §2
// until ctx is cancelled, then shuts down gracefully (at most 30 s).
func (s *Server) ListenAndServe(ctx context.Context, handler http.Handler, ready func(addr string)) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln, handler, ready)
}

// Serve is ListenAndServe on a listener the caller opened (the command
// listens before it touches the database, so a port in use stops it
// first).
func (s *Server) Serve(ctx context.Context, ln net.Listener, handler http.Handler, ready func(addr string)) error {
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: s.cfg.Timeouts.ReadHeader,
		ReadTimeout:       s.cfg.Timeouts.Read,
		WriteTimeout:      s.cfg.Timeouts.Write,
		IdleTimeout:       s.cfg.Timeouts.Idle,
		MaxHeaderBytes:    s.cfg.Timeouts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// CommitID is the short VCS revision this server reports (serverInfo's
// commitId, /r/test); the console's footer shows the same.
func (s *Server) CommitID() string { return s.cfg.CommitID }

// buildCommit is the short VCS revision the binary was built from, or
// "0000000" when the build carries none (go run, -buildvcs=false).
func buildCommit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			if st.Key == "vcs.revision" && len(st.Value) >= 7 {
				return st.Value[:7]
			}
		}
	}
	return "0000000"
}

// newRef returns a short correlation id for one call's log line and fault.
func newRef() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// routerURL is this server's SOAP router as the client reached it.
func (s *Server) routerURL(r *http.Request) string {
	return s.baseURL(r) + "/nl/jsp/soaprouter.jsp"
}

// baseURL is this server's address as the client reached it.
func (s *Server) baseURL(r *http.Request) string {
	return siteurl.Base(r, netzone.Zone{Trusted: s.cfg.TrustedProxies}.HTTPS(r), s.cfg.Addr)
}

func (s *Server) handleWSDL(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("schema")
	sc, ok := s.registry.Schema(id)
	if !ok {
		sc, ok = s.registry.Interface(id) // xtk:persist
	}
	if !ok {
		http.Error(w, "Unknown schema.", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := wsdl.Render(w, sc, s.routerURL(r)); err != nil {
		s.log.WarnContext(r.Context(), "wsdl write failed", "err", err)
	}
}

// handleRTest answers the health probe of the web front, in the reduced
// form ACC gives when allowDebug is off.
func (s *Server) handleRTest(w http.ResponseWriter, r *http.Request) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := s.cfg.Now()
	body := "<redir status='OK' date='" + schemas.FormatDateTime(now) +
		"' build='" + buildNumber + "' commitId='" + s.cfg.CommitID + "' instance='" + schemas.EscapeAttr(s.cfg.InstanceName) +
		"' sourceIP='" + schemas.EscapeAttr(ip) + "'/>\n"
	w.Header().Set("Content-Type", "text/xml;charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(body))
}

// handlePing is /nl/jsp/ping.jsp: for a logged-on caller, "OK" and the
// database time; it fails when the database does not answer.
func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain;charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	cred := httpCredentials(r, nil, nil)
	cred.From = s.addrOf(r)
	// Outside the SOAP zone a token is not even checked (a stolen one
	// tested from anywhere): the answer of an invalid session.
	if !s.inSOAPZone(r) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(faults[apperr.BadSession].text + "\n"))
		return
	}
	if _, err := s.sessions.Authenticate(r.Context(), cred); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(faults[apperr.BadSession].text + "\n"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("Error\nThe database does not answer.\n"))
		return
	}
	_, _ = w.Write([]byte("OK\n" + schemas.FormatDateTime(s.cfg.Now()) + "\n"))
}
