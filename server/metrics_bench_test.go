package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
)

// BenchmarkSOAPCallMetrics measures what the call metrics cost: the same
// calls through the SOAP handler (in-process, no network), with and
// without metrics, side by side. "ok" is an authenticated GetServerTime
// (session cache warm), "fault" a call with a forged session token.
func BenchmarkSOAPCallMetrics(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		env := servertest.New(b, "sqlite", servertest.Options{NoMetrics: mode == "off"})
		env.Operator(b, "ana", "ana password", "privacyRight")
		token, _ := env.Logon(b, "ana", "ana password")
		h := env.Server.Handler()
		calls := map[string]string{
			"ok":    servertest.Envelope("", `<m:GetServerTime xmlns:m="urn:xtk:session"><sessiontoken xsi:type="xsd:string">`+token+`</sessiontoken></m:GetServerTime>`),
			"fault": servertest.Envelope("", `<m:GetServerTime xmlns:m="urn:xtk:session"><sessiontoken xsi:type="xsd:string">forged</sessiontoken></m:GetServerTime>`),
		}
		for _, kind := range []string{"ok", "fault"} {
			body := calls[kind]
			b.Run(kind+"/metrics="+mode, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest(http.MethodPost, "/nl/jsp/soaprouter.jsp", strings.NewReader(body))
					req.Header.Set("Content-Type", "text/xml; charset=utf-8")
					req.Header.Set("SOAPAction", "xtk:session#GetServerTime")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("%d %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}
