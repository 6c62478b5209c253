package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// ACC version numbers reported in serverInfo and /r/test. acc-js-sdk reads
// buildNumber, majNumber, minNumber and servicePack; these are those of the
// Campaign Classic v7 build whose privacy API (with regulation) we follow:
// build 9364 is release 7.3.4 (the console capture of acc-protocol.md §2.2
// shows the pair).
const (
	buildNumber = "9364"
	majNumber   = "6"
	minNumber   = "7"
	servicePack = "0"
	releaseName = "7.3.4"
	// minClientBuildNumber is the oldest client build the server accepts,
	// advisedClientBuildNumber the build it advises ("0": none), as in
	// every serverInfo acc-js-sdk's captured responses hold.
	minClientBuildNumber     = "8969"
	advisedClientBuildNumber = "0"
	// locale is the instance locale ("en" on build 9219, "en-US" on later
	// builds in the captures).
	locale = "en-US"
)

// installedPackages are the packages userInfo reports, namespace and name,
// the ones a Campaign instance with the privacy package reports: nms:core
// (the recipient data model), nms:campaign (every Campaign instance has it;
// acc-js-sdk scripts test hasPackage('nms:campaign') before treating the
// server as a Campaign instance) and nms:gdpr (the privacy package, which
// the console and acc-js-sdk check before offering privacy features).
var installedPackages = [][2]string{{"nms", "campaign"}, {"nms", "core"}, {"nms", "gdpr"}}

// methodTable is the dispatch table: one handler per implemented method,
// keyed "<service>#<Method>" as the registry names them. Methods the schemas
// declare but this table lacks answer with a clear fault (see README.md).
func (s *Server) methodTable() map[string]handler {
	return map[string]handler{
		"xtk:session#Logon":                 s.logon,
		"xtk:session#BearerTokenLogon":      s.bearerTokenLogon,
		"xtk:session#Logoff":                s.logoff,
		"xtk:session#GetServerTime":         s.getServerTime,
		"xtk:session#GetUserInfo":           s.getUserInfo,
		"xtk:session#GetOption":             s.getOption,
		"xtk:persist#GetEntityIfMoreRecent": s.getEntityIfMoreRecent,
		"xtk:persist#Write":                 s.write,
		"xtk:persist#WriteCollection":       s.writeCollection,

		"nms:privacyRequest#CreateRequestByName":  s.createRequestByName,
		"nms:privacyRequest#ConfirmDeletePending": s.confirmDeletePending,
		"nms:gdprRequest#CreateRequestByName":     s.createRequestByName,
		"nms:gdprRequest#ConfirmDeletePending":    s.confirmDeletePending,
		"xtk:queryDef#ExecuteQuery":               s.executeQuery,

		"xtk:workflow#Start":               s.startWorkflow,
		"xtk:workflow#StartWithParameters": s.startWorkflow,
		"xtk:workflow#Stop":                s.stopWorkflow,
		"xtk:workflow#PostEvent":           s.postWorkflowEvent,
	}
}

// startWorkflow: Start(workflowId) and StartWithParameters(workflowId,
// parameters) of a technical workflow, by internal name or id. The
// variables of StartWithParameters are accepted and not used: the
// technical workflows take none.
func (s *Server) startWorkflow(ctx context.Context, c *call) ([]any, error) {
	return nil, s.privacy.StartWorkflow(ctx, c.caller, strings.TrimSpace(c.String("workflowId")))
}

// stopWorkflow: Stop(workflowId).
func (s *Server) stopWorkflow(ctx context.Context, c *call) ([]any, error) {
	return nil, s.privacy.StopWorkflow(ctx, c.caller, strings.TrimSpace(c.String("workflowId")))
}

// postWorkflowEvent: PostEvent(workflowId, activity, transition,
// parameters, complete); the "signal" activity starts the workflow.
func (s *Server) postWorkflowEvent(ctx context.Context, c *call) ([]any, error) {
	if _, _, err := c.Bool("complete"); err != nil {
		return nil, err
	}
	return nil, s.privacy.PostWorkflowEvent(ctx, c.caller, strings.TrimSpace(c.String("workflowId")), strings.TrimSpace(c.String("activity")))
}

// requirePrivacyRight guards the calls that read or write personal data.
func requirePrivacyRight(c *call) error { return session.RequirePrivacyRight(c.caller) }

// write: xtk:persist#Write(doc) on a data-model schema.
func (s *Server) write(ctx context.Context, c *call) ([]any, error) {
	if err := requirePrivacyRight(c); err != nil {
		return nil, err
	}
	doc, err := s.calledSchemaDoc(c)
	if err != nil {
		return nil, err
	}
	return nil, s.cfg.Persist.Write(ctx, doc)
}

