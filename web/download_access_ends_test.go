//go:build unix

package web_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestDownloadStopsWhenAccessEnds: a download under way when the operator's
// access ends — the right taken away, the operator disabled, its password
// changed, a logoff from the console — stops there, as a new request is
// refused (DESIGN §4: the session is checked on every call). At the
// minimum read speed a large file streams for hours; it must not go on
// being sent. The client's small receive buffer, set before it connects,
// keeps the server's socket buffers to a few MB of the 10.9 MB file: what
// the client receives after the access ended is at most what was in
// flight.
func TestDownloadStopsWhenAccessEnds(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			w := newWorld(t, dialect, servertest.Options{})
			id := bigFile(t, w, 12)
			file := "/nms/gdpr.jssp?id=" + strconv.FormatInt(id, 10)
			sessions := w.env.Sessions
			for i, end := range []struct {
				name string
				do   func(login string, b *browser)
			}{
				{"right removed", func(login string, _ *browser) {
					if err := sessions.SetRights(w.ctx, login, nil); err != nil {
						t.Fatal(err)
					}
				}},
				{"operator disabled", func(login string, _ *browser) {
					if err := sessions.DisableOperator(w.ctx, login); err != nil {
						t.Fatal(err)
					}
				}},
				{"password changed", func(login string, _ *browser) {
					if err := sessions.SetPassword(w.ctx, login, "another password"); err != nil {
						t.Fatal(err)
					}
				}},
				{"logged off", func(_ string, b *browser) {
					if resp, _ := b.do("POST", "/privacy/logoff", url.Values{"csrf": {b.csrf}}); resp.StatusCode != http.StatusSeeOther {
						t.Fatalf("logoff: %d", resp.StatusCode)
					}
				}},
			} {
				t.Run(end.name, func(t *testing.T) {
					login := "reader" + strconv.Itoa(i)
					w.env.Operator(t, login, "reader password", session.RightPrivacy)
					b := newBrowser(t, w.env.URL)
					b.logon(login, "reader password")
					conn, resp := slowGet(t, b, file)
					defer conn.Close()
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("download: %d", resp.StatusCode)
					}
					first := make([]byte, 64<<10)
					if _, err := io.ReadFull(resp.Body, first); err != nil {
						t.Fatal(err)
					}
					end.do(login, b)
					if again, _ := b.do("GET", file, nil); again.StatusCode == http.StatusOK {
						t.Fatalf("a new download after the access ended: %d", again.StatusCode)
					}
					_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
					rest, _ := io.Copy(io.Discard, resp.Body)
					got := int64(len(first)) + rest
					t.Logf("received %d of %d bytes", got, resp.ContentLength)
					if got >= resp.ContentLength {
						t.Fatalf("the download went on after the access ended: %d of %d bytes", got, resp.ContentLength)
					}
					want := fmt.Sprintf(`msg="download stopped: the operator's access has ended" id=%d operator_id=`, id)
					if !strings.Contains(w.env.Logs.String(), want) {
						t.Errorf("the stop is not logged (%s)", want)
					}
				})
			}
		})
	}
}

// slowGet opens a download on a socket whose receive buffer is set small
// before it connects (so the window the server sees stays small), and
// reads the response's header.
func slowGet(t *testing.T, b *browser, path string) (net.Conn, *http.Response) {
	t.Helper()
	u, _ := url.Parse(b.base)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.DialContext(context.Background(), "tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	var cookies []string
	for _, c := range b.c.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nCookie: %s\r\n\r\n", path, u.Host, strings.Join(cookies, "; "))
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return conn, resp
}
