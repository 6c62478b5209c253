// Package session knows who is calling: operators and their named rights,
// password hashing, xtk:session Logon and Logoff, and the session tokens
// that every later call presents.
//
// A session token is a JWT (HS256 pinned, iss, aud, exp and jti required)
// signed with a key shared by all replicas, backed by a server-side session
// row that is checked on every call: Logoff, a disabled operator or a changed
// right take effect at once on every replica. The security token of ACC is
// bound to the session row; it is required only when Config says so (ACC's
// sessionTokenOnly zones), and always for a token that arrives only as a
// cookie (CSRF).
package session

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// Named rights. ACC's internal names.
const (
	RightAdmin   = "admin"        // implies every right
	RightPrivacy = "privacyRight" // "PRIVACY DATA RIGHT": create, confirm, list, download
)

// KnownRights lists the rights an operator may be given.
var KnownRights = []string{RightAdmin, RightPrivacy}

const (
	issuer   = "campaign-privacy"
	audience = "acc-session"
	// leeway is the clock skew allowed on a token's times, and on its
	// session row's expiry alike.
	leeway = 30 * time.Second
	// maxTokenBytes bounds what reaches the JWT parser.
	maxTokenBytes = 4096
	// MaxLoginBytes bounds a login name.
	MaxLoginBytes = 128
)

// Config holds the session settings; cmd fills it from flags and CP_*.
type Config struct {
	Key []byte // HS256 key, at least 32 bytes, shared by replicas: signs new tokens
	// PreviousKeys still verify the tokens they signed, until those expire
	// (TTL): rotate by making the current key a previous one and setting a
	// new Key; retire a key by removing it. Tokens name their key (kid).
	PreviousKeys         [][]byte
	TTL                  time.Duration // token lifetime; ACC sessionTimeOut is 24 h
	RequireSecurityToken bool          // CP_REQUIRE_SECURITY_TOKEN
	// Lockout is the logon throttling per account. Zero fields take ACC's
	// defaults: XtkSecurity_max_Unsuccessul_Attempts_Allowed 3,
	// XtkSecurity_Examine_Window 10 min, XtkSecurity_Initial_Ban_Duration
	// 5 min; each further ban before a successful logon doubles, up to
	// XtkSecurity_Max_Ban_Duration (15 min here), so an attacker can keep
	// an account locked at most that long after their last attempt.
	Lockout Lockout
	// Per client address (the socket's peer, or the address the web zone
	// derived through trusted proxies): at most AddressFailures failed
	// logons per AddressWindow, then every logon from it is refused until
	// the window ends — credential stuffing across many accounts cannot
	// use the per-account lock-out's budget. Defaults 30 per minute.
	AddressFailures int
	AddressWindow   time.Duration
	HashSlots       int // argon2id hashes in flight; default GOMAXPROCS
	// SuspectHashSlots are the hashes in flight, on top of HashSlots, for
	// logons from addresses with failures in the current AddressWindow:
	// they queue there, not in front of a clean client. Default
	// HashSlots/4, at least 1.
	SuspectHashSlots int
	// CacheTTL is how long a checked session is remembered by this replica
	// (security-bar.md allows at most 1 s); Logoff and disabling an
	// operator forget it at once here, other replicas within CacheTTL.
	// Negative turns the cache off.
	CacheTTL time.Duration
	HashWait time.Duration // queue wait before a Busy answer; default 2 s
	// IMS, when set, enables BearerTokenLogon (NewIMS; cmd builds it from
	// the CP_IMS_* settings).
	IMS *IMS
	// MaxSessions is the open-sessions quota per operator
	// (CP_SESSIONS_PER_OPERATOR): after a Logon, the operator's live
	// sessions beyond its MaxSessions newest are revoked, oldest first,
	// so a client that logs on again and again without Logoff (as many
	// ACC scripts do) keeps working while the table stays bounded. Zero
	// takes the default, 100; negative turns the quota off.
	MaxSessions int
	// OnQuotaRefused, if set, is told each time a quota acts ("sessions":
	// a Logon revoked older sessions): the metrics counter.
	OnQuotaRefused func(quota string)
	Now            func() time.Time
	Logger         *slog.Logger
	// Metrics counts refused logons by reason, and lock-outs; nil counts
	// nothing.
	Metrics *metrics.Metrics
}