// calledSchemaDoc is the doc parameter of a persist method called through
// a data schema ("nms:recipient#Write", as that schema's WSDL declares
// it): the document's xtkschema defaults to that schema, and another
// xtkschema is refused — what runs is what the call names.
func (s *Server) calledSchemaDoc(c *call) (*etree.Element, error) {
	doc := c.Element("doc")
	if doc == nil || c.service == c.method.Service || strings.Contains(c.service, "|") {
		return doc, nil
	}
	sc, ok := s.registry.Schema(c.service)
	if !ok || sc.Data == nil || sc.Implements != schemas.PersistInterface {
		return doc, nil
	}
	switch x := doc.SelectAttrValue("xtkschema", ""); x {
	case "":
		doc.CreateAttr("xtkschema", c.service)
	case c.service:
	default:
		return nil, apperr.Errorf(apperr.Invalid, "The document's xtkschema '%s' is not the schema called, '%s'.", apperr.Quote(x, 64), c.service)
	}
	return doc, nil
}

// writeCollection: xtk:persist#WriteCollection(doc), all or nothing.
func (s *Server) writeCollection(ctx context.Context, c *call) ([]any, error) {
	if err := requirePrivacyRight(c); err != nil {
		return nil, err
	}
	doc, err := s.calledSchemaDoc(c)
	if err != nil {
		return nil, err
	}
	return nil, s.cfg.Persist.WriteCollection(ctx, doc)
}

// createRequestByName: (namespaceName, reconciliationValue, type,
// confirmDeletePending[, regulation]) → id. The legacy nms:gdprRequest
// signature has no regulation: it is GDPR, as an absent or 0 regulation.
// An absent confirmDeletePending keeps ACC's default, the 2-step process.
func (s *Server) createRequestByName(ctx context.Context, c *call) ([]any, error) {
	typ, _, err := c.Long("type")
	if err != nil {
		return nil, err
	}
	confirm, present, err := c.Bool("confirmDeletePending")
	if err != nil {
		return nil, err
	}
	if !present {
		confirm = true
	}
	var regulation int64
	if c.has("regulation") {
		if regulation, _, err = c.Long("regulation"); err != nil {
			return nil, err
		}
	}
	id, err := s.privacy.CreateRequestByName(ctx, c.caller, privacy.CreateRequest{
		NamespaceName:        c.String("namespaceName"),
		ReconciliationValue:  c.String("reconciliationValue"),
		Type:                 typ,
		ConfirmDeletePending: confirm,
		Regulation:           regulation,
		DownloadURL:          s.baseURL(c.http) + "/nms/gdpr.jssp?id=",
	})
	if err != nil {
		return nil, err
	}
	return []any{id}, nil
}

// confirmDeletePending: (privacyRequestId) on nms:privacyRequest,
// (gdprRequestId) on nms:gdprRequest — the first declared parameter.
func (s *Server) confirmDeletePending(ctx context.Context, c *call) ([]any, error) {
	name := c.method.In()[0].Name
	id, present, err := c.Long(name)
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, apperr.Errorf(apperr.Invalid, "The parameter '%s' is required.", name)
	}
	return nil, s.privacy.ConfirmDeletePending(ctx, c.caller, id)
}

// logon: (login, password, parameters) → sessionToken, sessionInfo, securityToken.
func (s *Server) logon(ctx context.Context, c *call) ([]any, error) {
	tokens, err := s.sessions.Logon(ctx, c.String("login"), c.String("password"), s.clientAddr(c))
	if err != nil {
		return nil, err
	}
	return s.logonAnswer(tokens), nil
}

// bearerTokenLogon: (bearerToken) → the answer of Logon. The token is the
// parameter, or, when a client leaves it empty, the Authorization: Bearer
// header (acc-js-sdk sends both).
func (s *Server) bearerTokenLogon(ctx context.Context, c *call) ([]any, error) {
	bearer := strings.TrimSpace(c.String("bearerToken"))
	if auth := c.http.Header.Get("Authorization"); bearer == "" && len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
		bearer = strings.TrimSpace(auth[7:])
	}
	tokens, err := s.sessions.BearerTokenLogon(ctx, bearer, s.clientAddr(c))
	if err != nil {
		return nil, err
	}
	return s.logonAnswer(tokens), nil
}

// logonAnswer is the out-parameters of Logon and BearerTokenLogon.
func (s *Server) logonAnswer(tokens *session.Tokens) []any {
	info := etree.NewElement("sessionInfo")
	info.AddChild(s.serverInfo())
	info.AddChild(s.userInfo(tokens.Caller))
	return []any{tokens.SessionToken, info, tokens.SecurityToken}
}

// clientAddr is the client's address for the per-address logon limit: the
// socket's peer, or behind trusted proxies the rightmost untrusted
// X-Forwarded-For entry — a client-written entry never lets a guesser
// change addresses.
func (s *Server) clientAddr(c *call) string { return s.addrOf(c.http) }

// addrOf is the client's address of r, as clientAddr ("" when unknown).
func (s *Server) addrOf(r *http.Request) string {
	if a, ok := (netzone.Zone{Trusted: s.cfg.TrustedProxies}).ClientAddr(r); ok {
		return a.String()
	}
	return ""
}

func (s *Server) logoff(ctx context.Context, c *call) ([]any, error) {
	return nil, s.sessions.Logoff(ctx, c.caller)
}

