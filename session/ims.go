package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
)

// IMSConfig configures xtk:session#BearerTokenLogon: the bearer tokens of
// Adobe IMS (technical accounts, acc-js-sdk's
// ConnectionParameters.ofBearerToken) exchanged for a session. A token is
// accepted when its signature verifies with a key of the configured JWK Set,
// its alg is allowed, its issuer and audience are the configured ones and it
// has not expired; the operator is the one whose login is the value of
// OperatorClaim.
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
}

// asymmetric are the algorithms BearerTokenLogon may allow.
var asymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
}

// maxBearerBytes bounds what reaches the JWT parser (IMS tokens are about
// 1.5 KiB).
const maxBearerBytes = 16 << 10

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
// ends. A key set that cannot be read, or a setting missing, is an error:
// the server must not start with a logon that cannot work or that trusts
// too much.
func NewIMS(ctx context.Context, cfg IMSConfig) (*IMS, error) {
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
	var (
		kf  keyfunc.Keyfunc
		err error
	)
	if strings.HasPrefix(cfg.JWKS, "https://") || strings.HasPrefix(cfg.JWKS, "http://") {
		kf, err = keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKS}, keyfunc.Override{
			HTTPTimeout: 10 * time.Second, RefreshInterval: time.Hour,
		})
		if err != nil {
			return nil, fmt.Errorf("CP_IMS_JWKS: fetch the key set: %w", err)
		}
	} else {
		raw, rerr := os.ReadFile(cfg.JWKS)
		if rerr != nil {
			return nil, fmt.Errorf("CP_IMS_JWKS: %w", rerr)
		}
		if !json.Valid(raw) {
			return nil, errors.New("CP_IMS_JWKS: the file is not JSON")
		}
		if kf, err = keyfunc.NewJWKSetJSON(raw); err != nil {
			return nil, fmt.Errorf("CP_IMS_JWKS: %w", err)
		}
	}
	keys, err := kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("CP_IMS_JWKS: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("CP_IMS_JWKS: the key set holds no key")
	}
	return &IMS{cfg: cfg, kf: kf}, nil
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
	ims := s.cfg.IMS
	if ims == nil {
		return refuse("BearerTokenLogon is not configured (CP_IMS_JWKS)")
	}
	if bearer == "" || len(bearer) > maxBearerBytes {
		return refuse("empty or oversized token")
	}
	claims := jwt.MapClaims{}
	_, perr := jwt.ParseWithClaims(bearer, claims, ims.kf.KeyfuncCtx(ctx),
		jwt.WithValidMethods(ims.cfg.Algorithms),
		jwt.WithIssuer(ims.cfg.Issuer),
		jwt.WithAudience(ims.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(s.cfg.Now),
	)
	if perr != nil {
		// The reason is jwt's sentinel (expired, bad signature, …), never
		// the token or its claims.
		return refuse(bearerReason(perr))
	}
	// A token without "type" (another identity provider's) is judged by
	// its issuer and audience alone.
	if kind, ok := claims["type"]; ok && kind != accessToken {
		return refuse("not an access token")
	}
	login, _ := claims[ims.cfg.OperatorClaim].(string)
	if login == "" || len(login) > MaxLoginBytes {
		return refuse("no operator claim", "claim", ims.cfg.OperatorClaim)
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
	tokens, err = s.open(ctx, op, op.PasswordHash, now)
	if apperr.CodeOf(err) == apperr.Conflict {
		// Changed since the read: a password logon's rehash (the bearer
		// logon does not depend on the password) is taken again; a
		// disable is refused.
		if cur, rerr := s.db.FindOperatorByLogin(ctx, login); rerr == nil && !cur.Disabled {
			tokens, err = s.open(ctx, cur, cur.PasswordHash, now)
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
