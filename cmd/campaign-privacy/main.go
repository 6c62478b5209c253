// Command campaign-privacy runs the ACC-compatible privacy service and its
// administration commands. Main does all the wiring: settings come from
// flags or CP_* environment variables, and are pushed into each package's
// Config; no other package reads the environment.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/internal/persist"
	"github.com/campaign-privacy/campaign-privacy/internal/querydef"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
	"github.com/campaign-privacy/campaign-privacy/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `campaign-privacy — an Adobe Campaign Classic compatible privacy API service

Usage:
  campaign-privacy [serve]                 run the HTTP server (default)
  campaign-privacy migrate                 apply database migrations and exit
  campaign-privacy operator create --login L --password-stdin [--right R]...
  campaign-privacy operator list
  campaign-privacy operator disable --login L
  campaign-privacy operator unlock --login L
  campaign-privacy operator password --login L --password-stdin
  campaign-privacy operator rights --login L [--right R]...
  campaign-privacy namespace create --name N --label L --key @field [--schema nms:recipient] [--aec-id N] [--match exact|email|phone] [--region US]
  campaign-privacy namespace update --name N [--label L] --match exact|email|phone [--region US]
  campaign-privacy namespace list
  campaign-privacy workflow run collectPrivacyRequests|deletePrivacyRequestsData|cleanupPrivacyRequests|all
  campaign-privacy demo-data --recipients N
  campaign-privacy audit verify            check the audit hash chain; exit 1 names the first broken line
  campaign-privacy receipt public-key      print the erasure receipts' public key (PEM)
  campaign-privacy receipt verify FILE [--public-key K]  check a receipt offline and print its claims
  campaign-privacy healthcheck             ask the server at CP_ADDR whether it is ready (GET /readyz); exit 0 or 1
  campaign-privacy version

Settings (flag or environment variable):
  --addr              CP_ADDR                    listen address (:8080)
  --data-dir          CP_DATA_DIR                data directory (./data)
  --database-url      CP_DATABASE_URL            PostgreSQL URL; empty = SQLite in the data directory
  --admin-password    CP_ADMIN_PASSWORD          password of the bootstrap admin (random if empty)
  --session-ttl       CP_SESSION_TTL             session token lifetime (24h)
  --session-key       CP_SESSION_KEY             token signing key, hex or base64, >= 32 bytes
                                                 (default: generated once in the data directory)
  --session-previous-keys CP_SESSION_PREVIOUS_KEYS  comma-separated keys whose tokens still verify
  --require-security-token CP_REQUIRE_SECURITY_TOKEN  require X-Security-Token on every call (false)
  --fault-http-status CP_FAULT_HTTP_STATUS       HTTP status of SOAP faults: 200 (ACC) or 500 (200)
  --instance-name     CP_INSTANCE_NAME           instance name shown to clients (campaign-privacy)
  --schemas-dir       CP_SCHEMAS_DIR             directory of custom schema files (*.xml)
  --deduplicate-requests CP_DEDUPLICATE_REQUESTS  an identical active request returns its id (true)
  --workflow-schedule CP_WORKFLOW_SCHEDULE       when the workflows run: daily at 01:00 (daily),
                                                 daily HH:MM, or an interval such as 30s
  --export-key        CP_EXPORT_KEY              master key of the encrypted exports, hex or base64,
                                                 >= 32 bytes (default: generated in the data directory)
  --export-previous-keys CP_EXPORT_PREVIOUS_KEYS  comma-separated master keys of older files
  --subject-key       CP_SUBJECT_KEY             key of the subject hash (search, receipts), hex or base64,
                                                 32 bytes (default: generated in the data directory)
  --allowed-subnets   CP_ALLOWED_SUBNETS         who may open the download and the console: CIDRs,
                                                 comma-separated (127.0.0.1/32,::1/128)
  --trusted-proxies   CP_TRUSTED_PROXIES         reverse proxies whose X-Forwarded-For is believed (none)
  --soap-allowed-subnets CP_SOAP_ALLOWED_SUBNETS  who may call the SOAP API, Logon included: CIDRs,
                                                 comma-separated (empty: every address)
  --receipt-key       CP_RECEIPT_KEY             Ed25519 seed signing the erasure receipts, hex or base64,
                                                 32 bytes (default: generated in the data directory)
  --receipt-previous-keys CP_RECEIPT_PREVIOUS_KEYS  comma-separated public keys of older receipts (verify)
  --retention         CP_RETENTION               how long collected data is kept (2160h = 90 days)
  --workflow-lease    CP_WORKFLOW_LEASE          how long a worker holds a request before another may
                                                 take it back (15m)
  --retry-delay       CP_RETRY_DELAY             first back-off of a failed request, doubled each time (1m)
  --delete-batch      CP_DELETE_BATCH            rows deleted per transaction (10000)
  --log-level         CP_LOG_LEVEL               debug, info, warn or error (info)
  --metrics-subnets   CP_METRICS_SUBNETS         who may read GET /metrics: CIDRs, comma-separated
                                                 (127.0.0.1/32,::1/128)
  --metrics-addr      CP_METRICS_ADDR            serve /metrics (and /healthz, /readyz) on this address
                                                 of its own instead of CP_ADDR (empty: on CP_ADDR)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "campaign-privacy:", errorText(err))
		os.Exit(1)
	}
}

