package session_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// The key set of BearerTokenLogon as NewIMS loads it: its size, its keys,
// its refreshes and their failures.

// TestKeySetAnswerBounded: a key set URL whose answer is padded to 128 MiB
// is refused at start after at most 1 MiB is read (IMS's key set is under
// 2 KiB), instead of being held in memory whole, at start and at every
// refresh. What the server counts as sent includes what the kernel buffers
// between the two sockets once the reader stops (on loopback the receive
// buffer grows up to tcp_rmem's maximum, 32 MiB here; a CI run counted 9
// MiB against a bound of 8): the bound is half the answer, which a reader
// of the whole answer passes.
func TestKeySetAnswerBounded(t *testing.T) {
	keys := newIMSKeys(t)
	good := keys.JWKS()
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// {"pad":"AAAA…", "keys":[…]}: valid JSON, so a decoder reads it all.
		n, _ := w.Write([]byte(`{"pad":"`))
		sent.Add(int64(n))
		chunk := []byte(strings.Repeat("A", 1<<20))
		for range 128 {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
		n, _ = w.Write(append([]byte(`",`), good[1:]...))
		sent.Add(int64(n))
	}))
	defer srv.Close()
	_, err := session.NewIMS(context.Background(), session.IMSConfig{JWKS: srv.URL + "/jwks.json", Issuer: testIssuer, Audience: testAudience})
	if err == nil || !strings.Contains(err.Error(), "larger than 1024 KiB") {
		t.Errorf("NewIMS and a 128 MiB key set answer (read %d MiB): err = %v, want it refused for its size", sent.Load()>>20, err)
	}
	if got := sent.Load(); got > 64<<20 {
		t.Errorf("the key set answer was read to %d MiB: want a small bound", got>>20)
	}
}

// TestKeySetWithoutSigningKeyRefusedAtStart: "the server must not start
// with a logon that cannot work". A key set whose keys no allowed
// algorithm can use — a shared secret (the algorithms are asymmetric
// only), an encryption key, a key of another type or curve, a key for
// another alg — is refused at start, saying what it holds; so is a key set
// URL that answers with an error, naming the answer (it said "the key set
// holds no key").
func TestKeySetWithoutSigningKeyRefusedAtStart(t *testing.T) {
	keys := newIMSKeys(t)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	_ = json.Unmarshal(keys.JWKS(), &set)
	rsaKey, ecKey := set.Keys[0], set.Keys[1]
	with := func(k map[string]string, name, value string) map[string]string {
		c := map[string]string{}
		for n, v := range k {
			c[n] = v
		}
		c[name] = value
		return c
	}
	jwks := func(keys ...map[string]string) string {
		out, _ := json.Marshal(map[string]any{"keys": keys})
		return string(out)
	}
	for name, c := range map[string]struct {
		jwks  string
		algs  []string
		wants string
	}{
		"a shared secret":        {`{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}`, nil, `kid "k1": oct`},
		"an encryption key":      {jwks(with(rsaKey, "use", "enc")), nil, "use enc"},
		"an EC key for RS256":    {jwks(ecKey), nil, "EC"},
		"an RSA key for ES256":   {jwks(rsaKey), []string{"ES256"}, "ES256"},
		"a P-256 key for ES384":  {jwks(with(ecKey, "alg", "")), []string{"ES384"}, "ES384"},
		"an RS512 key for RS256": {jwks(with(rsaKey, "alg", "RS512")), nil, "alg RS512"},
		"no key":                 {`{"keys":[]}`, nil, "holds no key"},
	} {
		_, err := session.NewIMS(context.Background(), session.IMSConfig{JWKS: writeTemp(t, c.jwks), Issuer: testIssuer, Audience: testAudience, Algorithms: c.algs})
		if err == nil || !strings.Contains(err.Error(), c.wants) {
			t.Errorf("%s: NewIMS err = %v, want a refusal saying %q", name, err, c.wants)
		}
	}
	for name, c := range map[string]struct {
		jwks string
		algs []string
	}{
		"RS256 and a shared secret": {jwks(map[string]string{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}, rsaKey), nil},
		"ES256 among two":           {jwks(rsaKey, ecKey), []string{"ES256"}},
		"PS256 with an RSA key":     {jwks(with(rsaKey, "alg", "")), []string{"PS256"}},
	} {
		if _, err := session.NewIMS(context.Background(), session.IMSConfig{JWKS: writeTemp(t, c.jwks), Issuer: testIssuer, Audience: testAudience, Algorithms: c.algs}); err != nil {
			t.Errorf("%s: NewIMS refused a usable key set: %v", name, err)
		}
	}

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	// A context that never ends: a refused start leaves no refresh
	// running (TestMain's goleak).
	_, err := session.NewIMS(context.Background(), session.IMSConfig{JWKS: down.URL + "/ims/keys?client_secret=s3cr3t", Issuer: testIssuer, Audience: testAudience})
	if err == nil || !strings.Contains(err.Error(), "503") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("a key set URL answering 503: NewIMS err = %v, want the status named and the query left out", err)
	}
}

