package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// settings are the parsed values of the settings table: every command
// fills one from the defaults, then the CP_* variables, then the flags.
type settings struct {
	addr, dataDir, databaseURL, adminPassword, instanceName, schemasDir string
	sessionKey, sessionPreviousKeys                                     string
	exportKey, exportPreviousKeys, subjectKey                           string
	receiptKey, receiptPreviousKeys                                     string
	logFormat                                                           string
	imsJWKS, imsIssuer, imsAudience, imsOperatorClaim                   string
	imsAlgorithms                                                       []string
	allowedSubnets, trustedProxies, soapAllowedSubnets                  []netip.Prefix
	metricsSubnets                                                      []netip.Prefix
	metricsAddr                                                         string
	workflowSchedule                                                    privacy.Schedule
	sessionTTL, retention, lease, retryDelay                            time.Duration
	requireSecurityToken, deduplicate, plainVacuum                      bool
	faultHTTPStatus, deleteBatch                                        int
	downloadsMax, downloadsPerOperator, downloadMinRate                 int
	sessionsPerOperator, createRate, createBurst                        int
	logLevel                                                            slog.Level
	// existingOnly: the command reads or changes what is there, so no key
	// file is made (existingDatabase).
	existingOnly bool
}

// setting is one row of the settings table: its flag, its variable, its
// default, how it is parsed and checked, and its help. --help, the flags
// and the README's settings table (TestREADMESettingsTable) all come from
// the table below; a new setting is one more entry.
type setting struct {
	Flag, Env string
	// Default is the value used when neither the flag nor the variable is
	// given, as the operator would write it.
	Default string
	// DefaultDoc, if set, replaces Default in the README (a generated key,
	// a default with an explanation).
	DefaultDoc string
	// Help is the one-line help of --help; Doc the README's longer text
	// (Help when empty).
	Help, Doc string
	// Accepts names the accepted values in the error a bad value gets.
	Accepts string
	// Secret settings never appear in an error message.
	Secret bool
	// Bool settings may be given as a bare flag (--require-security-token).
	Bool bool
	// NotEmpty settings refuse an empty flag (--addr=, a script's unset
	// variable): an empty variable is unset, an empty flag has no meaning.
	NotEmpty bool
	// Set parses and checks one value into s.
	Set func(s *settings, v string) error
}