// errorText is the command line's translation of an error: caller-safe
// messages as they are, other errors in full (they are the operator's own).
func errorText(err error) string {
	var e *apperr.Error
	if errors.As(err, &e) && e.Code != apperr.Internal {
		return e.Message
	}
	return err.Error()
}

// Main is the program, with its standard streams and environment injected
// so tests can run it in-process.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Ready, if set, is called with the listening address once serve listens.
	Ready func(addr string)
}

// settings are the parsed flags and variables.
type settings struct {
	addr, dataDir, databaseURL, adminPassword, sessionKey, instanceName, logLevel string
	schemasDir, workflowSchedule, exportKey, allowedSubnets, trustedProxies       string
	sessionPreviousKeys, exportPreviousKeys, soapAllowedSubnets                   string
	subjectKey, receiptKey, receiptPreviousKeys                                   string
	metricsSubnets, metricsAddr                                                   string
	sessionTTL, retention, lease, retryDelay                                      time.Duration
	requireSecurityToken, deduplicate                                             bool
	faultHTTPStatus, deleteBatch                                                  int

	// metrics is serve's collectors, handed to the services open builds
	// (not a setting; nil for the other commands).
	metrics *metrics.Metrics
}

func (m *Main) flags(name string) (*flag.FlagSet, *settings) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { fmt.Fprint(m.Stderr, usage) }
	env := func(key, def string) string {
		if v := m.Getenv(key); v != "" {
			return v
		}
		return def
	}
	s := &settings{}
	fs.StringVar(&s.addr, "addr", env("CP_ADDR", ":8080"), "listen address")
	fs.StringVar(&s.dataDir, "data-dir", env("CP_DATA_DIR", "./data"), "data directory")
	fs.StringVar(&s.databaseURL, "database-url", env("CP_DATABASE_URL", ""), "PostgreSQL URL")
	fs.StringVar(&s.adminPassword, "admin-password", env("CP_ADMIN_PASSWORD", ""), "bootstrap admin password")
	fs.StringVar(&s.sessionKey, "session-key", env("CP_SESSION_KEY", ""), "token signing key")
	fs.StringVar(&s.sessionPreviousKeys, "session-previous-keys", env("CP_SESSION_PREVIOUS_KEYS", ""), "previous token signing keys")
	fs.StringVar(&s.instanceName, "instance-name", env("CP_INSTANCE_NAME", "campaign-privacy"), "instance name")
	fs.StringVar(&s.logLevel, "log-level", env("CP_LOG_LEVEL", "info"), "log level")
	fs.StringVar(&s.schemasDir, "schemas-dir", env("CP_SCHEMAS_DIR", ""), "custom schema directory")
	fs.StringVar(&s.workflowSchedule, "workflow-schedule", env("CP_WORKFLOW_SCHEDULE", "daily"), "workflow schedule")
	fs.StringVar(&s.exportKey, "export-key", env("CP_EXPORT_KEY", ""), "export master key")
	fs.StringVar(&s.exportPreviousKeys, "export-previous-keys", env("CP_EXPORT_PREVIOUS_KEYS", ""), "previous export master keys")
	fs.StringVar(&s.subjectKey, "subject-key", env("CP_SUBJECT_KEY", ""), "key of the subject hash")
	fs.StringVar(&s.receiptKey, "receipt-key", env("CP_RECEIPT_KEY", ""), "receipt signing key")
	fs.StringVar(&s.receiptPreviousKeys, "receipt-previous-keys", env("CP_RECEIPT_PREVIOUS_KEYS", ""), "previous receipt public keys")
	fs.StringVar(&s.allowedSubnets, "allowed-subnets", env("CP_ALLOWED_SUBNETS", "127.0.0.1/32,::1/128"), "web allow-list")
	fs.StringVar(&s.trustedProxies, "trusted-proxies", env("CP_TRUSTED_PROXIES", ""), "trusted reverse proxies")
	fs.StringVar(&s.soapAllowedSubnets, "soap-allowed-subnets", env("CP_SOAP_ALLOWED_SUBNETS", ""), "SOAP allow-list")
	fs.StringVar(&s.metricsSubnets, "metrics-subnets", env("CP_METRICS_SUBNETS", "127.0.0.1/32,::1/128"), "metrics allow-list")
	fs.StringVar(&s.metricsAddr, "metrics-addr", env("CP_METRICS_ADDR", ""), "metrics listen address")
	retention, err3 := time.ParseDuration(env("CP_RETENTION", "2160h"))
	if err3 != nil {
		retention = -1 // reported by validate
	}
	fs.DurationVar(&s.retention, "retention", retention, "retention of collected data")
	fs.DurationVar(&s.lease, "workflow-lease", duration(env("CP_WORKFLOW_LEASE", "15m")), "claim lease")
	fs.DurationVar(&s.retryDelay, "retry-delay", duration(env("CP_RETRY_DELAY", "1m")), "first retry back-off")
	batch, _ := strconv.Atoi(env("CP_DELETE_BATCH", "10000"))
	fs.IntVar(&s.deleteBatch, "delete-batch", batch, "rows deleted per transaction")
	dedup, err := strconv.ParseBool(env("CP_DEDUPLICATE_REQUESTS", "true"))
	if err != nil {
		dedup = true
	}
	fs.BoolVar(&s.deduplicate, "deduplicate-requests", dedup, "return the id of an identical active request")
	ttl, err2 := time.ParseDuration(env("CP_SESSION_TTL", "24h"))
	err = err2
	if err != nil {
		ttl = -1 // reported by validate
	}
	fs.DurationVar(&s.sessionTTL, "session-ttl", ttl, "session lifetime")
	req, _ := strconv.ParseBool(env("CP_REQUIRE_SECURITY_TOKEN", "false"))
	fs.BoolVar(&s.requireSecurityToken, "require-security-token", req, "require the security token")
	status, _ := strconv.Atoi(env("CP_FAULT_HTTP_STATUS", "200"))
	fs.IntVar(&s.faultHTTPStatus, "fault-http-status", status, "HTTP status of faults")
	return fs, s
}

