package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/imstest"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestConsoleFormRefusesAnIMSBearer: an IMS access token in
// Authorization: Bearer (acc-js-sdk's ofImsBearerToken) stands for a
// session on SOAP calls and on the console's reads (a download by curl),
// but not on a console form: a form is a browser's, and its security
// token is checked against the session of its logon, which a bearer has
// not. A proxy that adds the header to every browser request would
// otherwise let any page post the console's forms (the form's token was
// only required to be non-empty).
func TestConsoleFormRefusesAnIMSBearer(t *testing.T) {
	idp := imstest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ims, err := session.NewIMS(ctx, session.IMSConfig{JWKS: idp.JWKSFile, Issuer: imstest.Issuer, Audience: imstest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	env := servertest.New(t, "sqlite", servertest.Options{Session: func(c *session.Config) { c.IMS = ims }})
	env.Operator(t, "techacct", "unused password 1", session.RightPrivacy)
	bearer := "Bearer " + idp.Token(t, "techacct", env.Clock.Now(), time.Hour)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	req, _ := http.NewRequest(http.MethodGet, env.URL+"/privacy/", nil)
	req.Header.Set("Authorization", bearer)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a console read with the bearer: %d, want 200", resp.StatusCode)
	}

	form := url.Values{"csrf": {"anything"}, "namespace": {"defaultNamespace1"}, "value": {demodata.Email(1)}, "type": {"2"}, "regulation": {"1"}, "confirm": {"1"}}
	req, _ = http.NewRequest(http.MethodPost, env.URL+"/privacy/new", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", bearer)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("a console form posted with the bearer and any security token: %d, want it refused", resp.StatusCode)
	}
	if n, err := requestCount(env); err != nil || n != 0 {
		t.Errorf("%d request(s) created by the form (%v), want none", n, err)
	}
}

func requestCount(env *servertest.Env) (int64, error) {
	counts, err := env.DB.CountRequestsByStatus(context.Background())
	var n int64
	for _, c := range counts {
		n += c
	}
	return n, err
}
