package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// writeSizes records the size of each write of a response.
type writeSizes struct {
	*httptest.ResponseRecorder
	sizes []int
}

func (w *writeSizes) Write(b []byte) (int, error) {
	w.sizes = append(w.sizes, len(b))
	return w.ResponseRecorder.Write(b)
}

// A download is sent in writes of a whole chunk (privacy.ChunkSize), each through
// paced.Write and its deadline, not in io.Copy's 32 KiB; a range too.
func TestPacedWritesWholeChunks(t *testing.T) {
	content := make([]byte, 4*privacy.ChunkSize+5)
	for i := range content {
		content[i] = byte(i % 251)
	}
	for _, tc := range []struct {
		rangeHeader string
		body        []byte
		sizes       []int
	}{
		{"", content, []int{privacy.ChunkSize, privacy.ChunkSize, privacy.ChunkSize, privacy.ChunkSize, 5}},
		{"bytes=100-300000", content[100:300001], []int{privacy.ChunkSize, 300001 - 100 - privacy.ChunkSize}},
	} {
		rec := &writeSizes{ResponseRecorder: httptest.NewRecorder()}
		r := httptest.NewRequest(http.MethodGet, "/nms/gdpr.jssp?id=1", nil)
		if tc.rangeHeader != "" {
			r.Header.Set("Range", tc.rangeHeader)
		}
		p := &paced{ResponseWriter: rec, rc: http.NewResponseController(rec), limits: DownloadLimits{MinRate: 64 << 10, Stall: time.Second}}
		http.ServeContent(p, r, "", time.Time{}, bytes.NewReader(content))
		body, _ := io.ReadAll(rec.Result().Body)
		if !bytes.Equal(body, tc.body) {
			t.Errorf("Range %q: %d bytes served, want %d", tc.rangeHeader, len(body), len(tc.body))
		}
		if !slices.Equal(rec.sizes, tc.sizes) {
			t.Errorf("Range %q: writes of %v bytes, want %v", tc.rangeHeader, rec.sizes, tc.sizes)
		}
	}
}