// table is the settings table. Keys are checked when they are loaded
// (keys.go): a bad key's error must not print it, which a flag's would.
var table = []setting{
	{Flag: "addr", NotEmpty: true, Env: "CP_ADDR", Default: ":8080", Help: "listen address",
		Set: text(func(s *settings) *string { return &s.addr })},
	{Flag: "data-dir", NotEmpty: true, Env: "CP_DATA_DIR", Default: "./data", Help: "data directory",
		Doc: "SQLite database and the session signing key",
		Set: text(func(s *settings) *string { return &s.dataDir })},
	{Flag: "database-url", NotEmpty: true, Env: "CP_DATABASE_URL", Secret: true, Help: "PostgreSQL URL; empty = SQLite in the data directory",
		Doc: "PostgreSQL URL (`postgres://user@host:5432/db?sslmode=disable`); empty = SQLite in the data directory. Every session sets `application_name=campaign-privacy`, `idle_in_transaction_session_timeout=60s` and `max_parallel_workers_per_gather=0` (its statements are index lookups; starting parallel workers for a claim's joined lookups cost more than the lookups) unless the URL (or `PGOPTIONS`) sets them",
		Set: text(func(s *settings) *string { return &s.databaseURL })},
	{Flag: "admin-password", Env: "CP_ADMIN_PASSWORD", Secret: true, Help: "password of the bootstrap admin (random if empty)",
		Doc: "password of the bootstrap `admin`, used only when it does not exist yet; empty = generated and printed once",
		Set: text(func(s *settings) *string { return &s.adminPassword })},
	{Flag: "session-ttl", Env: "CP_SESSION_TTL", Default: "24h", Help: "session token lifetime",
		Doc: "session token lifetime (ACC `sessionTimeOut`)", Accepts: "a positive duration such as 24h",
		Set: duration(func(s *settings) *time.Duration { return &s.sessionTTL })},
	{Flag: "session-key", NotEmpty: true, Env: "CP_SESSION_KEY", Secret: true, DefaultDoc: "generated in `CP_DATA_DIR/session.key`",
		Help: "token signing key, hex or base64, >= 32 bytes (default: generated once in the data directory)",
		Doc:  "HS256 signing key, hex or base64, at least 32 bytes. Replicas behind one load balancer must share it.",
		Set:  text(func(s *settings) *string { return &s.sessionKey })},
	{Flag: "session-previous-keys", Env: "CP_SESSION_PREVIOUS_KEYS", Secret: true, Help: "comma-separated keys whose tokens still verify",
		Doc: "comma-separated signing keys whose tokens still verify. To rotate: move the current key here, set a new `CP_SESSION_KEY`, restart every replica; remove the old key after `CP_SESSION_TTL` (its tokens have expired). Tokens name their key (`kid`); a token of a removed key is refused.",
		Set: text(func(s *settings) *string { return &s.sessionPreviousKeys })},
	{Flag: "require-security-token", Env: "CP_REQUIRE_SECURITY_TOKEN", Default: "false", Bool: true,
		Help: "require X-Security-Token on every call",
		Doc:  "require the `X-Security-Token` on every call (ACC zones without `sessionTokenOnly`). A token sent only as the `__sessiontoken` cookie always needs it. An IMS access token sent in `Authorization: Bearer` instead of a session (`CP_IMS_JWKS`) has none: a browser never sends that header by itself, and the console's forms refuse it.",
		Set:  boolean(func(s *settings) *bool { return &s.requireSecurityToken })},
	{Flag: "fault-http-status", Env: "CP_FAULT_HTTP_STATUS", Default: "200", Help: "HTTP status of SOAP faults: 200 (ACC) or 500",
		Doc:     "HTTP status of SOAP faults: `200` as ACC (acc-js-sdk reads fault codes only from 2xx answers) or `500` for strict SOAP 1.1 peers",
		Accepts: "200 or 500",
		Set:     oneOf(func(s *settings, v string) { s.faultHTTPStatus, _ = strconv.Atoi(v) }, "200", "500")},
	{Flag: "instance-name", NotEmpty: true, Env: "CP_INSTANCE_NAME", Default: "campaign-privacy", Help: "instance name shown to clients",
		Doc: "instance name in `sessionInfo` and `/r/test`",
		Set: text(func(s *settings) *string { return &s.instanceName })},
	{Flag: "allowed-subnets", Env: "CP_ALLOWED_SUBNETS", Default: "127.0.0.1/32,::1/128",
		Help:    "who may open the download and the console: CIDRs, comma-separated",
		Doc:     "who may open the download and the console (ACC's security zone). An empty list (`--allowed-subnets=`; an empty variable is unset) denies everyone; `0.0.0.0/0` works but is logged as a warning.",
		Accepts: "CIDR prefixes or addresses, comma-separated, such as 10.0.0.0/8,::1",
		Set:     prefixes(true, func(s *settings) *[]netip.Prefix { return &s.allowedSubnets })},
	{Flag: "soap-allowed-subnets", Env: "CP_SOAP_ALLOWED_SUBNETS", DefaultDoc: "empty (every address)",
		Help:    "who may call the SOAP API, Logon included: CIDRs, comma-separated (empty: every address)",
		Doc:     "who may call the SOAP API (ACC's security zone for the API): checked on every call, Logon included. Outside it a Logon gets the usual `XSV-350012` and any other call `XSV-350008`, even with a valid token. Client addresses through `CP_TRUSTED_PROXIES` as for the console. Empty (ACC's default) lets every address that reaches the listener call the API, `ExecuteQuery` on personal data included: the start logs a warning when it is empty and `CP_ADDR` is not loopback.",
		Accepts: "CIDR prefixes or addresses, comma-separated, such as 10.0.0.0/8,::1",
		Set:     prefixes(true, func(s *settings) *[]netip.Prefix { return &s.soapAllowedSubnets })},
	{Flag: "trusted-proxies", Env: "CP_TRUSTED_PROXIES", Help: "reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed",
		Doc: "reverse proxies whose `X-Forwarded-For` is believed (rightmost untrusted entry), and their `X-Forwarded-Proto` (its last value): `https` there makes the console's cookies `Secure` and the download links `https`; `0.0.0.0/0` is refused",
		Set: prefixes(false, func(s *settings) *[]netip.Prefix { return &s.trustedProxies })},
	{Flag: "schemas-dir", Env: "CP_SCHEMAS_DIR", Help: "directory of custom schema files (*.xml)",
		Doc: "custom schema files (`*.xml`): new tables linked to the data model and extensions of existing schemas; see `examples/schemas/`. A bad file stops the start with its file and line. A field name may not start with `_` (a Write's operations, the access file's `_base64`) nor be `xmlns` (an XML namespace declaration); an extension adds attributes and links, never one whose name or column its schema already has; a new table may not be one another schema maps (extend that schema instead), nor a database's own (`pg_…`, `sqlite_…`). How links, ownership and `view=\"true\"` are read: \"How erasure is proven\".",
		Set: text(func(s *settings) *string { return &s.schemasDir })},
	{Flag: "deduplicate-requests", Env: "CP_DEDUPLICATE_REQUESTS", Default: "true", Bool: true,
		Help: "an identical active request returns its id",
		Doc:  "an identical request still active returns its id",
		Set:  boolean(func(s *settings) *bool { return &s.deduplicate })},
	{Flag: "workflow-schedule", Env: "CP_WORKFLOW_SCHEDULE", Default: "daily",
		Help:    "when the workflows run: daily (01:00), daily HH:MM, or an interval such as 30s",
		Doc:     "`daily` (01:00), `daily HH:MM`, `HH:MM` (server local time) or an interval such as `30s`",
		Accepts: "daily, daily HH:MM, HH:MM or a positive duration such as 30s",
		Set: func(s *settings, v string) (err error) {
			s.workflowSchedule, err = privacy.ParseSchedule(v)
			return err
		}},
	{Flag: "export-key", NotEmpty: true, Env: "CP_EXPORT_KEY", Secret: true, DefaultDoc: "generated in `CP_DATA_DIR/export.key`",
		Help: "master key of the encrypted exports, hex or base64, >= 32 bytes (default: generated in the data directory)",
		Doc:  "master key wrapping each data-subject file's key, hex or base64, 32 bytes. Replicas must share it.",
		Set:  text(func(s *settings) *string { return &s.exportKey })},
	{Flag: "subject-key", NotEmpty: true, Env: "CP_SUBJECT_KEY", Secret: true, DefaultDoc: "generated in `CP_DATA_DIR/subject.key`",
		Help: "key of the subject hash (search, receipts), hex or base64, 32 bytes (default: generated in the data directory)",
		Doc:  "key of the subject hash (HMAC-SHA256 of a request's canonical value), hex or base64, 32 bytes: the console's subject search and the receipts use it; the value itself is never kept past the retention. Replicas must share it; changing it makes earlier requests unfindable by value.",
		Set:  text(func(s *settings) *string { return &s.subjectKey })},
	{Flag: "export-previous-keys", Env: "CP_EXPORT_PREVIOUS_KEYS", Secret: true, Help: "comma-separated master keys of older files",
		Doc: "comma-separated master keys that still open the files they wrapped. To rotate: move the current key here and set a new `CP_EXPORT_KEY` (new files use it); remove the old key after `CP_RETENTION` (the files it wrapped are purged).",
		Set: text(func(s *settings) *string { return &s.exportPreviousKeys })},
	{Flag: "receipt-key", NotEmpty: true, Env: "CP_RECEIPT_KEY", Secret: true, DefaultDoc: "generated in `CP_DATA_DIR/receipt.key`",
		Help: "Ed25519 seed signing the erasure receipts, hex or base64, 32 bytes (default: generated in the data directory)",
		Doc:  "Ed25519 seed (32 bytes, hex or base64) signing the erasure receipts. Replicas must share it.",
		Set:  text(func(s *settings) *string { return &s.receiptKey })},
	{Flag: "receipt-previous-keys", Env: "CP_RECEIPT_PREVIOUS_KEYS", Help: "comma-separated public keys of older receipts (verify)",
		Doc: "comma-separated public keys (PEM file, hex or base64) that `receipt verify` and `audit verify` still accept after a rotation.",
		Set: text(func(s *settings) *string { return &s.receiptPreviousKeys })},
	{Flag: "retention", Env: "CP_RETENTION", Default: "2160h", DefaultDoc: "`2160h` (90 days)", Help: "how long collected data is kept",
		Accepts: "a positive duration such as 2160h",
		Set:     duration(func(s *settings) *time.Duration { return &s.retention })},
	{Flag: "workflow-lease", Env: "CP_WORKFLOW_LEASE", Default: "15m",
		Help:    "how long a worker holds a request before another may take it back",
		Accepts: "a positive duration such as 15m",
		Set:     duration(func(s *settings) *time.Duration { return &s.lease })},
	{Flag: "retry-delay", Env: "CP_RETRY_DELAY", Default: "1m", Help: "first back-off of a failed request, doubled each time",
		Doc:     "first back-off of a failed request, doubled each attempt (5 attempts for the collect, 5 for each delete round, then `error`)",
		Accepts: "a positive duration such as 1m",
		Set:     duration(func(s *settings) *time.Duration { return &s.retryDelay })},
	{Flag: "delete-batch", Env: "CP_DELETE_BATCH", Default: "10000", Help: "rows deleted per transaction",
		Set: integer(1, 100_000, func(s *settings) *int { return &s.deleteBatch })},
	{Flag: "residue-purge", Env: "CP_RESIDUE_PURGE", Default: "rewrite", Help: "how a delete run ends on PostgreSQL: rewrite (VACUUM FULL) or vacuum",
		Doc:     "how a delete run ends on PostgreSQL: `rewrite` runs `VACUUM FULL` of each table it deleted from, so the erased rows' bytes leave the table files (each table is locked while it is copied: 9 s for the ten tables of 1M recipients, bench/README.md); `vacuum` runs a plain `VACUUM` (no lock, but the freed space keeps the bytes until new rows overwrite them, and the receipt says so). SQLite always zeroes them (`secure_delete`)",
		Accepts: "rewrite or vacuum",
		Set:     oneOf(func(s *settings, v string) { s.plainVacuum = v == "vacuum" }, "rewrite", "vacuum")},
	{Flag: "downloads-max", Env: "CP_DOWNLOADS_MAX", Default: "64", Help: "data-subject files being sent at once, in all",
		Doc: "data-subject files being sent at once, in all; more get `503` with `Retry-After` (a HEAD is not counted)",
		Set: integer(1, 10_000, func(s *settings) *int { return &s.downloadsMax })},
	{Flag: "downloads-per-operator", Env: "CP_DOWNLOADS_PER_OPERATOR", Default: "4", Help: "data-subject files being sent at once to one operator",
		Set: integer(1, 1_000, func(s *settings) *int { return &s.downloadsPerOperator })},
	{Flag: "download-min-rate", Env: "CP_DOWNLOAD_MIN_RATE", Default: "16384", Help: "bytes per second below which a download reader is dropped (after a 10 s stall)",
		Doc: "bytes per second a download's reader must take: each write may wait 10 s plus its bytes at this rate, then the connection is dropped (slow readers)",
		Set: integer(1, 1<<30, func(s *settings) *int { return &s.downloadMinRate })},
	{Flag: "sessions-per-operator", Env: "CP_SESSIONS_PER_OPERATOR", Default: "100", Help: "open sessions kept per operator; a Logon beyond it revokes the oldest (0: no limit)",
		Doc: "open sessions kept per operator (quota): a Logon beyond it revokes that operator's oldest live sessions, so a client that logs on again and again without Logoff keeps working while sessions stay bounded; a revoked token gets the usual XSV-350008 fault. 0: no limit",
		Set: integer(0, 1_000_000, func(s *settings) *int { return &s.sessionsPerOperator })},
	{Flag: "create-rate", Env: "CP_CREATE_RATE", Default: "50", Help: "CreateRequestByName calls per second per operator, after the burst (0: no limit)",
		Doc: "CreateRequestByName calls per second per operator and per replica once the burst is spent (quota); more get `SOP-330011` with a detail naming the limit and change nothing. Raise it to import a backlog. 0: no limit",
		Set: integer(0, 1_000_000, func(s *settings) *int { return &s.createRate })},
	{Flag: "create-burst", Env: "CP_CREATE_BURST", Default: "500", Help: "CreateRequestByName calls one operator may send at once before CP_CREATE_RATE applies",
		Set: integer(1, 1_000_000, func(s *settings) *int { return &s.createBurst })},
	{Flag: "ims-jwks", Env: "CP_IMS_JWKS", DefaultDoc: "empty (BearerTokenLogon off)",
		Help: "JWK Set verifying IMS bearer tokens (BearerTokenLogon, or on every call): a file or an http(s) URL",
		Doc:  "JWK Set that verifies the bearer tokens of `xtk:session#BearerTokenLogon` (Adobe IMS technical accounts, acc-js-sdk's `ofBearerToken`) and of calls that carry one in `Authorization: Bearer` instead of a session (`ofImsBearerToken`): a JSON file, read at start, or an http(s) URL, fetched at start and refreshed hourly, and at most once a minute for a token naming an unknown key (an answer over 1 MiB, a fetch over 10 s, a redirect from https to http are failures). Read by `serve` only; `serve` does not start when it cannot be read or holds no signing key for `CP_IMS_ALGORITHMS`. Empty: BearerTokenLogon refuses every token, and a bearer must be a session token. Needs `CP_IMS_ISSUER` and `CP_IMS_AUDIENCE`.",
		Set:  text(func(s *settings) *string { return &s.imsJWKS })},
	{Flag: "ims-issuer", Env: "CP_IMS_ISSUER", Help: "the iss a bearer token must carry (an Adobe IMS access token: its as, e.g. ims-na1)",
		Doc: "the `iss` a bearer token must carry; for an Adobe IMS access token, which has no `iss`, its `as` (the IMS region, e.g. `ims-na1`)",
		Set: text(func(s *settings) *string { return &s.imsIssuer })},
	{Flag: "ims-audience", Env: "CP_IMS_AUDIENCE", Help: "the aud a bearer token must carry (an Adobe IMS access token: its client_id)",
		Doc: "the `aud` a bearer token must carry; for an Adobe IMS access token, which has no `aud`, its `client_id` (the technical account's API key)",
		Set: text(func(s *settings) *string { return &s.imsAudience })},
	{Flag: "ims-algorithms", Env: "CP_IMS_ALGORITHMS", Default: "RS256", Help: "comma-separated JWS algorithms a bearer token may use",
		Doc:     "comma-separated JWS algorithms a bearer token may use; asymmetric only (RS*, PS*, ES*, EdDSA). A token with another `alg` is refused.",
		Accepts: "a comma-separated list of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA",
		Set: func(s *settings, v string) error {
			s.imsAlgorithms = nil
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); a == "" {
					continue
				}
				switch a {
				case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
					s.imsAlgorithms = append(s.imsAlgorithms, a)
				default:
					return errors.New("not an asymmetric algorithm")
				}
			}
			if len(s.imsAlgorithms) == 0 {
				return errors.New("empty")
			}
			return nil
		}},
	{Flag: "ims-operator-claim", NotEmpty: true, Env: "CP_IMS_OPERATOR_CLAIM", Default: "sub", Help: "the bearer token claim holding the operator's login",
		Doc: "the bearer token claim whose value is the login of the operator the session opens for (`sub`; IMS access tokens carry `user_id`)",
		Set: text(func(s *settings) *string { return &s.imsOperatorClaim })},
	{Flag: "log-level", Env: "CP_LOG_LEVEL", Default: "info", Help: "debug, info, warn or error",
		Doc:     "`debug`, `info`, `warn`, `error`. Logs never hold passwords, tokens or personal data.",
		Accepts: "debug, info, warn or error",
		Set: func(s *settings, v string) error {
			switch v {
			case "debug", "info", "warn", "error":
				return s.logLevel.UnmarshalText([]byte(v))
			}
			return errors.New("not a level")
		}},
	{Flag: "log-format", Env: "CP_LOG_FORMAT", Default: "text", Help: "text (key=value) or json, one object a line",
		Doc:     "`text` (slog's key=value lines) or `json` (one JSON object a line, for a log collector)",
		Accepts: "text or json",
		Set:     oneOf(func(s *settings, v string) { s.logFormat = v }, "text", "json")},
	{Flag: "metrics-subnets", Env: "CP_METRICS_SUBNETS", Default: "127.0.0.1/32,::1/128",
		Help: "who may read GET /metrics: CIDRs, comma-separated",
		Doc:  "who may read `GET /metrics`: CIDRs, comma-separated; client addresses through `CP_TRUSTED_PROXIES` as for the console. Others get 403.",
		Set:  prefixes(true, func(s *settings) *[]netip.Prefix { return &s.metricsSubnets })},
	{Flag: "metrics-addr", Env: "CP_METRICS_ADDR", Help: "serve /metrics (and /healthz, /readyz) on this address instead of CP_ADDR",
		Doc: "serve `/metrics` (with `/healthz` and `/readyz`) on a listener of its own, e.g. `127.0.0.1:9090`, instead of `CP_ADDR`; `CP_METRICS_SUBNETS` still applies there.",
		Set: text(func(s *settings) *string { return &s.metricsAddr })},
}

