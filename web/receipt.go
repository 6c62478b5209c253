package web

import (
	"fmt"
	"net/http"
)

// handleReceipt is /nms/gdpr.jssp?id=N&receipt=1: the request's signed
// erasure receipt, behind the same gate and right as the file. It is a
// JWS (application/jose); campaign-privacy receipt verify checks it
// offline.
func (s *Server) handleReceipt(w http.ResponseWriter, r *http.Request, id int64) {
	var (
		jws string
		err error
	)
	if r.Method == http.MethodHead { // the size, not a download
		jws, err = s.privacy.OpenReceipt(r.Context(), callerOf(r), id)
	} else {
		jws, err = s.privacy.DownloadReceipt(r.Context(), callerOf(r), id, addrOf(r).String())
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jose")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="privacyRequest%d.receipt.jws"`, id))
	_, _ = w.Write([]byte(jws))
}