// duration parses a duration setting; an invalid one becomes -1, which
// validate reports.
func duration(v string) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil {
		return -1
	}
	return d
}

func (s *settings) validate() error {
	if s.sessionTTL <= 0 {
		return errors.New("CP_SESSION_TTL must be a positive duration such as 24h")
	}
	if s.lease <= 0 || s.retryDelay <= 0 {
		return errors.New("CP_WORKFLOW_LEASE and CP_RETRY_DELAY must be positive durations")
	}
	if s.deleteBatch < 1 || s.deleteBatch > 100_000 {
		return errors.New("CP_DELETE_BATCH must be between 1 and 100000")
	}
	if s.retention <= 0 {
		return errors.New("CP_RETENTION must be a positive duration such as 2160h")
	}
	if err := (privacy.Config{Retention: s.retention}).Validate(); err != nil {
		return err
	}
	if _, err := privacy.ParseSchedule(s.workflowSchedule); err != nil {
		return err
	}
	if s.faultHTTPStatus != 200 && s.faultHTTPStatus != 500 {
		return errors.New("CP_FAULT_HTTP_STATUS must be 200 or 500")
	}
	return nil
}

// Run dispatches a command line.
func (m *Main) Run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return m.serve(ctx, args)
	case "migrate":
		return m.migrate(ctx, args)
	case "operator":
		return m.operator(ctx, args)
	case "namespace":
		return m.namespace(ctx, args)
	case "workflow":
		return m.workflow(ctx, args)
	case "audit":
		return m.audit(ctx, args)
	case "receipt":
		return m.receipt(ctx, args)
	case "demo-data":
		return m.demoData(ctx, args)
	case "healthcheck":
		return m.healthcheck(ctx, args)
	case "version":
		readBuildInfo().write(m.Stdout)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	}
	fmt.Fprint(m.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func (m *Main) logger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: l}))
}

