// Package servertest runs the whole SOAP service in-process for tests: the
// embedded schemas, a real store (SQLite or PostgreSQL), the session service
// with an injectable clock, and the server behind httptest.
package servertest

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/internal/persist"
	"github.com/campaign-privacy/campaign-privacy/internal/querydef"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
	"github.com/campaign-privacy/campaign-privacy/web"
)

// Key is the signing key of test servers (32 bytes).
var Key = []byte("campaign-privacy-test-signing-key-32b")

// Env is one running test service.
type Env struct {
	URL      string
	DB       *store.DB
	Sessions *session.Service
	Privacy  *privacy.Service
	Registry *schemas.Registry
	Server   *server.Server
	Clock    *storetest.Clock
	Logs     *SyncBuffer // everything the service logged
	// Metrics are the service's collectors, served at /metrics to the
	// loopback; Health serves /healthz and /readyz.
	Metrics *metrics.Metrics
	Health  *metrics.Health
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Options adjust a test service.
type Options struct {
	Session func(*session.Config)
	Privacy func(*privacy.Config)
	Web     func(*web.Config)
	Server  func(*server.Config)
	// DB reuses an open database (two servers on one store).
	DB *store.DB
	// Schemas adds custom schema files, as CP_SCHEMAS_DIR does.
	Schemas fs.FS
	// MetricsZone replaces who may read /metrics (default the loopback).
	MetricsZone *netzone.Zone
}

// New starts a service on dialect and stops it when the test ends.
func New(t testing.TB, dialect string, opts Options) *Env {
	t.Helper()
	clock := storetest.NewClock()
	logs := &SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := opts.DB
	if db == nil {
		db = storetest.Open(t, dialect, clock.Now)
	}
	registry, err := schemas.New(opts.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	met := metrics.New(metrics.Options{Logger: log, Build: metrics.Build{Version: "test", Revision: "unknown", GoVersion: "test"}})
	scfg := session.Config{Key: Key, Now: clock.Now, HashWait: 10 * time.Second, Logger: log, Metrics: met}
	if opts.Session != nil {
		opts.Session(&scfg)
	}
	sessions, err := session.New(db, scfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{InstanceName: "test", Version: "test", Now: clock.Now, Ping: db.Ping, Logger: log, Metrics: met}
	if opts.Server != nil {
		opts.Server(&cfg)
	}
	if err := db.SyncDataModel(context.Background(), registry); err != nil {
		t.Fatal(err)
	}
	pcfg := privacy.Config{Deduplicate: true, Now: clock.Now, Logger: log, ExportKey: Key[:32], Worker: "test-worker", Metrics: met}
	if opts.Privacy != nil {
		opts.Privacy(&pcfg)
	}
	priv := privacy.New(db, registry, pcfg)
	if err := priv.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.Persist = persist.New(db, registry, clock.Now)
	cfg.Queries = &querydef.Service{DB: db, Registry: registry}
	srv := server.New(cfg, registry, sessions, priv)
	wcfg := web.Config{Now: clock.Now, Logger: log, Metrics: met,
		Zone:      netzone.Zone{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}},
		Workflows: func(ctx context.Context) ([]privacy.Report, error) { return priv.Run(ctx, "all") }}
	if opts.Web != nil {
		opts.Web(&wcfg)
	}
	met.WatchDB(db.Pool())
	met.WatchRequests(priv.RequestStats)
	health := metrics.NewHealth(log)
	health.Ready(metrics.Check{Reason: "database", Probe: db.Ping}, metrics.Check{Reason: "migrations", Probe: db.CheckMigrated})
	metricsZone := netzone.Zone{Allowed: wcfg.Zone.Allowed}
	if opts.MetricsZone != nil {
		metricsZone = *opts.MetricsZone
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	web.New(wcfg, sessions, priv).Register(mux)
	health.Register(mux)
	mux.Handle("GET /metrics", met.Handler(metricsZone))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &Env{URL: hs.URL, DB: db, Sessions: sessions, Privacy: priv, Registry: registry, Server: srv, Clock: clock, Logs: logs,
		Metrics: met, Health: health}
}

// Operator creates an operator.
func (e *Env) Operator(t testing.TB, login, password string, rights ...string) {
	t.Helper()
	if err := e.Sessions.CreateOperator(context.Background(), login, password, rights); err != nil {
		t.Fatalf("create operator %s: %v", login, err)
	}
}

// Post sends a raw SOAP envelope with the given action (empty: no header)
// and returns the status and body.
func (e *Env) Post(t testing.TB, action, envelope string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.URL+"/nl/jsp/soaprouter.jsp", strings.NewReader(envelope))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	if action != "" {
		req.Header.Set("SOAPAction", `"`+action+`"`)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b.String()
}

// Envelope wraps a method element in a SOAP 1.1 envelope the way
// acc-js-sdk writes it.
func Envelope(header, call string) string {
	h := ""
	if header != "" {
		h = "<SOAP-ENV:Header>" + header + "</SOAP-ENV:Header>"
	}
	return `<SOAP-ENV:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ns="http://xml.apache.org/xml-soap" xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">` +
		h + `<SOAP-ENV:Body>` + call + `</SOAP-ENV:Body></SOAP-ENV:Envelope>`
}

// LogonCall is the body of an xtk:session#Logon call.
func LogonCall(login, password string) string {
	return `<m:Logon xmlns:m="urn:xtk:session"><sessiontoken xsi:type="xsd:string"/><login xsi:type="xsd:string">` +
		schemas.EscapeText(login) + `</login><password xsi:type="xsd:string">` + schemas.EscapeText(password) +
		`</password><parameters xsi:type="ns:Element"><parameters/></parameters></m:Logon>`
}

// Logon logs on and returns the session and security tokens.
func (e *Env) Logon(t testing.TB, login, password string) (sessionToken, securityToken string) {
	t.Helper()
	status, body := e.Post(t, "xtk:session#Logon", Envelope("", LogonCall(login, password)))
	if status != 200 || !strings.Contains(body, "<LogonResponse") {
		t.Fatalf("logon %s: %d %s", login, status, body)
	}
	return Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<"), Between(body, "<pstrSecurityToken xsi:type='xsd:string'>", "<")
}

// Between returns the text between the first from and the next to.
func Between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}