// DefaultMaxSessions is the open-sessions quota per operator.
const DefaultMaxSessions = 100

// Service implements Logon, Logoff, token checks and operator management.
type Service struct {
	db   *store.DB
	cfg  Config
	kid  string            // names cfg.Key in the tokens it signs
	keys map[string][]byte // verification keys by kid: Key and PreviousKeys
	hash *hasher
	log  *slog.Logger

	mu    sync.Mutex
	cache map[string]cachedSession  // by jti
	fails map[string]*addressWindow // failed logons by client address
	// forgets counts forget's calls: a row read before one is not cached
	// after it (it may be the row a Logoff or an operator's change has
	// just made stale).
	forgets uint64
	// verified remembers tokens whose signature was checked, for CacheTTL.
	verified map[string]verifiedToken
	// nextSweep is when the maps above are next cleared of what expired:
	// without it they would keep one entry per session ever used.
	nextSweep time.Time

	// sessionRead, when set, is called by session between its read of a
	// row and its cache write: the tests' seam for a Logoff in between.
	sessionRead func()
}

type verifiedToken struct {
	claims jwt.RegisteredClaims
	until  time.Time
}

// addressWindow counts one address's failed logons in a fixed window.
type addressWindow struct {
	start time.Time
	count int
}

// cachedSession is a session row and its operator as last read.
type cachedSession struct {
	row    store.Session
	caller Caller
	until  time.Time
}

// New returns a Service. Zero settings take the defaults above.
func New(db *store.DB, cfg Config) (*Service, error) {
	if len(cfg.Key) < 32 {
		return nil, errors.New("session key must be at least 32 bytes")
	}
	keys := map[string][]byte{}
	for _, k := range cfg.PreviousKeys {
		if len(k) < 32 {
			return nil, errors.New("previous session keys must be at least 32 bytes")
		}
		keys[keyID(k)] = k
	}
	keys[keyID(cfg.Key)] = cfg.Key
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Lockout.MaxFailures <= 0 {
		cfg.Lockout.MaxFailures = 3
	}
	if cfg.Lockout.Window <= 0 {
		cfg.Lockout.Window = 10 * time.Minute
	}
	if cfg.Lockout.InitialBan <= 0 {
		cfg.Lockout.InitialBan = 5 * time.Minute
	}
	if cfg.Lockout.MaxBan <= 0 {
		cfg.Lockout.MaxBan = 15 * time.Minute
	}
	if cfg.HashSlots <= 0 {
		cfg.HashSlots = runtime.GOMAXPROCS(0)
	}
	if cfg.SuspectHashSlots <= 0 {
		cfg.SuspectHashSlots = max(1, cfg.HashSlots/4)
	}
	if cfg.HashWait <= 0 {
		cfg.HashWait = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = time.Second
	}
	if cfg.AddressFailures <= 0 {
		cfg.AddressFailures = 30
	}
	if cfg.AddressWindow <= 0 {
		cfg.AddressWindow = time.Minute
	}
	return &Service{db: db, cfg: cfg, kid: keyID(cfg.Key), keys: keys, hash: newHasher(cfg.HashSlots, cfg.SuspectHashSlots, cfg.HashWait), log: cfg.Logger,
		cache: map[string]cachedSession{}, fails: map[string]*addressWindow{}, verified: map[string]verifiedToken{}}, nil
}

// keyID names a signing key in a token's kid header without revealing it:
// the first 8 bytes of its SHA-256, base64url.
func keyID(key []byte) string {
	sum := sha256.Sum256(key)
	return base64.RawURLEncoding.EncodeToString(sum[:8])
}

// Config returns the effective settings (defaults applied).
func (s *Service) Config() Config { return s.cfg }

// Caller is an authenticated operator, as seen by one call.
type Caller struct {
	OperatorID int64
	Login      string
	Rights     []string
	SessionID  string
	Expires    time.Time
}

