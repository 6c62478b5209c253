package web_test

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
)

// TestMultipartRangeClosedEarly: a multipart/byteranges download
// that the client abandons. http.ServeContent reads the file from a
// goroutine of its own for multipart answers and returns, without waiting
// for it, when the client goes; handleFile then closes the chunk reader
// (defer rd.Close) while that goroutine may still be seeking and reading
// it. Run with -race.
func TestMultipartRangeClosedEarly(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	id := bigFile(t, w, 3)
	ana := newBrowser(t, w.env.URL)
	ana.logon("ana", "ana password")
	path := "/nms/gdpr.jssp?id=" + strconv.FormatInt(id, 10)
	for i := range 20 {
		conn, status := rawGetRange(t, ana, path, "bytes=0-100,"+strconv.Itoa(300000+i)+"-2000000,2200000-2300000")
		if status != "HTTP/1.1 206" {
			t.Fatalf("status %q", status)
		}
		conn.Close()
	}
	time.Sleep(500 * time.Millisecond)
}

// rawGetRange is harden_test's rawGet with a Range header.
func rawGetRange(t *testing.T, b *browser, path, rng string) (net.Conn, string) {
	t.Helper()
	u, _ := url.Parse(b.base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	var cookies []string
	for _, c := range b.c.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nRange: %s\r\nCookie: %s\r\n\r\n", path, u.Host, rng, strings.Join(cookies, "; "))
	line := make([]byte, 12)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, line); err != nil {
		t.Fatal(err)
	}
	return conn, string(line)
}
