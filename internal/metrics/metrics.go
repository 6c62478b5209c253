// Package metrics is campaign-privacy's observability: the Prometheus
// collectors behind GET /metrics (client_golang), and the health endpoints
// GET /healthz and GET /readyz (health.go).
//
// cmd builds one *Metrics per process and hands it to server, session,
// privacy and web through their Config; every method is safe on a nil
// *Metrics, so a package built without one (a CLI command, a test) records
// nothing. Recording is a few atomic operations: the per-method counters of
// the SOAP router are resolved once (Method), not per call.
//
// Labels never carry personal data, logins or ids: a SOAP method's label is
// a name from the schema registry's fixed set (the server folds anything
// else into "unknown"), an outcome is an ACC fault code, a reason is one of
// a fixed list, a status is an enumeration name of nms:gdprRequest.
package metrics

import (
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
)

// namespace prefixes every metric of ours.
const namespace = "campaign_privacy"

// UnknownMethod is the method label of a SOAP call whose method is not in
// the schema registry, or was not read yet (a body too large, a busy
// server): what a caller writes never becomes a label value.
const UnknownMethod = "unknown"

// Outcome of a SOAP call that succeeded; a fault's outcome is its ACC code
// (XSV-350012, SOP-330011, ...).
const OutcomeOK = "ok"

// Build is what campaign_privacy_build_info reports (runtime/debug's build
// information, as `campaign-privacy version` prints it).
type Build struct {
	Version, Revision, GoVersion string
	Dirty                        bool
}

// Options configure New.
type Options struct {
	Build  Build
	Logger *slog.Logger
}

// Metrics holds the registry and the collectors of one process.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	soapCalls    *prometheus.CounterVec
	soapSeconds  *prometheus.HistogramVec
	soapInFlight prometheus.Gauge

	logonFailures *prometheus.CounterVec
	lockouts      prometheus.Counter
	quotaRefusals *prometheus.CounterVec

	workflowRuns     *prometheus.CounterVec
	workflowSeconds  *prometheus.HistogramVec
	workflowRequests *prometheus.CounterVec
	rowsExported     prometheus.Counter
	rowsDeleted      prometheus.Counter

	exportWritten    prometheus.Counter
	exportDownloaded prometheus.Counter
}