// HasRight reports whether the caller holds right; admin implies them all.
func (c *Caller) HasRight(right string) bool {
	return slices.Contains(c.Rights, RightAdmin) || slices.Contains(c.Rights, right)
}

// RequirePrivacyRight is the one check of the Privacy Data Right (admin
// implies it), for every call that reads or writes personal data or
// privacy requests: a Forbidden error when c lacks it or is nil.
func RequirePrivacyRight(c *Caller) error {
	if c == nil || !c.HasRight(RightPrivacy) {
		return apperr.Errorf(apperr.Forbidden, "The operator does not hold the Privacy Data Right (privacyRight).")
	}
	return nil
}

// Tokens is what Logon hands back.
type Tokens struct {
	SessionToken  string
	SecurityToken string
	Caller        *Caller
}

var errBadLogon = apperr.Errorf(apperr.BadLogon, "Invalid login or password.")

// Logon checks a login and password, coming from the client address from,
// and opens a session. Every failure — unknown login, wrong password,
// disabled or locked account, a throttled address — returns the same
// BadLogon error.
func (s *Service) Logon(ctx context.Context, login, password, from string) (tokens *Tokens, err error) {
	if s.addressThrottled(from) {
		s.log.WarnContext(ctx, "logon refused", "reason", "too many failures from this address", "from", from)
		s.cfg.Metrics.LogonFailed(metrics.LogonAddressThrottled)
		return nil, errBadLogon
	}
	defer func() {
		if apperr.CodeOf(err) == apperr.BadLogon {
			s.addressFailed(from)
		}
	}()
	if login == "" || len(login) > MaxLoginBytes || password == "" || len(password) > MaxPasswordBytes {
		s.log.InfoContext(ctx, "logon refused", "reason", "empty or oversized login or password", "from", from)
		s.cfg.Metrics.LogonFailed(metrics.LogonInvalidInput)
		return nil, errBadLogon
	}
	// The hash queue's place first: a logon waiting for the database is
	// bounded by it (ticket).
	tk, err := s.hash.admit(ctx, s.hashPool(from))
	if err != nil {
		return nil, err
	}
	defer tk.leave()
	op, err := s.db.FindOperatorByLogin(ctx, login)
	if apperr.CodeOf(err) == apperr.NotFound {
		if err := s.hash.verifyDummy(ctx, tk, password); err != nil {
			return nil, err
		}
		s.log.InfoContext(ctx, "logon refused", "reason", "unknown login", "from", from)
		s.cfg.Metrics.LogonFailed(metrics.LogonUnknownLogin)
		return nil, errBadLogon
	}
	if err != nil {
		return nil, err
	}
	verified := op.PasswordHash
	ok, stale, err := s.hash.verify(ctx, tk, verified, password)
	if err != nil {
		return nil, err
	}
	// The row is read again before each step that relies on it: the wait
	// for a hashing slot may have been long, and meanwhile the guesses
	// before this one may have locked the operator, or its password
	// changed, or it was disabled. What was verified holds only for the
	// hash read before. A hash that changed meanwhile is verified in its
	// turn (another logon stored the same password again, a rehash, or the
	// password changed), and the session is written only over the hash
	// verified (open): a change after this read is a Conflict, and the row
	// is read again. A few changes in a row refuse the logon.
	for changes := 0; ; changes++ {
		if op, err = s.db.FindOperatorByLogin(ctx, login); apperr.CodeOf(err) == apperr.NotFound || changes == maxLogonChanges {
			s.log.InfoContext(ctx, "logon refused", "reason", "the operator changed during the logon", "from", from)
			s.cfg.Metrics.LogonFailed(metrics.LogonWrongPassword)
			return nil, errBadLogon
		} else if err != nil {
			return nil, err
		}
		if op.PasswordHash != verified {
			verified = op.PasswordHash
			if ok, stale, err = s.hash.verify(ctx, tk, verified, password); err != nil {
				return nil, err
			}
			continue
		}
		now := s.cfg.Now()
		switch {
		case op.LockedUntil != nil && now.Before(*op.LockedUntil):
			s.log.InfoContext(ctx, "logon refused", "operator_id", op.ID, "reason", "locked", "from", from)
			s.cfg.Metrics.LogonFailed(metrics.LogonLocked)
			return nil, errBadLogon
		case op.Disabled:
			s.log.InfoContext(ctx, "logon refused", "operator_id", op.ID, "reason", "disabled", "from", from)
			s.cfg.Metrics.LogonFailed(metrics.LogonDisabled)
			return nil, errBadLogon
		case !ok:
			until, err := s.recordFailure(ctx, op.ID)
			if err != nil {
				return nil, err
			}
			s.cfg.Metrics.LogonFailed(metrics.LogonWrongPassword)
			if until != nil {
				s.log.WarnContext(ctx, "operator locked after repeated logon failures", "operator_id", op.ID, "until", until.UTC().Format(time.RFC3339), "from", from)
				s.cfg.Metrics.LockedOut()
			} else {
				s.log.InfoContext(ctx, "logon refused", "operator_id", op.ID, "reason", "wrong password", "from", from)
			}
			return nil, errBadLogon
		}
		if op.FailedLogons > 0 || op.LockedUntil != nil {
			if err := s.db.ResetLogonFailures(ctx, op.ID); err != nil {
				return nil, err
			}
		}
		if stale {
			// Only over the hash verified: a password changed meanwhile stays.
			stale = false
			if h, err := s.hash.Hash(ctx, password); err == nil {
				if s.db.UpdateOperator(ctx, op.Login, store.OperatorUpdate{PasswordHash: &h, IfPasswordHash: &verified}) == nil {
					verified = h
				}
			}
		}
		if tokens, err = s.open(ctx, op, verified, now, time.Time{}); apperr.CodeOf(err) != apperr.Conflict {
			return tokens, err
		}
	}
}

