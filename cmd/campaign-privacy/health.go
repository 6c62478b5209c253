package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// serveMetrics serves handler on the listener of CP_METRICS_ADDR (opened
// with the main one, before the database, so a port in use stops the
// start) until ctx ends.
func serveMetrics(ctx context.Context, ln net.Listener, handler http.Handler, log *slog.Logger) {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
}

// keyFilesReadable returns the readiness check "keys": every key serve
// read from the data directory still reads from its file as the next
// start would read it (readKeyFile). A key given by setting has no file.
// A key file removed (the next start would make a new key, which the
// database's fingerprint then refuses) or overwritten with something that
// is not a key (a placeholder, a secret mount gone wrong: the next start
// refuses to run) is better told now than at the restart. Another valid
// key is not a failure: it is how a rotation is staged (the new key in
// the file, the old one among the previous keys of the restart's
// settings), and every replica sharing the directory would drop out at
// once until restarted; a start with another key that is not a rotation
// is refused then, by the keys' fingerprints. The error names the file,
// never what it holds.
func (s *settings) keyFilesReadable() func(context.Context) error {
	files := []struct{ setting, file string }{
		{s.sessionKey, "session.key"}, {s.exportKey, "export.key"}, {s.subjectKey, "subject.key"}, {s.receiptKey, "receipt.key"},
	}
	return func(context.Context) error {
		for _, k := range files {
			if k.setting != "" {
				continue
			}
			_, err := readKeyFile(filepath.Join(s.dataDir, k.file))
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("the key file %s is missing from the data directory", k.file)
			} else if err != nil {
				return err
			}
		}
		return nil
	}
}

// healthcheck asks the server at CP_ADDR (or --addr) whether it is ready:
// GET /readyz, exit 0 on 200, else 1 with the reason. A container image
// without a shell or curl uses it as its HEALTHCHECK.
func (m *Main) healthcheck(ctx context.Context, args []string) error {
	_, s, err := m.parse("healthcheck", args, nil)
	if err != nil {
		return err
	}
	url, err := readyURL(s.addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// The server is this machine's: no proxy from the environment.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	reason := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		if reason == "" {
			reason = resp.Status
		}
		return fmt.Errorf("not ready: %s (%s)", reason, url)
	}
	fmt.Fprintln(m.Stdout, "ready")
	return nil
}

// readyURL is the /readyz of a listen address: an address that listens on
// every interface (":8080", "0.0.0.0:8080", "[::]:8080") is asked on the
// loopback.
func readyURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("CP_ADDR %q is not host:port: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