// The parsers of the table.

// oneOf accepts exactly one of values and hands it to set.
func oneOf(set func(s *settings, v string), values ...string) func(*settings, string) error {
	return func(s *settings, v string) error {
		if !slices.Contains(values, v) {
			return errors.New("not one of " + strings.Join(values, ", "))
		}
		set(s, v)
		return nil
	}
}

func text(field func(*settings) *string) func(*settings, string) error {
	return func(s *settings, v string) error { *field(s) = v; return nil }
}

func duration(field func(*settings) *time.Duration) func(*settings, string) error {
	return func(s *settings, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("not a positive duration")
		}
		*field(s) = d
		return nil
	}
}

func boolean(field func(*settings) *bool) func(*settings, string) error {
	return func(s *settings, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("not a boolean")
		}
		*field(s) = b
		return nil
	}
}

func integer(lo, hi int, field func(*settings) *int) func(*settings, string) error {
	return func(s *settings, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return accepted(fmt.Sprintf("an integer from %d to %d", lo, hi))
		}
		*field(s) = n
		return nil
	}
}

func prefixes(allowAll bool, field func(*settings) *[]netip.Prefix) func(*settings, string) error {
	return func(s *settings, v string) (err error) {
		*field(s), err = netzone.ParsePrefixes(v, allowAll)
		return err
	}
}