// maxLogonChanges bounds the times Logon reads an operator that changed
// since its last read (a rehash by another logon, a password change, a
// disable) before it refuses.
const maxLogonChanges = 4

// addressKey is what the per-address limits count under: the address, or
// for IPv6 its /64, which one host is routinely given whole (counted per
// address, a host rotating through its /64 was never throttled).
func addressKey(from string) string {
	a, err := netip.ParseAddr(from)
	if err != nil || !a.Is6() || a.Is4In6() {
		return from
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// addressThrottled reports whether from has spent its failures.
func (s *Service) addressThrottled(from string) bool {
	if from == "" {
		return false
	}
	from = addressKey(from)
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.fails[from]
	return w != nil && s.cfg.Now().Sub(w.start) < s.cfg.AddressWindow && w.count >= s.cfg.AddressFailures
}

// hashPool is the hashing budget of a logon from an address: the clean
// one unless the address failed in the current window. (Parallel logons
// from one clean address stay clean: many clients behind one address,
// and the benchmarks, are not attackers until they fail.)
func (s *Service) hashPool(from string) pool {
	if from == "" {
		return poolClean
	}
	from = addressKey(from)
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.fails[from]; w != nil && s.cfg.Now().Sub(w.start) < s.cfg.AddressWindow && w.count > 0 {
		return poolSuspect
	}
	return poolClean
}

// addressFailed counts a failed logon from an address.
func (s *Service) addressFailed(from string) {
	if from == "" {
		return
	}
	from = addressKey(from)
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	w := s.fails[from]
	if w == nil || now.Sub(w.start) >= s.cfg.AddressWindow {
		if len(s.fails) > 100_000 { // bounded: forget rather than grow
			s.fails = map[string]*addressWindow{}
		}
		w = &addressWindow{start: now}
		s.fails[from] = w
	}
	w.count++
}

// open opens a session for op, whose password hash the logon verified
// (passwordHash): a Conflict if the operator changed since. The session
// lasts the configured TTL, or until until when that is sooner (a bearer
// logon's token expiry).
func (s *Service) open(ctx context.Context, op *store.Operator, passwordHash string, now, until time.Time) (*Tokens, error) {
	jti := base64.RawURLEncoding.EncodeToString(randomBytes(18))
	security := "@" + base64.RawURLEncoding.EncodeToString(randomBytes(48))
	exp := now.Add(s.cfg.TTL)
	if !until.IsZero() && until.Before(exp) {
		exp = until
	}
	claims := jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   strconv.FormatInt(op.ID, 10),
		Audience:  jwt.ClaimStrings{audience},
		ExpiresAt: jwt.NewNumericDate(exp),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        jti,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["kid"] = s.kid
	token, err := t.SignedString(s.cfg.Key)
	if err != nil {
		return nil, apperr.Wrap(apperr.Internal, err, "Could not sign the session token.")
	}
	row := &store.Session{ID: jti, OperatorID: op.ID, SecurityTokenHash: digest(security), Created: now, Expires: exp}
	revoked, err := s.db.CreateSession(ctx, row, passwordHash, s.cfg.MaxSessions)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "logon", "operator_id", op.ID)
	if len(revoked) > 0 {
		for _, id := range revoked {
			s.forget(id, 0)
		}
		s.log.WarnContext(ctx, "session quota: oldest sessions revoked", "operator_id", op.ID,
			"revoked", len(revoked), "max_sessions", s.cfg.MaxSessions)
		s.cfg.Metrics.QuotaRefused("sessions")
		if s.cfg.OnQuotaRefused != nil {
			s.cfg.OnQuotaRefused("sessions")
		}
	}
	return &Tokens{SessionToken: token, SecurityToken: security, Caller: &Caller{
		OperatorID: op.ID, Login: op.Login, Rights: strings.Fields(op.Rights), SessionID: jti, Expires: exp,
	}}, nil
}

// Credentials are the tokens a call presented, and how.
type Credentials struct {
	SessionToken  string
	SecurityToken string
	// From is the client's address (the socket's peer, or the one trusted
	// proxies name), for the log of a refused session.
	From string
	// Bearer is true when the session token came from Authorization:
	// Bearer, where acc-js-sdk's ofImsBearerToken sends an IMS access
	// token on every call instead of logging on (Campaign 8.5): with
	// CP_IMS_JWKS, a token that is not a session token is checked as
	// BearerTokenLogon checks it.
	Bearer bool
	// CookieOnly is true when the session token came only from the
	// __sessiontoken cookie: then the security token is required whatever
	// the setting, as ACC does, because a browser sends cookies by itself.
	CookieOnly bool
	// SafeRead marks a browser GET that changes nothing (a console page, a
	// download): the cookie alone is enough there, as in ACC's web pages.
	// Every form post still needs the security token.
	SafeRead bool
}

var errBadSession = apperr.Errorf(apperr.BadSession, "Session has expired or is invalid. Please reconnect.")

// Authenticate checks a session token (and security token) and returns the
// caller. Any failure is the same BadSession error; the reason goes to the
// log without the token.
func (s *Service) Authenticate(ctx context.Context, cred Credentials) (*Caller, error) {
	refuse := func(reason string) (*Caller, error) {
		s.log.InfoContext(ctx, "session refused", "reason", reason, "from", cred.From)
		return nil, errBadSession
	}
	if cred.SessionToken == "" {
		return refuse("no session token")
	}
	ims := cred.Bearer && s.cfg.IMS != nil
	limit := maxTokenBytes
	if ims {
		limit = maxBearerBytes // an IMS token may be larger than ours
	}
	if len(cred.SessionToken) > limit || len(cred.SecurityToken) > maxTokenBytes {
		return refuse("token too long")
	}
	claims, ok := s.verify(cred.SessionToken)
	if !ok && ims {
		return s.authenticateIMS(ctx, cred.SessionToken, refuse)
	}
	if !ok {
		return refuse("invalid token")
	}
	if claims.ID == "" {
		return refuse("no jti")
	}
	row, caller, err := s.session(ctx, claims.ID)
	if apperr.CodeOf(err) == apperr.NotFound {
		return refuse("unknown session")
	} else if err != nil {
		return nil, err
	}
	if row.RevokedAt != nil {
		return refuse("logged off")
	}
	if strconv.FormatInt(row.OperatorID, 10) != claims.Subject {
		return refuse("subject mismatch")
	}
	if !s.cfg.Now().Before(row.Expires.Add(leeway)) {
		return refuse("expired")
	}
	if cred.SecurityToken != "" || (!cred.SafeRead && (s.cfg.RequireSecurityToken || cred.CookieOnly)) {
		if subtle.ConstantTimeCompare([]byte(digest(cred.SecurityToken)), []byte(row.SecurityTokenHash)) != 1 {
			return refuse("security token missing or wrong")
		}
	}
	if caller == nil {
		return refuse("operator disabled")
	}
	c := *caller
	return &c, nil
}

// authenticateIMS is Authenticate for an IMS access token sent on every
// call (acc-js-sdk's ofImsBearerToken): no session row, no security token
// (a browser never sends an Authorization header by itself), the operator
// that BearerTokenLogon would log on, for as long as the token is valid.
// The check is remembered as a session is, under the token's digest, for
// CacheTTL at most: a disable or a change of rights forgets it at once
// here, on other replicas within CacheTTL; a password lock-out does not
// refuse it, as it does not refuse BearerTokenLogon.
func (s *Service) authenticateIMS(ctx context.Context, bearer string, refuse func(string) (*Caller, error)) (*Caller, error) {
	key := "ims:" + digest(bearer)
	now := s.cfg.Now()
	e, hit, forgets := s.cached(key, now)
	if hit {
		if e.caller.OperatorID == 0 {
			return refuse("IMS bearer: operator disabled")
		}
		c := e.caller
		return &c, nil
	}
	login, exp, reason := s.cfg.IMS.verify(ctx, bearer, s.cfg.Now)
	if reason != "" {
		return refuse("IMS bearer: " + reason)
	}
	op, err := s.db.FindOperatorByLogin(ctx, login)
	if apperr.CodeOf(err) == apperr.NotFound {
		return refuse("IMS bearer: unknown operator")
	} else if err != nil {
		return nil, err
	}
	until := now.Add(s.cfg.CacheTTL)
	if exp.Before(until) {
		until = exp
	}
	e = cachedSession{row: store.Session{OperatorID: op.ID, Expires: exp}, until: until}
	if !op.Disabled {
		e.caller = Caller{OperatorID: op.ID, Login: op.Login, Rights: strings.Fields(op.Rights), Expires: exp}
	}
	s.remember(key, e, forgets, now)
	if op.Disabled {
		return refuse("IMS bearer: operator disabled")
	}
	c := e.caller
	return &c, nil
}

// verify checks a token's signature and claims. The same token string
// verified less than CacheTTL ago is not parsed again: the same bytes carry
// the same signature; expiry is checked on the session row every time.
func (s *Service) verify(token string) (jwt.RegisteredClaims, bool) {
	now := s.cfg.Now()
	s.mu.Lock()
	v, hit := s.verified[token]
	s.mu.Unlock()
	if hit && now.Before(v.until) {
		return v.claims, true
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(s.cfg.Now),
	)
	var claims jwt.RegisteredClaims
	if _, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		for _, h := range []string{"jku", "jwk", "x5u", "x5c"} {
			if _, ok := t.Header[h]; ok {
				// We never issue these: a token that points at its own key
				// is someone else's.
				return nil, errors.New("key reference in the token header")
			}
		}
		kid, named := t.Header["kid"]
		if !named {
			return s.cfg.Key, nil // signed before tokens named their key
		}
		id, _ := kid.(string)
		if key, ok := s.keys[id]; ok {
			return key, nil
		}
		return nil, errors.New("unknown signing key")
	}); err != nil {
		return claims, false
	}
	if s.cfg.CacheTTL > 0 {
		s.mu.Lock()
		s.sweepLocked(now)
		if len(s.verified) > 100_000 { // bounded: forget rather than grow
			s.verified = map[string]verifiedToken{}
		}
		s.verified[token] = verifiedToken{claims: claims, until: now.Add(s.cfg.CacheTTL)}
		s.mu.Unlock()
	}
	return claims, true
}

