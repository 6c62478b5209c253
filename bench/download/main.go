// Command download measures the data-subject file path end to end with the
// real binary on the embedded SQLite store (or PostgreSQL, -store): the
// collect that writes the encrypted file (its peak RSS), and the streamed
// download of
// /nms/gdpr.jssp (throughput, the server's peak RSS and CPU time), beside a
// bare Go server sending the same bytes with http.ServeContent from a plain
// file (a process of its own, as the product; the same server in the
// client's own process is measured too, for comparison), in interleaved
// rounds read by the same client into io.Discard.
//
//	go run ./bench/download -sizes 10,100
//
// Everything runs on loopback, bounded by the sizes given.
package main

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

func main() {
	sizes := flag.String("sizes", "10,100", "approximate file sizes in MB")
	rounds = flag.Int("rounds", 5, "interleaved download rounds per size, measured on the fresh server and again after the warm-up")
	warmup = flag.Int("warmup", 50, "unmeasured interleaved rounds between the fresh server's rounds and the warm server's, at least")
	warmupMB = flag.Int("warmup-mb", 400, "and more of them until the product has sent this many MB")
	concurrent = flag.Int("concurrent", 20, "then this many downloads of the file at once, each on its own connection (security-bar #84; 0: none)")
	storeName = flag.String("store", "sqlite", "the product's store: sqlite, or postgres (a schema of its own at CP_BENCH_POSTGRES_URL, dropped after)")
	serveFile := flag.String("serve-file", "", "internal: serve this file with http.ServeContent on -addr (the bare server, a process of its own)")
	addr := flag.String("addr", "", "internal: -serve-file's address")
	flag.Parse()
	if *serveFile != "" {
		servePlain(*serveFile, *addr)
		return
	}
	if *storeName != "sqlite" && *storeName != "postgres" {
		fatalf("bad -store %q", *storeName)
	}
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() { fatalf("stopped by %v", <-interrupted) }()
	tmp, err := os.MkdirTemp("", "cp-bench-download-*")
	check(err)
	defer os.RemoveAll(tmp)
	onExit(func() { os.RemoveAll(tmp) })
	bin := filepath.Join(tmp, "campaign-privacy")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/campaign-privacy").CombinedOutput()
	if err != nil {
		fatalf("build: %s", out)
	}
	fmt.Println("| file | rows | collect | collect peak RSS | server | download | ServeContent | ratio [rounds] | ServeContent in the client's process (ratio) | server peak RSS | server CPU per MiB (ServeContent's) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range strings.Split(*sizes, ",") {
		mb, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		run(bin, filepath.Join(tmp, "mb"+s), mb)
	}
	fmt.Println()
	for _, l := range together {
		fmt.Println(l)
	}
	// Issue 16's target, gathered by bench/run.sh.
	fmt.Println()
	for _, r := range ratios {
		mark := "✗"
		if r.ratio >= 0.8 {
			mark = "✓"
		}
		fmt.Printf("target: %s download of a %.1f MB file from %s ≥ 0.8× http.ServeContent of the plain file (warm server): %.2f× (goal ≥ 0.80×)\n",
			mark, r.mb, storeLabel[*storeName], r.ratio)
	}
}

// rounds is how many times each side downloads the file, on the fresh
// server and on the warm one; warmup how many times in between, unmeasured.
// A fresh server's first downloads cost up to three times the CPU of later
// ones: its heap grows into pages the system has not given it yet, and a
// page fault is expensive on these (virtual) machines. A service that runs
// for days is the warm one; both are printed, the target is the warm one's.
// How fast the heap grows to its size depends on the garbage a download
// makes, a share of its bytes: the warm-up counts bytes as well as rounds.
var rounds, warmup, warmupMB, concurrent *int

// storeName is the product's store (-store).
var storeName *string

// storeLabel names each store in the target lines.
var storeLabel = map[string]string{"sqlite": "SQLite", "postgres": "PostgreSQL"}