// New returns the metrics of one process, with the Go runtime, process
// and build-information collectors already registered.
func New(opts Options) *Metrics {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: opts.Logger}
	// Every collector is registered as it is made, its name prefixed
	// with "campaign_privacy_".
	f := promauto.With(prometheus.WrapRegistererWithPrefix(namespace+"_", m.reg))

	m.soapCalls = f.NewCounterVec(prometheus.CounterOpts{Name: "soap_calls_total",
		Help: "SOAP calls answered, by method, outcome (ok or the ACC fault code) and reason (the fault's class: bad_logon, invalid, internal, ...)."}, []string{"method", "outcome", "reason"})
	m.soapSeconds = f.NewHistogramVec(prometheus.HistogramOpts{Name: "soap_call_duration_seconds",
		Help: "Time from reading a SOAP call to its answer, by method.", Buckets: prometheus.DefBuckets}, []string{"method"})
	m.soapInFlight = f.NewGauge(prometheus.GaugeOpts{Name: "soap_calls_in_flight", Help: "SOAP calls being answered now."})

	m.logonFailures = f.NewCounterVec(prometheus.CounterOpts{Name: "logon_failures_total",
		Help: "Failed logons (SOAP and console), by reason: unknown_login, wrong_password, locked, disabled, address_throttled, invalid_input, bearer_token."}, []string{"reason"})
	m.lockouts = f.NewCounter(prometheus.CounterOpts{Name: "logon_lockouts_total",
		Help: "Operators locked out after repeated logon failures."})

	m.quotaRefusals = f.NewCounterVec(prometheus.CounterOpts{Name: "quota_refusals_total",
		Help: "Per-operator quotas acting: sessions (a Logon revoked the operator's oldest sessions, CP_SESSIONS_PER_OPERATOR) or requests (a CreateRequestByName refused, CP_CREATE_RATE)."}, []string{"quota"})
	for _, q := range []string{"sessions", "requests"} {
		m.quotaRefusals.WithLabelValues(q)
	}

	m.workflowRuns = f.NewCounterVec(prometheus.CounterOpts{Name: "workflow_runs_total",
		Help: "Runs of the technical workflows, by workflow and result (ok, error, or stopped: by the service's shutdown or a StopWorkflow)."}, []string{"workflow", "result"})
	m.workflowSeconds = f.NewHistogramVec(prometheus.HistogramOpts{Name: "workflow_duration_seconds",
		Help: "Duration of one run of a technical workflow.", Buckets: prometheus.ExponentialBuckets(0.05, 4, 10)}, []string{"workflow"})
	m.workflowRequests = f.NewCounterVec(prometheus.CounterOpts{Name: "workflow_requests_total",
		Help: "Privacy requests a workflow moved on (processed) or failed (retried later or in error)."}, []string{"workflow", "outcome"})
	m.rowsExported = f.NewCounter(prometheus.CounterOpts{Name: "workflow_rows_exported_total",
		Help: "Rows written into data-subject files by collectPrivacyRequests."})
	m.rowsDeleted = f.NewCounter(prometheus.CounterOpts{Name: "workflow_rows_deleted_total",
		Help: "Rows deleted by deletePrivacyRequestsData, counted per committed delete batch (a request taken back after a crash counts its batches again)."})

	m.exportWritten = f.NewCounter(prometheus.CounterOpts{Name: "export_bytes_written_total",
		Help: "Bytes of data-subject files written (before encryption)."})
	m.exportDownloaded = f.NewCounter(prometheus.CounterOpts{Name: "export_bytes_downloaded_total",
		Help: "Bytes of data-subject files sent to operators."})

	b := opts.Build
	info := f.NewGaugeVec(prometheus.GaugeOpts{Name: "build_info",
		Help: "Build information; the value is always 1."}, []string{"version", "revision", "goversion", "dirty"})
	info.WithLabelValues(b.Version, b.Revision, b.GoVersion, strconv.FormatBool(b.Dirty)).Set(1)

	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchDB adds the statistics of a database/sql connection pool
// (go_sql_* with db_name="main"): open, in use and idle connections, waits.
func (m *Metrics) WatchDB(db *sql.DB) {
	if m == nil || db == nil {
		return
	}
	m.reg.MustRegister(collectors.NewDBStatsCollector(db, "main"))
}

// Handler serves the metrics in Prometheus' text format (or its protobuf
// format, when the scraper asks for it) to the clients zone allows, through
// the trusted proxies of zone; others get 403. A failing collector (the
// database down) leaves its metrics out and the rest is served.
func (m *Metrics) Handler(zone netzone.Zone) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog{m.log},
		ErrorHandling: promhttp.ContinueOnError,
		// No OpenMetrics: a scraper that asks for it gets the text
		// format, which every Prometheus reads.
		EnableOpenMetrics:   false,
		MaxRequestsInFlight: 2,
		Timeout:             10 * time.Second,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := zone.Allows(r); !ok {
			http.Error(w, "Forbidden: your address may not read the metrics (CP_METRICS_SUBNETS).", http.StatusForbidden)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// errorLog sends promhttp's collection errors to slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	l.log.Warn("metrics collection failed", "err", fmt.Sprint(v...))
}

// --- SOAP --------------------------------------------------------------------

// Method holds the collectors of one SOAP method, resolved once so that a
// call costs a few atomic operations.
type Method struct {
	calls   *prometheus.CounterVec // curried with the method
	ok      prometheus.Counter
	seconds prometheus.Observer

	// faults caches the counter of each outcome and reason met so far
	// (a handful: the server's fault table), sparing the label hashing.
	mu     sync.RWMutex
	faults map[fault]prometheus.Counter
}

type fault struct{ outcome, reason string }

// Method returns the collectors of the SOAP method labelled name ("xtk:
// session#Logon"). The caller guarantees name comes from a fixed set (the
// schema registry's methods, or UnknownMethod). Nil on a nil *Metrics.
func (m *Metrics) Method(name string) *Method {
	if m == nil {
		return nil
	}
	calls := m.soapCalls.MustCurryWith(prometheus.Labels{"method": name})
	return &Method{calls: calls, ok: calls.WithLabelValues(OutcomeOK, ""), seconds: m.soapSeconds.WithLabelValues(name),
		faults: map[fault]prometheus.Counter{}}
}

