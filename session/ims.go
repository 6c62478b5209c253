package session

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
)

// IMSConfig configures xtk:session#BearerTokenLogon: the bearer tokens of
// Adobe IMS (technical accounts, acc-js-sdk's
// ConnectionParameters.ofBearerToken) exchanged for a session. A token is
// accepted when its signature verifies with a signing key of the
// configured JWK Set, its alg is allowed, its issuer and audience are the
// configured ones, it was not issued in the future and has not expired,
// and it is an access token; the operator is the one whose login is the
// value of OperatorClaim.
type IMSConfig struct {
	// JWKS is a JWK Set: the path of a JSON file, read once at start, or
	// an http(s) URL, fetched at start and refreshed (hourly, and at most
	// once a minute when a token names an unknown key). CP_IMS_JWKS.
	JWKS string
	// Issuer and Audience the tokens must carry (iss, aud). Both are
	// required: a key set alone would accept tokens minted for another
	// service. CP_IMS_ISSUER, CP_IMS_AUDIENCE.
	Issuer, Audience string
	// Algorithms allowed in a token's alg header; default RS256. Only
	// asymmetric algorithms: a shared secret has no place in a key set
	// that others publish. CP_IMS_ALGORITHMS.
	Algorithms []string
	// OperatorClaim names the claim holding the operator's login; default
	// "sub". IMS access tokens carry it in "user_id". CP_IMS_OPERATOR_CLAIM.
	OperatorClaim string
	// Logger receives the failed refreshes of a key set URL; default
	// slog.Default().
	Logger *slog.Logger
}

// asymmetric are the algorithms BearerTokenLogon may allow.
var asymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
}

// maxBearerBytes bounds what reaches the JWT parser (IMS tokens are about
// 1.5 KiB).
const maxBearerBytes = 16 << 10

// The fetch of a key set URL: IMS's key set is under 2 KiB, so a larger
// answer than maxJWKSBytes is refused rather than held in memory, and
// every fetch (at start, hourly, for an unknown key) ends within
// jwksTimeout.
const (
	maxJWKSBytes = 1 << 20
	jwksTimeout  = 10 * time.Second
)

// accessToken is the value of the "type" claim IMS puts in the tokens
// that grant API access; its refresh tokens, authorization codes, ID
// tokens and device tokens are signed with the same key and say
// otherwise.
const accessToken = "access_token"

// IMS verifies bearer tokens for BearerTokenLogon.
type IMS struct {
	cfg IMSConfig
	kf  keyfunc.Keyfunc
}

// NewIMS loads the key set of cfg. For a URL, the refresh runs until ctx
// ends. A key set that cannot be read, one without a key the allowed
// algorithms can use, or a setting missing, is an error: the server must
// not start with a logon that cannot work or that trusts too much.
func NewIMS(ctx context.Context, cfg IMSConfig) (_ *IMS, err error) {
	// A key set refused after its fetch leaves no refresh running.
	ctx, stop := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if cfg.JWKS == "" {
		return nil, errors.New("CP_IMS_JWKS is empty")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("CP_IMS_ISSUER and CP_IMS_AUDIENCE are required with CP_IMS_JWKS")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"RS256"}
	}
	for _, a := range cfg.Algorithms {
		if !asymmetric[a] {
			return nil, fmt.Errorf("CP_IMS_ALGORITHMS: %q is not an asymmetric JWS algorithm (RS*, PS*, ES*, EdDSA)", a)
		}
	}
	if cfg.OperatorClaim == "" {
		cfg.OperatorClaim = "sub"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var keys jwkset.Storage
	if strings.HasPrefix(cfg.JWKS, "https://") || strings.HasPrefix(cfg.JWKS, "http://") {
		if keys, err = remoteKeySet(ctx, cfg.JWKS, cfg.Logger); err != nil {
			return nil, err
		}
	} else {
		raw, rerr := os.ReadFile(cfg.JWKS)
		if rerr != nil {
			return nil, fmt.Errorf("CP_IMS_JWKS: %w", rerr)
		}
		if !json.Valid(raw) {
			return nil, errors.New("CP_IMS_JWKS: the file is not JSON")
		}
		file, ferr := keyfunc.NewJWKSetJSON(raw)
		if ferr != nil {
			return nil, fmt.Errorf("CP_IMS_JWKS: %w", ferr)
		}
		keys = file.Storage()
	}
	all, err := keys.KeyReadAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("CP_IMS_JWKS: %w", err)
	}
	if err := signingKeyFor(all, cfg.Algorithms); err != nil {
		return nil, err
	}
	// A key published for encryption ("use":"enc") never verifies a
	// signature (RFC 7517 §4.2); a key without "use" may.
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: keys, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return nil, fmt.Errorf("CP_IMS_JWKS: %w", err)
	}
	return &IMS{cfg: cfg, kf: kf}, nil
}