// accepts is what a setting's error names as its accepted values.
func (st setting) accepts() string {
	switch {
	case st.Accepts != "":
		return st.Accepts
	case st.Bool:
		return "true or false (also 1, 0, t, f)"
	}
	return ""
}

// apply parses one value of the setting, the error naming the setting (by
// the name it was given as) and the accepted values, and the value unless
// it is secret.
func (st setting) apply(s *settings, name, v string) error {
	err := st.Set(s, v)
	if err == nil {
		return nil
	}
	if st.Secret {
		return fmt.Errorf("%s: the value is not accepted; %w", name, st.acceptedError(err))
	}
	return fmt.Errorf("%s: %q is not accepted; %w", name, v, st.acceptedError(err))
}

// accepted is a parser's error that names the values it accepts (derived
// from its bounds, instead of a setting's Accepts text).
type accepted string

func (a accepted) Error() string { return "accepted: " + string(a) }

// acceptedError names the accepted values, or says what is wrong.
func (st setting) acceptedError(err error) error {
	if a := st.accepts(); a != "" {
		return accepted(a)
	}
	return err
}

// flagValue is the value the flag package quotes in its errors.
var flagValue = regexp.MustCompile(`^invalid (boolean )?value "(?:[^"\\]|\\.)*" for (?:flag )?(-[A-Za-z0-9-]+)(: .*)?$`)