// TestUnknownKeyRefreshOnceAMinute: a URL key set is fetched again when a
// token names a key it does not hold, at most once a minute (the
// library's default is once in 5 minutes, so a token naming a made-up kid
// every 5 minutes used every refresh up, and a key the identity provider
// published since was refused until the hourly refresh). A token under the
// new key is accepted a minute after the attacker's. Waits 61 s.
func TestUnknownKeyRefreshOnceAMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 61 s")
	}
	keys := newIMSKeys(t)
	var rotated atomic.Bool
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		set := []map[string]string{{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": b64(keys.rsa.N.Bytes()), "e": b64(big.NewInt(int64(keys.rsa.E)).Bytes())}}
		if rotated.Load() {
			set = append(set, map[string]string{"kty": "RSA", "kid": "rsa-2", "use": "sig", "alg": "RS256", "n": b64(keys.stranger.N.Bytes()), "e": b64(big.NewInt(int64(keys.stranger.E)).Bytes())})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, clock := bearerServiceAt(t, ctx, srv.URL+"/jwks.json", nil)
	// The attacker: a token naming a kid nobody publishes.
	bogus := mint(t, jwt.SigningMethodRS256, keys.stranger, "no-such-kid", goodClaims(clock.Now(), "techacct"))
	if _, err := svc.BearerTokenLogon(ctx, bogus, ""); apperr.CodeOf(err) != apperr.BadLogon {
		t.Fatalf("bogus kid: %v", err)
	}
	// The identity provider rotates; a minute and a second later its
	// client presents a token under the new key.
	rotated.Store(true)
	time.Sleep(61 * time.Second)
	before := fetches.Load()
	good := mint(t, jwt.SigningMethodRS256, keys.stranger, "rsa-2", goodClaims(clock.Now(), "techacct"))
	if _, err := svc.BearerTokenLogon(ctx, good, ""); err != nil {
		t.Fatalf("a token under the newly published key is refused 61 s after an attacker's unknown kid (key set fetched %d times since): %v", fetches.Load()-before, err)
	}
}

// TestUnknownKeyRefreshTimesOut: the refresh for an unknown kid ends
// within the fetch's 10 s timeout when the identity provider hangs (it
// waited a minute, the limiter's wait bound), and its failure goes to the
// service's log without the URL's query.
func TestUnknownKeyRefreshTimesOut(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 10 s")
	}
	keys := newIMSKeys(t)
	var fetches atomic.Int32
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fetches.Add(1) > 1 {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write(keys.JWKS())
	}))
	defer srv.Close()
	defer close(hang)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	svc, clock := bearerServiceAt(t, ctx, srv.URL+"/jwks.json?api_key=s3cr3t", log)
	start := time.Now()
	tok := mint(t, jwt.SigningMethodRS256, keys.rsa, "rsa-9", goodClaims(clock.Now(), "techacct"))
	if _, err := svc.BearerTokenLogon(ctx, tok, ""); apperr.CodeOf(err) != apperr.BadLogon {
		t.Fatalf("unknown kid: %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the refresh of a hanging key set URL took %v", took)
	}
	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	if !strings.Contains(logged, "IMS key set refresh failed") || strings.Contains(logged, "s3cr3t") {
		t.Errorf("the failed refresh is not logged, or with the URL's query:\n%s", logged)
	}
}

