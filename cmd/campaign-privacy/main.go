// Command campaign-privacy runs the ACC-compatible privacy service and its
// administration commands. Main does all the wiring: settings come from
// flags or CP_* environment variables, and are pushed into each package's
// Config; no other package reads the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // a local-time CP_WORKFLOW_SCHEDULE works in a scratch image

	"github.com/campaign-privacy/campaign-privacy/internal/app"
	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
	"github.com/campaign-privacy/campaign-privacy/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0) // the help was asked for and printed
		}
		if jsonLogs(os.Getenv("CP_LOG_FORMAT"), os.Args[1:]) {
			// One JSON object a line, this one too: a collector parsing
			// each line would drop the line saying why it stopped.
			slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("campaign-privacy stopped", "err", errorText(err))
		} else {
			fmt.Fprintln(os.Stderr, "campaign-privacy:", errorText(err))
		}
		os.Exit(1)
	}
}

// jsonLogs reports whether the logs are JSON: --log-format (the flag wins)
// or CP_LOG_FORMAT.
func jsonLogs(env string, args []string) bool {
	format := env
	for i, a := range args {
		switch {
		case a == "--log-format" || a == "-log-format":
			if i+1 < len(args) {
				format = args[i+1]
			}
		case strings.HasPrefix(a, "--log-format=") || strings.HasPrefix(a, "-log-format="):
			format = a[strings.Index(a, "=")+1:]
		}
	}
	return format == "json"
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
	// ProgressEvery is how often long work writes a progress line when
	// standard error is not a terminal (0: every 5 s).
	ProgressEvery time.Duration
	// progressLog writes progress lines as JSON when the logs are JSON
	// (set by logger).
	progressLog *slog.Logger
}

// Run dispatches a command line.
func (m *Main) Run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(m.Stdout, usage)
		return nil
	}
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
		if helpRequested(args) {
			return m.help("version", nil)
		}
		readBuildInfo().write(m.Stdout)
		return nil
	case "help":
		switch {
		case len(args) == 0:
			fmt.Fprint(m.Stdout, usage)
			return nil
		case args[0] == "settings":
			fmt.Fprint(m.Stdout, "Settings (flag or CP_* environment variable; the flag wins):\n"+settingsHelp())
			return nil
		}
		if err := m.Run(ctx, append(args, "--help")); !errors.Is(err, flag.ErrHelp) {
			return err
		}
		return nil
	}
	fmt.Fprint(m.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func (m *Main) logger(s *settings) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.logLevel}
	if s.logFormat == "json" {
		// Progress lines too: one JSON object a line on standard error.
		m.progressLog = slog.New(slog.NewJSONHandler(m.Stderr, nil))
		return slog.New(slog.NewJSONHandler(m.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(m.Stderr, opts))
}

// open builds the service from the settings (internal/app does the
// wiring): the custom schemas, the keys, each package's Config.
func (m *Main) open(ctx context.Context, s *settings, log *slog.Logger, adjust ...func(*app.Config)) (*app.App, error) {
	var custom fs.FS
	if s.schemasDir != "" {
		if st, err := os.Stat(s.schemasDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("CP_SCHEMAS_DIR %s is not a directory", s.schemasDir)
		}
		custom = os.DirFS(s.schemasDir)
	}
	k, err := loadKeys(s)
	if err != nil {
		return nil, err
	}
	receiptPrevious, err := receiptPreviousKeys(s)
	if err != nil {
		return nil, err
	}
	cfg := app.Config{
		Store:     store.Config{DatabaseURL: s.databaseURL, DataDir: s.dataDir},
		Schemas:   custom,
		Logger:    log,
		Failpoint: m.failpoint(),
		Session: session.Config{
			Key: k.session, PreviousKeys: k.sessionPrevious, TTL: s.sessionTTL, RequireSecurityToken: s.requireSecurityToken,
			MaxSessions: offIfZero(s.sessionsPerOperator),
		},
		Privacy: privacy.Config{
			ReceiptKey: k.receipt, ReceiptIssuer: s.instanceName, ReceiptPreviousKeys: receiptPrevious,
			Deduplicate: s.deduplicate, ExportKey: k.export, PreviousExportKeys: k.exportPrevious, SubjectKey: k.subject,
			Retention: s.retention, Schedule: &s.workflowSchedule, Lease: s.lease, RetryDelay: s.retryDelay, DeleteBatch: s.deleteBatch,
			PlainVacuum: s.plainVacuum,
			CreateRate:  float64(offIfZero(s.createRate)), CreateBurst: s.createBurst,
		},
		Server: server.Config{
			Addr: s.addr, InstanceName: s.instanceName, Version: version, FaultHTTPStatus: s.faultHTTPStatus,
			TrustedProxies: s.trustedProxies, SOAPAllowed: s.soapAllowedSubnets,
		},
		Web: web.Config{Zone: m.zone(s), Downloads: web.DownloadLimits{
			Total: s.downloadsMax, PerOperator: s.downloadsPerOperator, MinRate: int64(s.downloadMinRate)}},
	}
	for _, f := range adjust {
		f(&cfg)
	}
	return app.Open(ctx, cfg)
}

// offIfZero maps a setting's 0 ("no limit") to the services' negative
// value (their zero means "the default").
func offIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