// session reads a session row and its operator (nil when disabled),
// through the short cache.
func (s *Service) session(ctx context.Context, jti string) (*store.Session, *Caller, error) {
	now := s.cfg.Now()
	e, ok, forgets := s.cached(jti, now)
	if ok {
		if e.caller.OperatorID == 0 {
			return &e.row, nil, nil
		}
		return &e.row, &e.caller, nil
	}
	row, op, err := s.db.FindSessionWithOperator(ctx, jti)
	if err != nil {
		return nil, nil, err
	}
	if s.sessionRead != nil {
		s.sessionRead()
	}
	var caller *Caller
	if !op.Disabled {
		caller = &Caller{OperatorID: op.ID, Login: op.Login, Rights: strings.Fields(op.Rights), SessionID: row.ID, Expires: row.Expires}
	}
	e = cachedSession{row: *row, until: now.Add(s.cfg.CacheTTL)}
	if caller != nil {
		e.caller = *caller
	}
	s.remember(jti, e, forgets, now)
	return row, caller, nil
}

// cached returns the cache entry under key if it is still good, and the
// count of forgets when it was looked up, for remember.
func (s *Service) cached(key string, now time.Time) (cachedSession, bool, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cache[key]
	return e, ok && now.Before(e.until), s.forgets
}