// bearerServiceAt is bearerService for a key set URL, its refresh living
// as long as ctx, its failures logged to log.
func bearerServiceAt(t *testing.T, ctx context.Context, jwks string, log *slog.Logger) (*session.Service, *storetest.Clock) {
	t.Helper()
	ims, err := session.NewIMS(ctx, session.IMSConfig{JWKS: jwks, Issuer: testIssuer, Audience: testAudience, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	clock := storetest.NewClock()
	db := storetest.Open(t, storetest.Dialects[0], clock.Now)
	svc, err := session.New(db, session.Config{Key: []byte("bearer-test-signing-key-of-32-bytes!"), Now: clock.Now, IMS: ims, HashSlots: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.CreateOperator(ctx, "techacct", "unused password 1", []string{session.RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	return svc, clock
}

// TestUnknownKeyRefreshHasItsOwnTime (J136): the refresh for an unknown
// kid ran on the context of the call that had waited for the
// once-a-minute limiter, so the fetch got what the wait left of the call's
// 10 s (about 100 ms here) and failed, the minute's refresh used up: a
// made-up kid once a minute, timed to reserve the next refresh, kept a key
// the identity provider published out until the hourly refresh. The
// refresh now has the 10 s of any fetch, on a context of its own, and a
// token within the minute is refused at once instead of waiting: the
// refresh a minute after the attacker's first kid fetches the new set, and
// the token under the new key is accepted 61 s after it. Waits 61 s.
func TestUnknownKeyRefreshHasItsOwnTime(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 61 s")
	}
	keys := newIMSKeys(t)
	var rotated atomic.Bool
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		// An identity provider across the internet: 300 ms to answer.
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		set := []map[string]string{{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": b64(keys.rsa.N.Bytes()), "e": b64(big.NewInt(int64(keys.rsa.E)).Bytes())}}
		if rotated.Load() {
			set = append(set, map[string]string{"kty": "RSA", "kid": "rsa-2", "use": "sig", "alg": "RS256", "n": b64(keys.stranger.N.Bytes()), "e": b64(big.NewInt(int64(keys.stranger.E)).Bytes())})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, clock := bearerServiceAt(t, ctx, srv.URL+"/jwks.json", nil)

	// Each call as the SOAP router makes it: a context of CallTimeout (10 s).
	call := func(tok, from string) error {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_, err := svc.BearerTokenLogon(cctx, tok, from)
		return err
	}
	start := time.Now()
	// The attacker's first made-up kid takes the minute's refresh.
	bogus := mint(t, jwt.SigningMethodRS256, keys.stranger, "no-such-kid", goodClaims(clock.Now(), "techacct"))
	if err := call(bogus, "192.0.2.66"); apperr.CodeOf(err) != apperr.BadLogon {
		t.Fatalf("bogus kid: %v", err)
	}
	// The identity provider rotates.
	rotated.Store(true)
	// 50.1 s later, the attacker's second made-up kid: its call may wait
	// until 60.1 s, so it reserves the refresh of the 60th second.
	time.Sleep(time.Until(start.Add(50100 * time.Millisecond)))
	bogus2 := mint(t, jwt.SigningMethodRS256, keys.stranger, "no-such-kid-2", goodClaims(clock.Now(), "techacct"))
	if err := call(bogus2, "192.0.2.66"); apperr.CodeOf(err) != apperr.BadLogon {
		t.Fatalf("bogus kid 2: %v", err)
	}
	// 61 s after the attacker's first kid, the client presents a token
	// under the key published since.
	time.Sleep(time.Until(start.Add(61 * time.Second)))
	good := mint(t, jwt.SigningMethodRS256, keys.stranger, "rsa-2", goodClaims(clock.Now(), "techacct"))
	if err := call(good, "198.51.100.7"); err != nil {
		t.Errorf("a token under a key published 61 s ago is refused, although the limiter let a refresh run at the 60th second "+
			"(key set fetched %d times: that refresh ran on the waiting call's last ~100 ms and failed): %v", fetches.Load(), err)
	}
}