// Done records one answered call: outcome OutcomeOK, or the ACC fault code
// with reason the fault's class (an apperr code).
func (mm *Method) Done(outcome, reason string, d time.Duration) {
	if mm == nil {
		return
	}
	if outcome == OutcomeOK {
		mm.ok.Inc()
	} else {
		mm.fault(outcome, reason).Inc()
	}
	mm.seconds.Observe(d.Seconds())
}

func (mm *Method) fault(outcome, reason string) prometheus.Counter {
	k := fault{outcome, reason}
	mm.mu.RLock()
	c, ok := mm.faults[k]
	mm.mu.RUnlock()
	if !ok {
		c = mm.calls.WithLabelValues(outcome, reason)
		mm.mu.Lock()
		mm.faults[k] = c
		mm.mu.Unlock()
	}
	return c
}

// CallStarted and CallEnded count the SOAP calls in flight.
func (m *Metrics) CallStarted() {
	if m != nil {
		m.soapInFlight.Inc()
	}
}

// CallEnded: see CallStarted.
func (m *Metrics) CallEnded() {
	if m != nil {
		m.soapInFlight.Dec()
	}
}

// --- logons ------------------------------------------------------------------

// Reasons of a failed logon (the label of logon_failures_total).
const (
	LogonUnknownLogin     = "unknown_login"
	LogonWrongPassword    = "wrong_password"
	LogonLocked           = "locked"
	LogonDisabled         = "disabled"
	LogonAddressThrottled = "address_throttled"
	LogonInvalidInput     = "invalid_input"
	// LogonBearerRefused: a BearerTokenLogon refused (any reason: the
	// token's own faults are logged, not labelled).
	LogonBearerRefused = "bearer_token"
)

// LogonFailed counts a refused logon; reason is one of the Logon* constants.
func (m *Metrics) LogonFailed(reason string) {
	if m != nil {
		m.logonFailures.WithLabelValues(reason).Inc()
	}
}

// LockedOut counts an operator locked after repeated failures.
func (m *Metrics) LockedOut() {
	if m != nil {
		m.lockouts.Inc()
	}
}

// QuotaRefused counts a per-operator quota acting: quota is "sessions" or
// "requests" (never an operator or a login).
func (m *Metrics) QuotaRefused(quota string) {
	if m != nil {
		m.quotaRefusals.WithLabelValues(quota).Inc()
	}
}

// --- workflows and files -----------------------------------------------------

// Results of a workflow run (the label of workflow_runs_total).
const (
	RunOK    = "ok"
	RunError = "error"
	// RunStopped: stopped on request (the service's shutdown, a
	// StopWorkflow) before its end; its requests wait for the next run.
	RunStopped = "stopped"
)

// WorkflowRun records one run of a technical workflow (one of
// privacy.Workflows): how long it took, the requests it moved on and
// failed, and its result (one of the Run* constants).
func (m *Metrics) WorkflowRun(workflow string, d time.Duration, processed, failed int, result string) {
	if m == nil {
		return
	}
	m.workflowRuns.WithLabelValues(workflow, result).Inc()
	m.workflowSeconds.WithLabelValues(workflow).Observe(d.Seconds())
	m.workflowRequests.WithLabelValues(workflow, "processed").Add(float64(processed))
	m.workflowRequests.WithLabelValues(workflow, "failed").Add(float64(failed))
}

// ExportWritten counts a data-subject file written: its rows and bytes.
func (m *Metrics) ExportWritten(rows int, bytes int64) {
	if m != nil {
		m.rowsExported.Add(float64(rows))
		m.exportWritten.Add(float64(bytes))
	}
}

// RowsDeleted counts the rows of one committed delete batch.
func (m *Metrics) RowsDeleted(rows int) {
	if m != nil {
		m.rowsDeleted.Add(float64(rows))
	}
}

// Downloaded counts bytes of a data-subject file sent to an operator.
func (m *Metrics) Downloaded(bytes int64) {
	if m != nil && bytes > 0 {
		m.exportDownloaded.Add(float64(bytes))
	}
}