// app is what every command that touches the database needs.
type app struct {
	db       *store.DB
	registry *schemas.Registry
	sessions *session.Service
	privacy  *privacy.Service
}

// open loads the schemas (embedded and custom), connects to the database,
// refuses a schema newer than this binary, applies pending migrations,
// creates the data-model tables and seeds the default namespaces.
func (m *Main) open(ctx context.Context, s *settings, log *slog.Logger) (*app, error) {
	var custom fs.FS
	if s.schemasDir != "" {
		if st, err := os.Stat(s.schemasDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("CP_SCHEMAS_DIR %s is not a directory", s.schemasDir)
		}
		custom = os.DirFS(s.schemasDir)
	}
	registry, err := schemas.New(custom)
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	db, err := store.Open(ctx, store.Config{DatabaseURL: s.databaseURL, DataDir: s.dataDir, Logger: log})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*app, error) {
		db.Close()
		return nil, err
	}
	if err := db.CheckVersion(ctx); err != nil {
		return fail(err)
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		return fail(fmt.Errorf("migrate: %w", err))
	}
	if len(applied) > 0 {
		log.Info("database migrated", "dialect", db.Dialect(), "versions", fmt.Sprint(applied))
	}
	if err := db.CheckViews(ctx, registry); err != nil {
		return fail(err)
	}
	if err := db.SyncDataModel(ctx, registry); err != nil {
		return fail(fmt.Errorf("create data-model tables: %w", err))
	}
	sessions, err := m.sessions(db, s, log)
	if err != nil {
		return fail(err)
	}
	exportKey, err := loadKey(s.exportKey, s.dataDir, "export.key", "CP_EXPORT_KEY")
	if err != nil {
		return fail(err)
	}
	previousExportKeys, err := decodeKeys(s.exportPreviousKeys, "CP_EXPORT_PREVIOUS_KEYS")
	if err != nil {
		return fail(err)
	}
	subjectKey, err := loadKey(s.subjectKey, s.dataDir, "subject.key", "CP_SUBJECT_KEY")
	if err != nil {
		return fail(err)
	}
	rkey, err := receiptKey(s)
	if err != nil {
		return fail(err)
	}
	priv := privacy.New(db, registry, privacy.Config{
		ReceiptKey: rkey, ReceiptIssuer: s.instanceName,
		Deduplicate: s.deduplicate, ExportKey: exportKey, PreviousExportKeys: previousExportKeys, SubjectKey: subjectKey, Retention: s.retention,
		Lease: s.lease, RetryDelay: s.retryDelay, DeleteBatch: s.deleteBatch,
		Failpoint: m.failpoint(), Logger: log, Metrics: s.metrics,
	})
	if err := priv.Setup(ctx); err != nil {
		return fail(fmt.Errorf("set up namespaces: %w", err))
	}
	return &app{db: db, registry: registry, sessions: sessions, privacy: priv}, nil
}