// defaultPostgres is the server -store postgres uses without
// CP_BENCH_POSTGRES_URL: the machine's, in a schema of the run's own.
const defaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// database returns the product's store configuration for one size, its
// environment, and the connection plain SQL reads it through; drop
// removes what it made.
func database(ctx context.Context, dir string) (cfg store.Config, env []string, conn *sql.DB, drop func()) {
	if *storeName == "sqlite" {
		conn, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.SQLiteFile)+"?mode=ro")
		check(err)
		return store.Config{DataDir: dir}, nil, conn, func() { conn.Close() }
	}
	base := os.Getenv("CP_BENCH_POSTGRES_URL")
	if base == "" {
		base = defaultPostgres
	}
	admin, err := sql.Open("pgx", base)
	check(err)
	var tag [4]byte
	_, _ = crand.Read(tag[:])
	schema := "cp_bench_download_" + hex.EncodeToString(tag[:])
	_, err = admin.ExecContext(ctx, "CREATE SCHEMA "+schema)
	check(err)
	u, err := url.Parse(base)
	check(err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	conn, err = sql.Open("pgx", u.String())
	check(err)
	var once sync.Once
	drop = func() {
		once.Do(func() {
			conn.Close()
			_, _ = admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			admin.Close()
		})
	}
	onExit(drop)
	return store.Config{DataDir: dir, DatabaseURL: u.String()}, []string{"CP_DATABASE_URL=" + u.String()}, conn, drop
}

// together are the lines of the concurrent downloads, printed after the
// table.
var together []string

// ratios are each size's download ÷ ServeContent, for the target lines.
var ratios []struct{ mb, ratio float64 }

