package server_test

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/server"
)

// TestSlowBodyHoldsLittle: 64 connections declare a body of 256 KiB (the
// limit: accepted) and send one byte of it. The server holds about what
// arrived while it waits for the rest, not the declared length: a buffer
// of the declared size at once made such a client, for 200 bytes of
// headers, pin 256 KiB for the read timeout (64 MiB for the 256 calls in
// flight), where io.ReadAll before grew with what arrived.
func TestSlowBodyHoldsLittle(t *testing.T) {
	_, addr, _, _ := listen(t, servertest.Options{Server: func(c *server.Config) {
		c.Timeouts.Read = 10 * time.Second // keep the lying bodies pending while we measure
	}})
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	const conns = 64
	const declared = 256 << 10 // exactly the default limit: accepted, so read
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /nl/jsp/soaprouter.jsp HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nSOAPAction: xtk:session#Logon\r\nContent-Length: %d\r\n\r\n<", declared)
	}
	var peak uint64
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if h := heap(); h > peak {
			peak = h
		}
	}
	grown := int64(peak) - int64(before)
	t.Logf("heap grew by %d KiB for %d connections that sent %d bytes of body in all (%d KiB each)", grown>>10, conns, conns, grown>>10/conns)
	if grown > 4<<20 {
		t.Fatalf("%d connections declaring %d bytes and sending 1 byte each pinned %d KiB of heap (%d KiB per connection): "+
			"the body buffer is allocated from the declared length before any byte arrives", conns, declared, grown>>10, grown>>10/conns)
	}
}