// remember caches e under key, unless something was forgotten since the
// lookup that read it began (forgets): it may be a row a Logoff or an
// operator's change made stale meanwhile. The cache is bounded: it is
// dropped whole rather than grow.
func (s *Service) remember(key string, e cachedSession, forgets uint64, now time.Time) {
	if s.cfg.CacheTTL <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if len(s.cache) > 100_000 {
		s.cache = map[string]cachedSession{}
	}
	if s.forgets == forgets {
		s.cache[key] = e
	}
}

// sweepLocked drops the cache entries and address windows that have
// expired, at most once per sweepEvery; s.mu is held.
func (s *Service) sweepLocked(now time.Time) {
	const sweepEvery = 10 * time.Second
	if now.Before(s.nextSweep) {
		return
	}
	s.nextSweep = now.Add(sweepEvery)
	for k, e := range s.cache {
		if !now.Before(e.until) {
			delete(s.cache, k)
		}
	}
	for k, v := range s.verified {
		if !now.Before(v.until) {
			delete(s.verified, k)
		}
	}
	for k, w := range s.fails {
		if now.Sub(w.start) >= s.cfg.AddressWindow {
			delete(s.fails, k)
		}
	}
}

// forget drops cached sessions: one by jti, or every session of an operator.
func (s *Service) forget(jti string, operatorID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgets++
	if jti != "" {
		delete(s.cache, jti)
	}
	if operatorID != 0 {
		for k, e := range s.cache {
			if e.row.OperatorID == operatorID {
				delete(s.cache, k)
			}
		}
	}
}