// sessions builds the session service, loading or creating the signing key.
func (m *Main) sessions(db *store.DB, s *settings, log *slog.Logger) (*session.Service, error) {
	key, err := loadKey(s.sessionKey, s.dataDir, "session.key", "CP_SESSION_KEY")
	if err != nil {
		return nil, err
	}
	previous, err := decodeKeys(s.sessionPreviousKeys, "CP_SESSION_PREVIOUS_KEYS")
	if err != nil {
		return nil, err
	}
	return session.New(db, session.Config{
		Key: key, PreviousKeys: previous, TTL: s.sessionTTL, RequireSecurityToken: s.requireSecurityToken, Logger: log,
		Metrics: s.metrics,
	})
}

// decodeKeys decodes a comma-separated list of keys (the previous keys of a
// rotation), each as loadKey decodes a setting.
func decodeKeys(setting, name string) ([][]byte, error) {
	var keys [][]byte
	for _, k := range strings.Split(setting, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		key, err := decodeKey(k, name)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// decodeKey decodes one key: hex or base64, at least 32 bytes (the first 32
// are used).
func decodeKey(setting, name string) ([]byte, error) {
	for _, dec := range []func(string) ([]byte, error){hex.DecodeString, base64.StdEncoding.DecodeString, base64.RawURLEncoding.DecodeString} {
		if k, err := dec(setting); err == nil && len(k) >= 32 {
			return k[:32], nil
		}
	}
	return nil, fmt.Errorf("%s must be at least 32 bytes, hex or base64", name)
}

// loadKey decodes a key setting (CP_SESSION_KEY, CP_EXPORT_KEY), or reads
// the data directory's key file, creating it (32 random bytes, mode 0600)
// on first start. Replicas must share the keys: give them the same settings
// or the same data directory.
func loadKey(setting, dataDir, file, name string) ([]byte, error) {
	if setting != "" {
		return decodeKey(setting, name)
	}
	path := filepath.Join(dataDir, file)
	if data, err := os.ReadFile(path); err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(k) < 32 {
			return nil, fmt.Errorf("%s is not a valid key (64 hex digits)", path)
		}
		return k[:32], nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	// An existing directory keeps its mode through MkdirAll: tighten it,
	// it holds the keys and the database (DESIGN §4b).
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadKey("", dataDir, file, name) // another process created it first
	} else if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	return k, f.Close()
}

// failpoint returns the fault-test hook named by CP_FAILPOINT: at that
// step ("delete-after-batch", "collect-after-export") the process kills
// itself with SIGKILL, as kill -9 would, or with "<step>:sleep=2s" pauses
// there, the first time. Unset in production.
func (m *Main) failpoint() func(string) error {
	want := m.Getenv("CP_FAILPOINT")
	if want == "" {
		return nil
	}
	point, action, _ := strings.Cut(want, ":")
	pause, _ := time.ParseDuration(strings.TrimPrefix(action, "sleep="))
	var once sync.Once
	return func(name string) error {
		if name != point {
			return nil
		}
		if pause > 0 {
			once.Do(func() { time.Sleep(pause) }) // a fault test restarts the database meanwhile
			return nil
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// tuneGC sets the garbage collector for a service whose live heap is small
// (tens of MiB) but which allocates for every call: collecting at 5× the
// live heap instead of 2× cuts the collector's CPU per SOAP call by about a
// quarter (bench/README.md), and a soft limit of 160 MiB makes it collect
// sooner when logons' argon2id buffers (19 MiB each) swell the heap. GOGC
// and GOMEMLIMIT, when set, win.
func (m *Main) tuneGC() {
	if m.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if m.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(160 << 20)
	}
}

func (m *Main) serve(ctx context.Context, args []string) error {
	fs, s := m.flags("serve")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := s.validate(); err != nil {
		return err
	}
	log := m.logger(s.logLevel)
	m.tuneGC()
	metricsAllowed, err := netzone.ParsePrefixes(s.metricsSubnets, true)
	if err != nil {
		return fmt.Errorf("CP_METRICS_SUBNETS: %w", err)
	}
	b := readBuildInfo()
	s.metrics = metrics.New(metrics.Options{Logger: log,
		Build: metrics.Build{Version: b.Version, Revision: b.Revision, GoVersion: b.GoVersion, Dirty: b.Dirty}})
	a, err := m.open(ctx, s, log)
	if err != nil {
		return err
	}
	defer a.db.Close()
	s.metrics.WatchDB(a.db.Pool())
	s.metrics.WatchRequests(a.privacy.RequestStats)
	health := metrics.NewHealth(log)
	health.Ready(
		metrics.Check{Reason: "database", Probe: a.db.Ping},
		metrics.Check{Reason: "migrations", Probe: a.db.CheckMigrated},
		metrics.Check{Reason: "keys", Probe: s.keyFilesPresent},
	)
	db, sessions := a.db, a.sessions
	created, generated, err := sessions.EnsureAdmin(ctx, s.adminPassword)
	if err != nil {
		return fmt.Errorf("create the admin operator: %w", err)
	}
	if created && generated != "" {
		fmt.Fprintf(m.Stdout, "\nCreated operator 'admin' with the generated password:\n\n    %s\n\nIt is shown only this once. Set CP_ADMIN_PASSWORD to choose it yourself.\n\n", generated)
	} else if created {
		log.Info("created operator admin with the password from CP_ADMIN_PASSWORD")
	}
	go purgeSessions(ctx, sessions, log)
	schedule, _ := privacy.ParseSchedule(s.workflowSchedule)
	go a.privacy.RunSchedule(ctx, schedule, db.Exclusive)
	log.Info("workflows scheduled", "schedule", schedule.String())
	zone := netzone.Zone{}
	if zone.Allowed, err = netzone.ParsePrefixes(s.allowedSubnets, true); err != nil || len(zone.Allowed) == 0 {
		log.Error("CP_ALLOWED_SUBNETS is empty or invalid: the download and the console deny everyone", "err", err)
		zone.Allowed = nil
	}
	for _, p := range zone.Allowed {
		if p.Bits() == 0 {
			log.Warn("CP_ALLOWED_SUBNETS allows every address", "prefix", p.String())
		}
	}
	if zone.Trusted, err = netzone.ParsePrefixes(s.trustedProxies, false); err != nil {
		return fmt.Errorf("CP_TRUSTED_PROXIES: %w", err)
	}
	soapAllowed, err := netzone.ParsePrefixes(s.soapAllowedSubnets, true)
	if err != nil {
		return fmt.Errorf("CP_SOAP_ALLOWED_SUBNETS: %w", err)
	}
	srv := server.New(server.Config{
		Addr: s.addr, InstanceName: s.instanceName, Version: version,
		FaultHTTPStatus: s.faultHTTPStatus, Logger: log, Ping: db.Ping, Failpoint: m.failpoint(),
		TrustedProxies: zone.Trusted,
		SOAPAllowed:    soapAllowed,
		Persist:        persist.New(db, a.registry, nil),
		Queries:        &querydef.Service{DB: db, Registry: a.registry},
		Metrics:        s.metrics,
	}, a.registry, sessions, a.privacy)
	webServer := web.New(web.Config{Zone: zone, Logger: log, Metrics: s.metrics,
		Workflows: func(ctx context.Context) ([]privacy.Report, error) { return a.privacy.Run(ctx, "all") }}, sessions, a.privacy)
	mux := http.NewServeMux()
	srv.Register(mux)
	webServer.Register(mux)
	health.Register(mux)
	metricsHandler := s.metrics.Handler(netzone.Zone{Allowed: metricsAllowed, Trusted: zone.Trusted})
	if s.metricsAddr == "" {
		mux.Handle("GET /metrics", metricsHandler)
	} else {
		own := http.NewServeMux()
		own.Handle("GET /metrics", metricsHandler)
		health.Register(own)
		addr, err := serveMetrics(ctx, s.metricsAddr, own, log)
		if err != nil {
			return fmt.Errorf("CP_METRICS_ADDR: %w", err)
		}
		log.Info("metrics listening", "addr", addr)
	}
	return srv.ListenAndServe(ctx, mux, func(addr string) {
		log.Info("campaign-privacy listening", "addr", addr, "dialect", db.Dialect(), "version", version)
		if m.Ready != nil {
			m.Ready(addr)
		}
	})
}

// purgeSessions deletes long-expired session rows every hour until ctx ends.
func purgeSessions(ctx context.Context, sessions *session.Service, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := sessions.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
			log.Warn("purging expired sessions failed", "err", err)
		} else if n > 0 {
			log.Info("purged expired sessions", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Main) migrate(ctx context.Context, args []string) error {
	fs, s := m.flags("migrate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := m.logger(s.logLevel)
	a, err := m.open(ctx, s, log)
	if err != nil {
		return err
	}
	defer a.db.Close()
	v, err := a.db.Version(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "database schema at version %d (%s)\n", v, a.db.Dialect())
	return nil
}

// passwordFromStdin reads an operator's password from the first line of
// standard input: a password is never a flag, where ps and shell history
// would see it.
func (m *Main) passwordFromStdin(sub, login string, passwordStdin bool) (string, error) {
	if login == "" || !passwordStdin {
		return "", fmt.Errorf("operator %s needs --login and --password-stdin (the password is never a flag)", sub)
	}
	line, err := bufio.NewReader(m.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (m *Main) operator(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errors.New("operator needs a subcommand: create, list, disable, unlock, password or rights")
	}
	sub, args := args[0], args[1:]
	fs, s := m.flags("operator " + sub)
	var (
		login         string
		passwordStdin bool
		rights        multiFlag
	)
	fs.StringVar(&login, "login", "", "operator login")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.Var(&rights, "right", "named right (admin, privacyRight); repeat or separate with commas")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := m.logger(s.logLevel)
	a, err := m.open(ctx, s, log)
	if err != nil {
		return err
	}
	defer a.db.Close()
	sessions := a.sessions
	switch sub {
	case "create":
		password, err := m.passwordFromStdin(sub, login, passwordStdin)
		if err != nil {
			return err
		}
		if err := sessions.CreateOperator(ctx, login, password, rights); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "operator %s created\n", login)
	case "list":
		ops, err := sessions.Operators(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LOGIN\tRIGHTS\tSTATE\tCREATED")
		for _, op := range ops {
			state := "active"
			if op.Disabled {
				state = "disabled"
			} else if op.LockedUntil != nil && time.Now().Before(*op.LockedUntil) {
				state = "locked until " + op.LockedUntil.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", op.Login, strings.Join(op.RightList(), ","), state, op.Created.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "disable":
		if login == "" {
			return errors.New("operator disable needs --login")
		}
		if err := sessions.DisableOperator(ctx, login); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "operator %s disabled; its sessions are revoked\n", login)
	case "password":
		password, err := m.passwordFromStdin(sub, login, passwordStdin)
		if err != nil {
			return err
		}
		if err := sessions.SetPassword(ctx, login, password); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "operator %s has a new password; its sessions are revoked\n", login)
	case "rights":
		if login == "" {
			return errors.New("operator rights needs --login")
		}
		if err := sessions.SetRights(ctx, login, rights); err != nil {
			return err
		}
		held := strings.Join(rights, ", ")
		if held == "" {
			held = "no named right"
		}
		fmt.Fprintf(m.Stdout, "operator %s now holds: %s\n", login, held)
	case "unlock":
		if login == "" {
			return errors.New("operator unlock needs --login")
		}
		if err := sessions.UnlockOperator(ctx, login); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "operator %s unlocked\n", login)
	default:
		return fmt.Errorf("unknown operator subcommand %q", sub)
	}
	return nil
}

func (m *Main) namespace(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errors.New("namespace needs a subcommand: create, update or list")
	}
	sub, args := args[0], args[1:]
	fs, s := m.flags("namespace " + sub)
	var ns store.Namespace
	fs.StringVar(&ns.Name, "name", "", "internal name (the namespaceName of CreateRequestByName)")
	fs.StringVar(&ns.Label, "label", "", "label")
	fs.StringVar(&ns.TargetSchema, "schema", "nms:recipient", "target schema")
	fs.StringVar(&ns.ReconciliationKey, "key", "", "reconciliation key, an attribute of the target schema such as @account")
	fs.Int64Var(&ns.AecID, "aec-id", 0, "AEC namespace id (Identity Service)")
	fs.StringVar(&ns.MatchRule, "match", "exact", "match rule: exact (ACC), email (case-folded) or phone (E.164)")
	fs.StringVar(&ns.DefaultRegion, "region", "", "the phone rule's region for numbers without +country, such as US")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := m.open(ctx, s, m.logger(s.logLevel))
	if err != nil {
		return err
	}
	defer a.db.Close()
	switch sub {
	case "create":
		if err := a.privacy.CreateNamespace(ctx, nil, ns); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "namespace %s created\n", ns.Name)
	case "update":
		// A flag not given keeps what the namespace has (--match's default
		// is for create). A changed rule rewrites the namespace's stored
		// field to its canonical form before this returns.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["match"] || !set["region"] {
			all, err := a.privacy.Namespaces(ctx)
			if err != nil {
				return err
			}
			for _, old := range all {
				if old.Name == ns.Name && !set["match"] {
					ns.MatchRule = old.MatchRule
				}
				if old.Name == ns.Name && !set["region"] {
					ns.DefaultRegion = old.DefaultRegion
				}
			}
		}
		if err := a.privacy.UpdateNamespace(ctx, nil, ns); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "namespace %s updated\n", ns.Name)
	case "list":
		all, err := a.privacy.Namespaces(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tLABEL\tTARGET\tKEY\tAEC ID\tMATCH\tREGION")
		for _, n := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.Name, n.Label, n.TargetSchema, n.ReconciliationKey, n.AecID, n.MatchRule, n.DefaultRegion)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown namespace subcommand %q", sub)
	}
	return nil
}

func (m *Main) workflow(ctx context.Context, args []string) error {
	if len(args) < 2 || args[0] != "run" {
		fmt.Fprint(m.Stderr, usage)
		return errors.New("usage: workflow run <" + strings.Join(privacy.Workflows, "|") + "|all>")
	}
	name := args[1]
	fs, s := m.flags("workflow run")
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	if err := s.validate(); err != nil {
		return err
	}
	a, err := m.open(ctx, s, m.logger(s.logLevel))
	if err != nil {
		return err
	}
	defer a.db.Close()
	reports, err := a.privacy.Run(ctx, name)
	for _, r := range reports {
		fmt.Fprintln(m.Stdout, r)
	}
	return err
}

func (m *Main) demoData(ctx context.Context, args []string) error {
	fs, s := m.flags("demo-data")
	recipients := fs.Int("recipients", 1000, "number of recipients to add")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *recipients < 1 || *recipients > 50_000_000 {
		return errors.New("--recipients must be between 1 and 50000000")
	}
	a, err := m.open(ctx, s, m.logger(s.logLevel))
	if err != nil {
		return err
	}
	defer a.db.Close()
	start := time.Now()
	g := &demodata.Generator{DB: a.db, Registry: a.registry, Seed: *seed}
	first, last, err := g.Generate(ctx, *recipients, func(done int) {
		if done%100_000 == 0 {
			fmt.Fprintf(m.Stderr, "%d recipients…\n", done)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "added recipients %s to %s in %s\n", demodata.Email(first), demodata.Email(last), time.Since(start).Round(time.Millisecond))
	return nil
}

// multiFlag collects a repeatable, comma-separable flag.
type multiFlag []string

func (f *multiFlag) String() string { return strings.Join(*f, ",") }

func (f *multiFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*f = append(*f, p)
		}
	}
	return nil
}