// remoteKeySet fetches the key set at rawURL, refreshes it hourly until
// ctx ends, and again for a token naming an unknown key at most once a
// minute (unknownKID: a token with a made-up kid can then hold back a
// rotated key for a minute at most). The first fetch must succeed: its failure is the
// error, naming its cause. The URL is logged without its credentials or
// query.
func remoteKeySet(ctx context.Context, rawURL string, log *slog.Logger) (jwkset.Storage, error) {
	shown := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		shown = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	client := &http.Client{
		Timeout:   jwksTimeout,
		Transport: boundedTransport{http.DefaultTransport},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			switch {
			case len(via) >= 5:
				return errors.New("more than 5 redirects")
			case via[0].URL.Scheme == "https" && req.URL.Scheme != "https":
				return errors.New("refused a redirect from https to http")
			}
			return nil
		},
	}
	remote, err := jwkset.NewStorageFromHTTP(rawURL, jwkset.HTTPClientStorageOptions{
		Client: client, Ctx: ctx, HTTPTimeout: jwksTimeout, RefreshInterval: time.Hour,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			log.WarnContext(ctx, "IMS key set refresh failed; the keys fetched before are kept", "jwks", shown, "error", hideURL(err, shown))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("CP_IMS_JWKS: fetch the key set %s: %w", shown, hideURL(err, shown))
	}
	// The client refreshes for every unknown kid it is asked about (its
	// limiter never waits); unknownKID asks it at most once a minute.
	keys, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{rawURL: remote},
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("CP_IMS_JWKS: %w", err)
	}
	return &unknownKID{Storage: keys, held: remote, every: rate.NewLimiter(rate.Every(time.Minute), 1)}, nil
}

// unknownKID is the key set of a URL as the tokens read it: a kid it
// holds is read without a fetch; for one it does not hold, the set is
// fetched again, at most once a minute, and the tokens that come within
// that minute are refused at once rather than wait. The fetch runs on a
// context of its own with the 10 s of any fetch: the library's own
// limiter waited on the caller's context and fetched on what the wait had
// left of it (a SOAP call's 10 s spent waiting, the fetch cut short and
// the minute's refresh used up: a made-up kid once a minute kept a
// rotated key out for the hour). A caller that leaves does not stop it.
type unknownKID struct {
	jwkset.Storage                // fetches for an unknown kid
	held           jwkset.Storage // the keys fetched so far
	every          *rate.Limiter
}

func (k *unknownKID) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	jwk, err := k.held.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) || !k.every.Allow() {
		return jwk, err
	}
	type read struct {
		jwk jwkset.JWK
		err error
	}
	done := make(chan read, 1)
	go func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
		defer cancel()
		jwk, err := k.Storage.KeyRead(fctx, kid)
		done <- read{jwk, err}
	}()
	select {
	case r := <-done:
		return r.jwk, r.err
	case <-ctx.Done():
		return jwkset.JWK{}, ctx.Err()
	}
}

// hideURL replaces the URL that net/http puts in its errors (with its
// query) by shown.
func hideURL(err error, shown string) error {
	var u *url.Error
	if errors.As(err, &u) {
		return fmt.Errorf("%s %s: %w", u.Op, shown, u.Err)
	}
	return err
}

// boundedTransport cuts a key set answer at maxJWKSBytes.
type boundedTransport struct{ next http.RoundTripper }

func (t boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		resp.Body = &boundedBody{ReadCloser: resp.Body, left: maxJWKSBytes}
	}
	return resp, err
}

type boundedBody struct {
	io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return n, fmt.Errorf("the key set is larger than %d KiB", maxJWKSBytes>>10)
	}
	return n, err
}