// Logoff revokes the caller's session on every replica.
func (s *Service) Logoff(ctx context.Context, c *Caller) error {
	if c.SessionID == "" {
		// An IMS token sent on every call: there is no session to end
		// (the token ends at its expiry, or at the identity provider).
		return nil
	}
	if err := s.db.RevokeSession(ctx, c.SessionID); err != nil {
		return err
	}
	s.forget(c.SessionID, 0)
	s.log.InfoContext(ctx, "logoff", "operator_id", c.OperatorID)
	return nil
}

// PurgeExpired deletes session rows whose token expired more than a day
// ago; the row is useless once the token is refused by its exp claim.
func (s *Service) PurgeExpired(ctx context.Context) (int64, error) {
	return s.db.DeleteExpiredSessions(ctx, s.cfg.Now().Add(-24*time.Hour))
}

// digest is the SHA-256 of a security token, hex: the row never holds the token.
func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// --- operators --------------------------------------------------------------

// CreateOperator adds an operator with the given named rights.
func (s *Service) CreateOperator(ctx context.Context, login, password string, rights []string) error {
	if err := checkLogin(login); err != nil {
		return err
	}
	if err := checkRights(rights); err != nil {
		return err
	}
	h, err := s.hash.Hash(ctx, password)
	if err != nil {
		return err
	}
	return s.db.CreateOperator(ctx, &store.Operator{Login: login, PasswordHash: h, Rights: strings.Join(rights, " ")})
}

