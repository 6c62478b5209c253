// Package servertest runs the whole service in-process for tests: app.Open
// (the same wiring as the command) on a real store (SQLite or PostgreSQL),
// with an injectable clock, behind httptest.
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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/app"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
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
	URL string
	*app.App
	Clock *storetest.Clock
	Logs  *SyncBuffer // everything the service logged
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
	// Clock is the service's clock; the one DB was opened with, so that
	// advancing it moves both (default: a new one).
	Clock *storetest.Clock
	// Schemas adds custom schema files, as CP_SCHEMAS_DIR does.
	Schemas fs.FS
	// MetricsZone replaces who may read /metrics (default the loopback).
	MetricsZone *netzone.Zone
	// NoMetrics builds the service without metrics (benchmarks compare).
	NoMetrics bool
}

// New starts a service on dialect and stops it when the test ends. It is
// app.Open with the tests' settings: a settable clock, the test key, a
// debug log kept in Logs, and the console open to loopback.
func New(t testing.TB, dialect string, opts Options) *Env {
	t.Helper()
	clock := opts.Clock
	if clock == nil {
		clock = storetest.NewClock()
	}
	logs := &SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := opts.DB
	if db == nil {
		db = storetest.Open(t, dialect, clock.Now)
	}
	cfg := app.Config{
		DB: db, Schemas: opts.Schemas, Logger: log, Now: clock.Now,
		Session: session.Config{Key: Key, HashWait: 10 * time.Second},
		Privacy: privacy.Config{Deduplicate: true, ExportKey: Key[:32], Worker: "test-worker"},
		Server:  server.Config{InstanceName: "test", Version: "test"},
		Web: web.Config{
			Zone: netzone.Zone{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}},
		},
		Metrics: metrics.New(metrics.Options{Logger: log, Build: metrics.Build{Version: "test", Revision: "unknown", GoVersion: "test"}}),
	}
	cfg.MetricsZone = netzone.Zone{Allowed: cfg.Web.Zone.Allowed}
	if opts.MetricsZone != nil {
		cfg.MetricsZone = *opts.MetricsZone
	}
	if opts.NoMetrics {
		cfg.Metrics = nil
	}
	if opts.Session != nil {
		opts.Session(&cfg.Session)
	}
	if opts.Server != nil {
		opts.Server(&cfg.Server)
	}
	if opts.Privacy != nil {
		opts.Privacy(&cfg.Privacy)
	}
	if opts.Web != nil {
		opts.Web(&cfg.Web)
	}
	a, err := app.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(a.Handler())
	t.Cleanup(hs.Close)
	return &Env{URL: hs.URL, App: a, Clock: clock, Logs: logs}
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
	status, body, err := Send(http.DefaultClient, e.URL, action, envelope, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

// Send posts a raw SOAP envelope to the service at base with client and
// returns the status and body. It does not fail the test, so that a
// test's goroutines can call it; an error is a transport failure.
func Send(client *http.Client, base, action, envelope string, headers ...string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/nl/jsp/soaprouter.jsp", strings.NewReader(envelope))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	if action != "" {
		req.Header.Set("SOAPAction", `"`+action+`"`)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = io.Copy(&b, resp.Body)
	return resp.StatusCode, b.String(), err
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

// BigSubjectEmail is the recipient BigSubject stores.
const BigSubjectEmail = "big@example.com"

// BigSubject stores one recipient, BigSubjectEmail, with logs delivery logs
// (about 165 bytes each in the person's file), 10,000 rows a statement: a
// large file to collect and download.
func (e *Env) BigSubject(t testing.TB, logs int) {
	e.BigSubjectOf(t, BigSubjectEmail, "Newsletter of the week, edition ", logs)
}

// BigSubjectOf is BigSubject with another email and label (each log's is
// label and its number): a test that reads PostgreSQL's files for them must
// not find the copies other tests' statistics keep in the shared
// pg_statistic.
func (e *Env) BigSubjectOf(t testing.TB, email, label string, logs int) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	if err := e.DB.InsertRows(ctx, "nms_recipient", []string{"id", "email"}, [][]any{{int64(1), email}}); err != nil {
		t.Fatal(err)
	}
	for from := 1; from <= logs; from += 10_000 {
		var rows [][]any
		for i := from; i < min(from+10_000, logs+1); i++ {
			rows = append(rows, []any{int64(i), int64(1), email, int64(1), now, label + strconv.Itoa(i)})
		}
		if err := e.DB.InsertRows(ctx, "nms_broad_log_rcp", []string{"id", "recipient_id", "address", "status", "event_date", "delivery_label"}, rows); err != nil {
			t.Fatal(err)
		}
	}
}

// CollectedAccess creates an access request for value in the default
// namespace as c, runs collectPrivacyRequests and returns the request's id.
func (e *Env) CollectedAccess(t testing.TB, c *session.Caller, value string) int64 {
	t.Helper()
	ctx := context.Background()
	id, err := e.Privacy.CreateRequestByName(ctx, c, privacy.CreateRequest{NamespaceName: "defaultNamespace1",
		ReconciliationValue: value, Type: privacy.TypeAccess, DownloadURL: e.URL + "/nms/gdpr.jssp?id="})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Privacy.Run(ctx, privacy.Collect); err != nil {
		t.Fatal(err)
	}
	return id
}