func (s *Server) getServerTime(context.Context, *call) ([]any, error) {
	return []any{s.cfg.Now()}, nil
}

func (s *Server) getUserInfo(_ context.Context, c *call) ([]any, error) {
	return []any{s.userInfo(c.caller)}, nil
}

// getOption answers the xtk options that describe this server's own
// behaviour, and XtkDatabaseId (the databaseId of serverInfo); any other
// option is "not found": empty value, type 0, as ACC.
func (s *Server) getOption(_ context.Context, c *call) ([]any, error) {
	cfg := s.sessions.Config()
	options := map[string]int64{
		"XtkSecurity_max_Unsuccessul_Attempts_Allowed": int64(cfg.Lockout.MaxFailures),
		"XtkSecurity_Examine_Window":                   int64(cfg.Lockout.Window / time.Minute),
		"XtkSecurity_Initial_Ban_Duration":             int64(cfg.Lockout.InitialBan / time.Minute),
		"XtkSecurity_Max_Ban_Duration":                 int64(cfg.Lockout.MaxBan / time.Minute),
	}
	if v, ok := options[c.String("name")]; ok {
		return []any{strconv.FormatInt(v, 10), 3}, nil // 3: xtk long
	}
	if c.String("name") == "XtkDatabaseId" {
		return []any{s.cfg.DatabaseID, 6}, nil // 6: xtk string, as the captured answer
	}
	return []any{"", 0}, nil
}

// getEntityIfMoreRecent serves "xtk:schema|<id>" from the registry, which is
// how acc-js-sdk discovers methods. Anything else is not found: an empty
// pdomDoc, or a fault when the caller said it must exist.
func (s *Server) getEntityIfMoreRecent(_ context.Context, c *call) ([]any, error) {
	pk := c.String("pk")
	mustExist, _, err := c.Bool("mustExist")
	if err != nil {
		return nil, err
	}
	if kind, id, ok := strings.Cut(pk, "|"); ok && kind == "xtk:schema" {
		if sc, ok := s.registry.Schema(id); ok {
			return []any{sc.Document()}, nil
		}
	}
	if mustExist {
		return nil, apperr.Errorf(apperr.NotFound, "The entity '%s' does not exist.", apperr.Quote(pk, 128))
	}
	return []any{nil}, nil
}

// serverInfo is the <serverInfo> of sessionInfo (acc-protocol.md §2.2),
// with the attributes of the captured responses in their order, then ours
// (productName, productVersion: which software answers).
func (s *Server) serverInfo() *etree.Element {
	ttl := strconv.Itoa(int(s.sessions.Config().TTL / time.Second))
	el := etree.NewElement("serverInfo")
	for _, kv := range [][2]string{
		{"advisedClientBuildNumber", advisedClientBuildNumber}, {"allowSQL", "false"},
		{"buildNumber", buildNumber}, {"commitId", s.cfg.CommitID}, {"databaseId", s.cfg.DatabaseID},
		{"defaultNameSpace", "cus"}, {"fohVersion", "2"}, {"instanceName", s.cfg.InstanceName},
		{"majNumber", majNumber}, {"minClientBuildNumber", minClientBuildNumber}, {"minNumber", minNumber},
		{"minNumberTechnical", "0"}, {"releaseName", releaseName}, {"securityTimeOut", ttl},
		{"serverDate", schemas.FormatDateTime(s.cfg.Now())}, {"servicePack", servicePack},
		{"sessionTimeOut", ttl}, {"useVault", "false"},
		{"productName", "campaign-privacy"}, {"productVersion", s.cfg.Version},
	} {
		el.CreateAttr(kv[0], kv[1])
	}
	return el
}

// userInfo is the <userInfo> of sessionInfo and GetUserInfo: the operator,
// its groups (<login-group>), one <login-right> per named right, and the
// installed packages.
func (s *Server) userInfo(c *session.Caller) *etree.Element {
	el := etree.NewElement("userInfo")
	id := strconv.FormatInt(c.OperatorID, 10)
	for _, kv := range [][2]string{
		{"datakitInDatabase", "true"}, {"homeDir", ""}, {"instanceLocale", locale},
		{"locale", locale}, {"login", c.Login}, {"loginCS", c.Login + " (" + c.Login + ")"},
		{"loginId", id}, {"noConsoleCnx", "true"}, {"orgUnitId", "0"}, {"theme", ""}, {"timezone", "UTC"},
	} {
		el.CreateAttr(kv[0], kv[1])
	}
	for _, g := range session.GroupsOf(c.Rights) {
		el.CreateElement("login-group").CreateAttr("id", strconv.FormatInt(g.ID, 10))
	}
	for _, r := range c.Rights {
		el.CreateElement("login-right").CreateAttr("right", r)
	}
	for _, p := range installedPackages {
		pkg := el.CreateElement("installed-package")
		pkg.CreateAttr("name", p[1])
		pkg.CreateAttr("namespace", p[0])
	}
	return el
}