// EnsureAdmin creates the bootstrap operator "admin" with the admin right if
// no operator of that login exists. An empty password is replaced by a
// random one, which is returned so that cmd can print it once.
func (s *Service) EnsureAdmin(ctx context.Context, password string) (created bool, generated string, err error) {
	if _, err := s.db.FindOperatorByLogin(ctx, "admin"); err == nil {
		return false, "", nil
	} else if apperr.CodeOf(err) != apperr.NotFound {
		return false, "", err
	}
	if password == "" {
		generated = base64.RawURLEncoding.EncodeToString(randomBytes(18))
		password = generated
	}
	h, err := s.hash.Hash(ctx, password)
	if err != nil {
		return false, "", err
	}
	created, err = s.db.CreateOperatorIfMissing(ctx, &store.Operator{Login: "admin", PasswordHash: h, Rights: RightAdmin})
	if !created {
		generated = ""
	}
	return created, generated, err
}

// SetPassword gives an operator a new password and ends its sessions on
// every replica (within the session cache's second elsewhere).
func (s *Service) SetPassword(ctx context.Context, login, password string) error {
	op, err := s.db.FindOperatorByLogin(ctx, login)
	if err != nil {
		return err
	}
	h, err := s.hash.Hash(ctx, password)
	if err != nil {
		return err
	}
	if err := s.db.UpdateOperator(ctx, login, store.OperatorUpdate{PasswordHash: &h}); err != nil {
		return err
	}
	defer s.forget("", op.ID)
	s.log.WarnContext(ctx, "operator password changed; its sessions are revoked", "operator_id", op.ID)
	return s.db.RevokeOperatorSessions(ctx, op.ID)
}

// SetRights replaces an operator's named rights. Its sessions stay open;
// every call reads the rights again (cached at most a second per replica,
// forgotten at once here).
func (s *Service) SetRights(ctx context.Context, login string, rights []string) error {
	if err := checkRights(rights); err != nil {
		return err
	}
	op, err := s.db.FindOperatorByLogin(ctx, login)
	if err != nil {
		return err
	}
	joined := strings.Join(rights, " ")
	if err := s.db.UpdateOperator(ctx, login, store.OperatorUpdate{Rights: &joined}); err != nil {
		return err
	}
	s.forget("", op.ID)
	s.log.WarnContext(ctx, "operator rights changed", "operator_id", op.ID, "rights", joined)
	return nil
}

// DisableOperator disables an operator and revokes its sessions.
func (s *Service) DisableOperator(ctx context.Context, login string) error {
	op, err := s.db.FindOperatorByLogin(ctx, login)
	if err != nil {
		return err
	}
	yes := true
	if err := s.db.UpdateOperator(ctx, login, store.OperatorUpdate{Disabled: &yes}); err != nil {
		return err
	}
	defer s.forget("", op.ID)
	return s.db.RevokeOperatorSessions(ctx, op.ID)
}

// UnlockOperator clears a logon lock-out (an administrator's action).
func (s *Service) UnlockOperator(ctx context.Context, login string) error {
	op, err := s.db.FindOperatorByLogin(ctx, login)
	if err != nil {
		return err
	}
	if err := s.db.ResetLogonFailures(ctx, op.ID); err != nil {
		return err
	}
	s.log.WarnContext(ctx, "operator unlocked by an administrator", "operator_id", op.ID)
	return nil
}

func checkLogin(login string) error {
	if login == "" || len(login) > MaxLoginBytes {
		return apperr.Errorf(apperr.Invalid, "A login has 1 to %d bytes.", MaxLoginBytes)
	}
	for _, r := range login {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`"'<>&\/%*`, r) {
			return apperr.Errorf(apperr.Invalid, "A login may not contain spaces, control characters or %s.", `" ' < > & \ / % *`)
		}
	}
	return nil
}

func checkRights(rights []string) error {
	for _, r := range rights {
		if !slices.Contains(KnownRights, r) {
			return apperr.Errorf(apperr.Invalid, "Unknown right %q (known: %s).", r, strings.Join(KnownRights, ", "))
		}
	}
	return nil
}