// run measures one file size in a fresh data directory.
func run(bin, dir string, mb int) {
	ctx := context.Background()
	check(os.MkdirAll(dir, 0o700))
	dbCfg, dbEnv, conn, drop := database(ctx, dir)
	defer drop()
	env := append([]string{"CP_DATA_DIR=" + dir, "CP_ADMIN_PASSWORD=bench admin 1", "CP_WORKFLOW_SCHEDULE=24h", "CP_LOG_LEVEL=warn",
		// The concurrent downloads are one operator's (default 4 at once).
		"CP_DOWNLOADS_PER_OPERATOR=" + strconv.Itoa(max(4, *concurrent))}, dbEnv...)
	cli := func(args ...string) (*os.ProcessState, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			fatalf("%v: %v\n%s", args, err, out)
		}
		return cmd.ProcessState, string(out)
	}
	cli("migrate")

	// One subject with enough delivery logs for a file of about mb MB
	// (a row is about 330 bytes of XML). The logs vary as a real
	// subject's do (servertest.DeliveryLogs): the file compresses about as
	// well as a real one, not as a row repeated.
	rows := mb * 1_000_000 / 330
	db, err := store.Open(ctx, dbCfg)
	check(err)
	check(db.InsertRows(ctx, "nms_recipient", []string{"id", "email", "first_name"}, [][]any{{int64(1), "big@example.com", "Big"}}))
	next := servertest.DeliveryLogs("big@example.com", time.Now())
	for start := 0; start < rows; start += 50_000 {
		batch := make([][]any, 0, min(50_000, rows-start))
		for range cap(batch) {
			batch = append(batch, next())
		}
		check(db.InsertRows(ctx, "nms_broad_log_rcp", servertest.DeliveryLogColumns, batch))
	}
	db.Close()

	port := freePort()
	srv := exec.Command(bin, "serve")
	srv.Env = append(os.Environ(), append(env, "CP_ADDR=127.0.0.1:"+port)...)
	check(srv.Start())
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	onExit(func() { _ = srv.Process.Kill() })
	base := "http://127.0.0.1:" + port
	waitUp(base)
	body := post(base, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("admin", "bench admin 1")))
	token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
	security := servertest.Between(body, "<pstrSecurityToken xsi:type='xsd:string'>", "<")
	create := servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken>`+token+
		`</sessiontoken><namespaceName>defaultNamespace1</namespaceName><reconciliationValue>big@example.com</reconciliationValue><type>1</type><confirmDeletePending>false</confirmDeletePending></m:CreateRequestByName>`)
	id := servertest.Between(post(base, "nms:privacyRequest#CreateRequestByName", create), "<id xsi:type='xsd:int'>", "<")

	idle := vmRSS(srv.Process.Pid) // before any download
	start := time.Now()
	state, report := cli("workflow", "run", "collectPrivacyRequests")
	if !strings.Contains(report, "1 processed") {
		fatalf("collect: %s", report)
	}
	collect := time.Since(start)
	collectRSS := state.SysUsage().(*syscall.Rusage).Maxrss // KiB
	var stored int64                                        // the sealed chunks' bytes, by plain SQL
	check(conn.QueryRow("SELECT SUM(LENGTH(data)) FROM privacy_export_chunks").Scan(&stored))

	// Download through the product once into a file: the plain file the
	// bare server sends.
	download := func(w io.Writer) int64 {
		req, _ := http.NewRequest("GET", base+"/nms/gdpr.jssp?id="+id, nil)
		req.Header.Set("X-Session-Token", token)
		req.Header.Set("X-Security-Token", security)
		resp, err := http.DefaultClient.Do(req)
		check(err)
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			fatalf("download: %d", resp.StatusCode)
		}
		n, err := io.Copy(w, resp.Body)
		check(err)
		return n
	}
	file := filepath.Join(dir, "export.xml")
	f, err := os.Create(file)
	check(err)
	n := download(f)
	check(f.Close())
	fmt.Printf("%.1f MB file stored in %.1f MB of sealed chunks (%.1f× smaller)\n", float64(n)/1e6, float64(stored)/1e6, float64(n)/float64(stored))

	// The same bytes from a plain file with http.ServeContent, served by
	// a process of its own, as the product is (and as bench/soap's
	// ceilings are): a server in the client's own process hands the bytes
	// over within one Go runtime, without the wake-ups of two processes.
	// That one is measured too, for comparison with the figures before.
	self, err := os.Executable()
	check(err)
	plainAddr := "127.0.0.1:" + freePort()
	plainSrv := exec.Command(self, "-serve-file", file, "-addr", plainAddr)
	plainSrv.Stderr = os.Stderr
	check(plainSrv.Start())
	defer func() { _ = plainSrv.Process.Kill(); _ = plainSrv.Wait() }()
	onExit(func() { _ = plainSrv.Process.Kill() })
	waitUp("http://" + plainAddr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	inProcess := &http.Server{Handler: plainHandler(file)}
	go func() { _ = inProcess.Serve(ln) }()
	defer inProcess.Close()
	get := func(addr string) {
		resp, err := http.Get("http://" + addr + "/")
		check(err)
		defer resp.Body.Close()
		if m, err := io.Copy(io.Discard, resp.Body); err != nil || m != n {
			fatalf("ServeContent: %d of %d bytes: %v", m, n, err)
		}
	}
	serveContent := func() { get(plainAddr) }
	serveContentHere := func() { get(ln.Addr().String()) }

	// Interleaved rounds, all read by the same client into io.Discard;
	// the medians are compared.
	measure := func(server string) float64 {
		var products, ceilings, here []time.Duration
		var serverCPU, plainCPU time.Duration
		// Each round runs the three in an order rotated every round (as
		// bench/soap's rounds do): none always follows the same one.
		timed := func(runs *[]time.Duration, fn func()) func() {
			return func() {
				start := time.Now()
				fn()
				*runs = append(*runs, time.Since(start))
			}
		}
		// costed adds to cpu what fn cost process pid, read outside fn.
		costed := func(pid int, cpu *time.Duration, fn func()) func() {
			return func() {
				before := cpuTime(pid)
				fn()
				*cpu += cpuTime(pid) - before
			}
		}
		order := []func(){
			costed(srv.Process.Pid, &serverCPU, timed(&products, func() {
				if m := download(io.Discard); m != n {
					fatalf("download: %d of %d bytes", m, n)
				}
			})),
			costed(plainSrv.Process.Pid, &plainCPU, timed(&ceilings, serveContent)),
			timed(&here, serveContentHere),
		}
		for round := range *rounds {
			for i := range order {
				order[(round+i)%len(order)]()
			}
		}
		serverRSS := vmHWM(srv.Process.Pid)
		product, ceiling := median(products), median(ceilings)
		mbps := func(d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
		lo, hi := ratioRange(products, ceilings)
		inClient := median(here)
		perMiB := func(cpu time.Duration) float64 {
			return float64(cpu.Microseconds()) / 1000 / float64(*rounds) / (float64(n) / (1 << 20))
		}
		fmt.Printf("| %.1f MB | %d | %s | %.0f MiB | %s | %.0f MB/s | %.0f MB/s | %.2f× [%.2f..%.2f] | %.0f MB/s (%.2f×) | %.0f MiB | %.2f ms (%.2f ms) |\n",
			float64(n)/(1<<20), rows, collect.Round(10*time.Millisecond), float64(collectRSS)/1024, server,
			mbps(product), mbps(ceiling), ceiling.Seconds()/product.Seconds(), lo, hi,
			mbps(inClient), inClient.Seconds()/product.Seconds(), float64(serverRSS)/1024,
			perMiB(serverCPU), perMiB(plainCPU))
		return ceiling.Seconds() / product.Seconds()
	}
	measure("fresh")
	warm := max(*warmup, int(int64(*warmupMB)*1_000_000/n))
	for range warm {
		download(io.Discard)
		serveContent()
		serveContentHere()
	}
	ratios = append(ratios, struct{ mb, ratio float64 }{float64(n) / (1 << 20), measure(fmt.Sprintf("warm (after %d more)", warm))})
	if *concurrent > 0 {
		together = append(together, downloadTogether(srv.Process.Pid, idle, *concurrent, n, download))
	}
}

// downloadTogether runs c downloads at once, each on a connection of its
// own, checks every byte count, and says how long they took and how much
// the server's resident set grew over what it was before them (sampled
// every 20 ms): the security bar asks ≤ 64 MiB for 20 files of 50 MiB.
// idle is the server's resident set before its first download: the peak
// over it is said too, as the one before them depends on when the
// collector last gave memory back.
func downloadTogether(pid int, idle int64, c int, n int64, download func(io.Writer) int64) string {
	before := vmRSS(pid)
	stop, peak := make(chan struct{}), make(chan int64)
	go func() {
		top := before
		for {
			select {
			case <-stop:
				peak <- max(top, vmRSS(pid))
				return
			case <-time.After(20 * time.Millisecond):
				top = max(top, vmRSS(pid))
			}
		}
	}()
	start := time.Now()
	got := make(chan int64, c)
	for range c {
		go func() { got <- download(io.Discard) }()
	}
	for range c {
		if m := <-got; m != n {
			fatalf("concurrent download: %d of %d bytes", m, n)
		}
	}
	wall := time.Since(start)
	close(stop)
	top := <-peak
	return fmt.Sprintf("%d downloads of the %.1f MB file at once: %.2f s, %.0f MB/s in all; server VmRSS %.0f MiB before, peak %.0f MiB (+%.0f MiB; %.0f MiB before the server's first download)",
		c, float64(n)/(1<<20), wall.Seconds(), float64(n)*float64(c)/(1<<20)/wall.Seconds(), float64(before)/1024, float64(top)/1024, float64(top-before)/1024, float64(idle)/1024)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// ratioRange is the lowest and highest ratio of one round.
func ratioRange(products, ceilings []time.Duration) (lo, hi float64) {
	lo = math.Inf(1)
	for i := range products {
		r := ceilings[i].Seconds() / products[i].Seconds()
		lo, hi = min(lo, r), max(hi, r)
	}
	return lo, hi
}

func post(base, action, envelope string) string {
	req, _ := http.NewRequest("POST", base+"/nl/jsp/soaprouter.jsp", strings.NewReader(envelope))
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("SOAPAction", action)
	resp, err := http.DefaultClient.Do(req)
	check(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func waitUp(base string) {
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(base + "/r/test"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fatalf("server did not start")
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// cpuTime is the CPU time a process's threads have run, to the
// nanosecond: the sum of /proc/<pid>/task/*/schedstat (the Go runtime
// keeps its threads; one that ended would not be counted). What a download
// costs the server, less disturbed by other load on the machine than its
// wall time. /proc/<pid>/stat counts in clock ticks of 10 ms, longer than
// the whole download of a small file.
func cpuTime(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	check(err)
	var total time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread ended meanwhile
		}
		ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		check(err)
		total += time.Duration(ns)
	}
	return total
}

// vmHWM is the peak resident set of a process, KiB.
func vmHWM(pid int) int64 { return procStatus(pid, "VmHWM:") }

// vmRSS is the resident set of a process now, KiB.
func vmRSS(pid int) int64 { return procStatus(pid, "VmRSS:") }

// procStatus is a KiB field of /proc/<pid>/status.
func procStatus(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

// atExit are run, last first, before the program stops on an error or an
// interrupt (bench/run.sh's time limit): a PostgreSQL schema is not left
// behind.
var (
	atExitMu sync.Mutex
	atExit   []func()
)

func onExit(f func()) {
	atExitMu.Lock()
	defer atExitMu.Unlock()
	atExit = append(atExit, f)
}

func fatalf(format string, args ...any) {
	atExitMu.Lock() // held: nothing is added, and a second fatalf waits for the exit
	for i := len(atExit) - 1; i >= 0; i-- {
		atExit[i]()
	}
	log.Fatalf(format, args...)
}

// plainHandler sends file with http.ServeContent: the bare server.
func plainHandler(file string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fh, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer fh.Close()
		http.ServeContent(w, r, "export.xml", time.Now(), fh)
	})
}

// servePlain is -serve-file: the bare server as a process of its own,
// until it is killed. /r/test answers as the product's does, for waitUp.
func servePlain(file, addr string) {
	mux := http.NewServeMux()
	mux.Handle("/", plainHandler(file))
	mux.HandleFunc("/r/test", func(w http.ResponseWriter, r *http.Request) {})
	log.Fatal(http.ListenAndServe(addr, mux))
}