// signingKeyFor returns an error, naming what the set holds, unless one of
// keys can verify a token under one of algs: the key's type (and curve)
// fit the algorithm, its "alg" (if any) is that algorithm, its "use" (if
// any) is "sig".
func signingKeyFor(keys []jwkset.JWK, algs []string) error {
	held := make([]string, 0, len(keys))
	for _, k := range keys {
		m := k.Marshal()
		if m.USE == "" || m.USE == jwkset.UseSig {
			for _, a := range algs {
				if (m.ALG == "" || m.ALG.String() == a) && fits(k.Key(), a) {
					return nil
				}
			}
		}
		desc := fmt.Sprintf("kid %q: %s", m.KID, m.KTY)
		if m.ALG != "" {
			desc += " alg " + m.ALG.String()
		}
		if m.USE != "" {
			desc += " use " + m.USE.String()
		}
		held = append(held, desc)
	}
	if len(held) == 0 {
		return errors.New("CP_IMS_JWKS: the key set holds no key")
	}
	return fmt.Errorf("CP_IMS_JWKS: the key set holds no signing key for %s (it holds %s)", strings.Join(algs, ", "), strings.Join(held, "; "))
}

// fits tells whether key is of the type alg verifies with.
func fits(key any, alg string) bool {
	if p, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = p.Public()
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return alg == map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[k.Curve.Params().Name]
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// Config returns the effective settings (defaults applied).
func (m *IMS) Config() IMSConfig { return m.cfg }

// BearerTokenLogon exchanges a bearer token, from the client address from,
// for a session: the same session and security tokens as Logon. Every
// failure — no IMS configured, a bad signature or unknown key, another
// issuer or audience, a token issued in the future or expired, an alg not
// allowed, a token of another type than an access token, no operator of
// that login, a disabled operator — is Logon's one BadLogon error. The
// token itself is never logged.
//
// An operator locked out by wrong passwords is not refused: the lock
// stops password guessing, and a bearer logon does not use the password.
// Refusing it would let anyone who knows a technical account's login keep
// its integration out with a few wrong passwords.
func (s *Service) BearerTokenLogon(ctx context.Context, bearer, from string) (tokens *Tokens, err error) {
	if s.addressThrottled(from) {
		s.log.WarnContext(ctx, "bearer logon refused", "reason", "too many failures from this address", "from", from)
		s.cfg.Metrics.LogonFailed(metrics.LogonAddressThrottled)
		return nil, errBadLogon
	}
	defer func() {
		if apperr.CodeOf(err) == apperr.BadLogon {
			s.addressFailed(from)
		}
	}()
	refuse := func(reason string, args ...any) (*Tokens, error) {
		s.log.InfoContext(ctx, "bearer logon refused", append([]any{"reason", reason}, args...)...)
		s.cfg.Metrics.LogonFailed(metrics.LogonBearerRefused)
		return nil, errBadLogon
	}
	if s.cfg.IMS == nil {
		return refuse("BearerTokenLogon is not configured (CP_IMS_JWKS)")
	}
	login, until, reason := s.cfg.IMS.verify(ctx, bearer, s.cfg.Now)
	if reason != "" {
		return refuse(reason)
	}
	op, err := s.db.FindOperatorByLogin(ctx, login)
	if apperr.CodeOf(err) == apperr.NotFound {
		return refuse("unknown operator")
	}
	if err != nil {
		return nil, err
	}
	if op.Disabled {
		return refuse("disabled", "operator_id", op.ID)
	}
	now := s.cfg.Now()
	tokens, err = s.open(ctx, op, op.PasswordHash, now, until)
	if apperr.CodeOf(err) == apperr.Conflict {
		// Changed since the read: a password logon's rehash (the bearer
		// logon does not depend on the password) is taken again; a
		// disable is refused.
		if cur, rerr := s.db.FindOperatorByLogin(ctx, login); rerr == nil && !cur.Disabled {
			tokens, err = s.open(ctx, cur, cur.PasswordHash, now, until)
		}
	}
	if apperr.CodeOf(err) == apperr.Conflict {
		return refuse("the operator changed during the logon", "operator_id", op.ID)
	}
	if err == nil {
		s.log.InfoContext(ctx, "bearer logon", "operator_id", op.ID)
	}
	return tokens, err
}

// verify checks an IMS bearer token and returns the login of the operator
// it names and when it expires, or why it is refused (for the log: jwt's
// sentinel, never the token or its claims).
//
// Two forms are taken. The standard one carries iss, aud and exp (and iat
// when it is issued). Adobe IMS's access tokens carry none of these: they
// name their IMS region in "as", their client in "client_id", and their
// time as "created_at" and "expires_in", in milliseconds (what Adobe's
// aio-lib-ims reads). A token with created_at and none of exp, iss and aud
// is taken in that form (imsShaped): "as" must be the configured issuer,
// "client_id" the configured audience, "type" access_token, and created_at
// + expires_in not passed.
func (m *IMS) verify(ctx context.Context, bearer string, now func() time.Time) (login string, exp time.Time, reason string) {
	if bearer == "" || len(bearer) > maxBearerBytes {
		return "", exp, "empty or oversized token"
	}
	claims := jwt.MapClaims{}
	times := []jwt.ParserOption{jwt.WithIssuedAt(), jwt.WithLeeway(leeway), jwt.WithTimeFunc(now)}
	if _, err := jwt.ParseWithClaims(bearer, claims, m.kf.KeyfuncCtx(ctx),
		append(times, jwt.WithValidMethods(m.cfg.Algorithms))...); err != nil {
		return "", exp, bearerReason(err)
	}
	if imsShaped(claims) {
		if exp, reason = m.imsForm(claims, now()); reason != "" {
			return "", exp, reason
		}
	} else {
		err := jwt.NewValidator(append(times, jwt.WithIssuer(m.cfg.Issuer), jwt.WithAudience(m.cfg.Audience),
			jwt.WithExpirationRequired())...).Validate(claims)
		if err != nil {
			return "", exp, bearerReason(err)
		}
		// A token without "type" (another identity provider's) is judged
		// by its issuer and audience alone.
		if kind, ok := claims["type"]; ok && kind != accessToken {
			return "", exp, "not an access token"
		}
		e, err := claims.GetExpirationTime()
		if err != nil || e == nil {
			return "", exp, "a required claim is missing"
		}
		exp = e.Time
	}
	login, _ = claims[m.cfg.OperatorClaim].(string)
	if login == "" || len(login) > MaxLoginBytes {
		return "", time.Time{}, "no operator claim (" + m.cfg.OperatorClaim + ")"
	}
	return login, exp, ""
}

// imsShaped tells a token in Adobe IMS's own form: created_at, and none of
// exp, iss and aud. One that carries any of these is judged in the
// standard form, which requires all three.
func imsShaped(claims jwt.MapClaims) bool {
	for _, c := range []string{"exp", "iss", "aud"} {
		if _, ok := claims[c]; ok {
			return false
		}
	}
	_, ok := claims["created_at"]
	return ok
}

// maxIMSLifetime bounds an IMS-form token's expires_in: IMS issues access
// tokens for a day; a longer one is not an access token.
const maxIMSLifetime = 14 * 24 * time.Hour

// imsForm checks an Adobe IMS access token's own claims (see verify) and
// returns when it expires, or why it is refused.
func (m *IMS) imsForm(claims jwt.MapClaims, now time.Time) (exp time.Time, reason string) {
	if claims["type"] != accessToken {
		return exp, "not an access token"
	}
	if as, _ := claims["as"].(string); as == "" || as != m.cfg.Issuer {
		return exp, "wrong issuer"
	}
	if client, _ := claims["client_id"].(string); client == "" || client != m.cfg.Audience {
		return exp, "wrong audience"
	}
	created, okC := millis(claims["created_at"])
	life, okL := millis(claims["expires_in"])
	if !okC || !okL || life <= 0 || life > maxIMSLifetime.Milliseconds() {
		return exp, "a required claim is missing"
	}
	issued := time.UnixMilli(created)
	exp = issued.Add(time.Duration(life) * time.Millisecond)
	switch {
	case issued.After(now.Add(leeway)):
		return time.Time{}, "used before issued"
	case !now.Before(exp.Add(leeway)):
		return time.Time{}, "expired"
	}
	return exp, ""
}

// millis reads a count of milliseconds IMS writes as a string of digits
// (or a JSON number): not negative, and whole.
func millis(v any) (int64, bool) {
	switch n := v.(type) {
	case string:
		ms, err := strconv.ParseInt(n, 10, 64)
		return ms, err == nil && ms >= 0
	case float64:
		return int64(n), n >= 0 && n <= 1<<53 && n == float64(int64(n))
	}
	return 0, false
}

// bearerReason names why jwt refused a token, for the log.
func bearerReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "used before issued"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenRequiredClaimMissing, "a required claim is missing"},
		{jwt.ErrTokenSignatureInvalid, "bad signature or algorithm not allowed"},
		{jwt.ErrTokenUnverifiable, "unknown key"},
		{jwt.ErrTokenMalformed, "malformed"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid token"
}