// flagError is the flag package's error without the value it quotes (and
// a boolean's strconv text, which quotes it again): a value given to the
// wrong flag may be a password (--password-stdin=Hunter2).
func flagError(err error) string {
	msg := err.Error()
	if m := flagValue.FindStringSubmatch(msg); m != nil {
		if m[1] != "" {
			return "invalid value for " + m[2] + ": it takes no value, or true or false"
		}
		return "invalid value for " + m[2] + m[3]
	}
	if strings.HasPrefix(msg, "bad flag syntax") {
		return "bad flag syntax (the word is not shown)"
	}
	return msg
}

// parse fills s for the command name from the defaults, the environment
// and args; extra adds the command's own flags. It returns the flag set
// (for its remaining arguments) and s.
func (m *Main) parse(name string, args []string, extra func(*flag.FlagSet)) (*flag.FlagSet, *settings, error) {
	s := &settings{}
	for _, st := range table {
		if err := st.apply(s, "default of "+st.Env, st.Default); err != nil {
			return nil, nil, err // a mistake in the table; TestSettingsTable catches it
		}
	}
	for _, st := range table {
		if v := m.Getenv(st.Env); v != "" {
			if err := st.apply(s, st.Env, v); err != nil {
				return nil, nil, err
			}
		}
	}
	if helpRequested(args) {
		return nil, nil, m.help(name, extra)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the error comes back to main, which prints it once
	for _, st := range table {
		st := st
		set := func(v string) error {
			if st.NotEmpty && strings.TrimSpace(v) == "" {
				return errors.New("an empty value: give one, or leave the flag out for the default")
			}
			if err := st.Set(s, v); err != nil {
				return st.acceptedError(err)
			}
			return nil
		}
		if st.Bool {
			fs.BoolFunc(st.Flag, st.Help, set)
		} else {
			fs.Func(st.Flag, st.Help, set)
		}
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, fmt.Errorf("%s (campaign-privacy help %s)", flagError(err), name)
	}
	// The parser stops at the first word that is not a flag: a forgotten
	// --right would otherwise leave "operator rights" with none at all.
	if fs.NArg() > 0 && !(name == "receipt verify" && fs.NArg() == 1) {
		// Not echoed: a stray word may be a password typed in the wrong place.
		return nil, nil, fmt.Errorf("%d unexpected argument(s) after the flags: every value is given with its flag (campaign-privacy help %s)", fs.NArg(), name)
	}
	if err := s.check(); err != nil {
		return nil, nil, err
	}
	return fs, s, nil
}

// check validates what one setting alone cannot: the retention against the
// confirmation window.
func (s *settings) check() error {
	return privacy.Config{Retention: s.retention}.Validate()
}

// writeSettingsHelp writes the settings part of --help.
func writeSettingsHelp(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, st := range table {
		def := st.Default
		if def == "" {
			def = "empty"
		}
		fmt.Fprintf(tw, "  --%s\t%s\t%s (%s)\n", st.Flag, st.Env, st.Help, def)
	}
	tw.Flush()
}

// goSettings are Go's own variables that serve sets a default for
// (tuneGC): not settings of ours, but an operator looks for them here.
const goSettings = "| `GOGC`, `GOMEMLIMIT` | – | `400`, `200MiB` for `serve` | Go's own garbage-collector settings. `serve` collects at 5× its live heap (a SOAP call allocates, the live heap is small) with a soft limit of 200 MiB (under the security bar's 256 MiB for a logon storm); set either variable to override (bench/README.md has the measurements). |\n"

// settingsMarkdown is the README's settings table.
func settingsMarkdown() string {
	var b strings.Builder
	b.WriteString("| Variable | Flag | Default | Meaning |\n|---|---|---|---|\n")
	for _, st := range table {
		def := st.DefaultDoc
		if def == "" && st.Default == "" {
			def = "empty"
		} else if def == "" {
			def = "`" + st.Default + "`"
		}
		doc := st.Doc
		if doc == "" {
			doc = st.Help
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | %s | %s |\n", st.Env, st.Flag, def, doc)
	}
	b.WriteString(goSettings)
	return b.String()
}

// settingsHelp is the settings part of --help.
func settingsHelp() string {
	var b strings.Builder
	writeSettingsHelp(&b)
	return b.String()
}
