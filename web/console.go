package web

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/siteurl"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// pageSize is the number of requests per page of the list.
const pageSize = 25

func (s *Server) setSessionCookies(w http.ResponseWriter, r *http.Request, token, security string, maxAge int) {
	for name, value := range map[string]string{sessionCookie: token, securityCookie: security} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
			HttpOnly: true, Secure: s.cfg.Zone.HTTPS(r), SameSite: http.SameSiteStrictMode})
	}
}

func (s *Server) handleLogonForm(w http.ResponseWriter, r *http.Request) {
	logonPolicy(w)
	s.render(w, r, http.StatusOK, "logon.html", page{Title: "Log on", Target: safeTarget(r.URL.Query().Get("target"))})
}

func (s *Server) handleLogon(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		site := r.Header.Get("Sec-Fetch-Site")
		switch site {
		case "", "cross-site", "same-site", "same-origin", "none":
		default:
			site = "other" // the caller's text: never logged
		}
		s.log.InfoContext(r.Context(), "logon form posted from another site", "sec_fetch_site", site)
		http.Error(w, "Forbidden: the logon form was posted from another site.", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	login, password := r.PostFormValue("login"), r.PostFormValue("password")
	target := safeTarget(r.PostFormValue("target"))
	tokens, err := s.sessions.Logon(r.Context(), login, password, addrOf(r).String())
	if err != nil {
		status := http.StatusUnauthorized
		if apperr.CodeOf(err) == apperr.Busy {
			status = http.StatusServiceUnavailable
		}
		msg := "Invalid login or password."
		if status == http.StatusServiceUnavailable {
			msg = apperr.MessageOf(err) // refused before the operator was read: it says nothing of it
		}
		logonPolicy(w)
		s.render(w, r, status, "logon.html", page{Title: "Log on", Target: target, Login: login, Error: msg})
		return
	}
	s.setSessionCookies(w, r, tokens.SessionToken, tokens.SecurityToken, int(s.sessions.Config().TTL.Seconds()))
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// sameOrigin is the logon form's CSRF check (SECURITY-CATALOGUE "Login
// CSRF"): a page on another site must not log the victim's browser on
// with the attacker's account. Before logon there is no session to bind a
// token to, so the browser's own word is used. Sec-Fetch-Site, sent by
// browsers to trustworthy origins (HTTPS, loopback), must be same-origin
// (or none: the user's own action); without it, Origin must name this host
// (the scheme is not compared, so a TLS-terminating proxy does not
// matter) and "null" is refused. The logon pages send Referrer-Policy
// same-origin (logonPolicy) so that their own form carries a real Origin.
// A client that sends neither header is no browser, hence no CSRF vector.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// logonPolicy replaces no-referrer on the pages holding the logon form:
// under no-referrer a browser sends "Origin: null" with the form, and
// sameOrigin could not tell it from a sandboxed page elsewhere. Nothing
// leaves the site: same-origin sends no Referer to other sites.
func logonPolicy(w http.ResponseWriter) { w.Header().Set("Referrer-Policy", "same-origin") }

func (s *Server) handleLogoff(w http.ResponseWriter, r *http.Request) {
	if err := s.sessions.Logoff(r.Context(), callerOf(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	s.setSessionCookies(w, r, "", "", -1)
	http.Redirect(w, r, "/privacy/logon", http.StatusSeeOther)
}

// Notices are codes in the URL (?notice=created), never text: a link
// could otherwise put any sentence in the console's green success banner
// (SECURITY-CATALOGUE "Free text in notices"). An unknown code shows
// nothing.
const (
	noticeCreated   = "created"
	noticeConfirmed = "confirmed"
	noticeNamespace = "namespace"
	noticeWorkflows = "workflows"
)

var notices = map[string]string{
	noticeCreated:   "Request created.",
	noticeConfirmed: "Deletion confirmed.",
	noticeNamespace: "Namespace created.",
}

// notice is the banner text of a notice code. The workflows' report is
// the text of this server's last run (written by handleRunWorkflows, not
// by the URL).
func (s *Server) notice(code string) string {
	if code == noticeWorkflows {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.lastRun
	}
	return notices[code]
}

// listData feeds list.html.
type listData struct {
	Requests []privacy.RequestView
	Total    int64
	Page     int
	Pages    int
	Filter   map[string]string // the filters, as given
	Head     privacy.AuditHead // the audit chain's head
	Searched bool              // some filter is set
}

// pagerLink is a page of the list, posted with the search's filters.
type pagerLink struct {
	Page  page
	To    int
	Label string
}

// listFilters are the search fields of the request list.
var listFilters = []string{"status", "type", "regulation", "from", "to", "subject"}

// handleList is the request list and the DPO's search: by status, type,
// regulation, creation date and exact subject value (matched through the
// subject hash, so a request is found even after its value was purged).
// A search is posted (its pages too): a subject value in an address would
// stay in the browser's history and in proxies' logs, which no delete
// reaches, so a GET naming one is refused.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.PostForm
	} else if q.Get("subject") != "" {
		s.fail(w, r, apperr.Errorf(apperr.Invalid, "Search a subject with the search form: a value in the address is kept in logs and history."))
		return
	}
	query, filter, err := parseListQuery(q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pageNo, _ := strconv.Atoi(q.Get("page"))
	pageNo = min(max(pageNo, 1), math.MaxInt32) // (pageNo-1)*pageSize never overflows
	query.Limit, query.Offset = pageSize, (pageNo-1)*pageSize
	reqs, total, err := s.privacy.Requests(r.Context(), callerOf(r), query)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	head, err := s.privacy.AuditChainHead(r.Context(), callerOf(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	searched := false
	for _, v := range filter {
		searched = searched || v != ""
	}
	pages := int((total + pageSize - 1) / pageSize)
	s.render(w, r, http.StatusOK, "list.html", page{Title: "Privacy requests", Caller: callerOf(r), Statuses: privacy.Statuses(),
		Notice: s.notice(q.Get("notice")),
		Data:   listData{Requests: reqs, Total: total, Page: pageNo, Pages: max(pages, 1), Filter: filter, Searched: searched, Head: head}})
}

// parseListQuery reads the search fields; a malformed one is Invalid.
func parseListQuery(q url.Values) (privacy.RequestQuery, map[string]string, error) {
	var out privacy.RequestQuery
	filter := map[string]string{}
	for _, k := range listFilters {
		filter[k] = strings.TrimSpace(q.Get(k))
	}
	bad := func(what string) (privacy.RequestQuery, map[string]string, error) {
		return out, filter, apperr.Errorf(apperr.Invalid, "Unknown %s filter.", what)
	}
	if v := filter["status"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < int(privacy.StatusNew) || n > int(privacy.StatusErrorDataNotFound) {
			return bad("status")
		}
		out.Status = ptr(privacy.Status(n))
	}
	for _, f := range []struct {
		name string
		dst  **int
		ok   func(int) bool
	}{
		{"type", &out.Type, func(n int) bool { return n == privacy.TypeAccess || n == privacy.TypeDelete }},
		{"regulation", &out.Regulation, func(n int) bool { return n >= privacy.RegulationGDPR && n <= privacy.RegulationLGPD }},
	} {
		if v := filter[f.name]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || !f.ok(n) {
				return bad(f.name)
			}
			*f.dst = ptr(n)
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
		days int
	}{{"from", &out.CreatedFrom, 0}, {"to", &out.CreatedBefore, 1}} {
		if v := filter[f.name]; v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				return bad("date")
			}
			t = t.AddDate(0, 0, f.days) // "to" includes its day
			if t.Year() > 9999 {
				continue // to 9999-12-31: no end (the stores' dates stop there)
			}
			*f.dst = t
		}
	}
	if len(filter["subject"]) > privacy.MaxReconciliationBytes {
		return bad("subject")
	}
	out.Subject = filter["subject"]
	return out, filter, nil
}

func ptr[T any](v T) *T { return &v }

func requestID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.Errorf(apperr.NotFound, "Unknown privacy request.")
	}
	return id, nil
}

func (s *Server) handleDetail(w http.ResponseWriter, r *http.Request) {
	id, err := requestID(r)
	if err == nil {
		var v *privacy.RequestView
		if v, err = s.privacy.Request(r.Context(), callerOf(r), id); err == nil {
			s.render(w, r, http.StatusOK, "detail.html", page{Title: v.Name, Caller: callerOf(r), Data: v, Notice: s.notice(r.URL.Query().Get("notice"))})
			return
		}
	}
	s.fail(w, r, err)
}

// The delete cannot be undone, so the operator types the request's name
// (privacyRequest12) to confirm it, as a second look at which request this
// is; a missing or different name changes nothing.
func (s *Server) handleConfirm(w http.ResponseWriter, r *http.Request) {
	id, err := requestID(r)
	var v *privacy.RequestView
	if err == nil {
		if v, err = s.privacy.Request(r.Context(), callerOf(r), id); err == nil && strings.TrimSpace(r.PostFormValue("name")) != v.Name {
			err = apperr.Errorf(apperr.Invalid, "Type the request's name, %s, to confirm the deletion. Nothing was deleted.", v.Name)
		} else if err == nil && v.ConfirmBefore == nil {
			// Not waiting for a confirmation (already confirmed: a double
			// click; or done): nothing to confirm.
			err = apperr.Errorf(apperr.Conflict, "This request is not waiting for a delete confirmation (status %s): it may have been confirmed already. Nothing else was done.", v.StatusLabel)
		} else if err == nil && r.PostFormValue("round") != strconv.FormatInt(v.ConfirmBefore.UnixMicro(), 10) {
			// The form confirms the file it was shown with: each review
			// round has a deadline of its own. An old form (a double
			// click after a delete run, a reload, an old tab) must not
			// confirm a later round whose file nobody saw.
			err = apperr.Errorf(apperr.Conflict, "This request was sent back to review after this page was shown: check its new file, then confirm again. Nothing was deleted.")
		}
	}
	if err == nil {
		// The store's update checks the round again: this read may
		// be older than a delete run that sent the request back.
		err = s.privacy.ConfirmRound(r.Context(), callerOf(r), id, *v.ConfirmBefore)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/privacy/requests/"+strconv.FormatInt(id, 10)+"?notice="+noticeConfirmed, http.StatusSeeOther)
}

// newData feeds new.html: the namespaces and what was typed.
type newData struct {
	Namespaces []privacy.Namespace
	Form       map[string]string
}

func (s *Server) handleNewForm(w http.ResponseWriter, r *http.Request) {
	nss, err := s.privacy.Namespaces(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "new.html", page{Title: "New privacy request", Caller: callerOf(r),
		Data: newData{Namespaces: nss, Form: map[string]string{"regulation": "1", "type": "1", "confirm": "1"}}})
}

func (s *Server) handleNew(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{}
	for _, k := range []string{"namespace", "value", "type", "regulation", "confirm"} {
		form[k] = r.PostFormValue(k)
	}
	typ, _ := strconv.ParseInt(form["type"], 10, 64)
	reg, _ := strconv.ParseInt(form["regulation"], 10, 64)
	id, err := s.privacy.CreateRequestByName(r.Context(), callerOf(r), privacy.CreateRequest{
		NamespaceName: form["namespace"], ReconciliationValue: form["value"], Type: typ, Regulation: reg,
		ConfirmDeletePending: form["confirm"] == "1", DownloadURL: siteurl.Base(r, s.cfg.Zone.HTTPS(r), "") + "/nms/gdpr.jssp?id=",
	})
	if err != nil {
		if apperr.CodeOf(err) == apperr.Invalid {
			nss, _ := s.privacy.Namespaces(r.Context())
			s.render(w, r, http.StatusBadRequest, "new.html", page{Title: "New privacy request", Caller: callerOf(r),
				Error: apperr.MessageOf(err), Data: newData{Namespaces: nss, Form: form}})
			return
		}
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/privacy/requests/"+strconv.FormatInt(id, 10)+"?notice="+noticeCreated, http.StatusSeeOther)
}

func (s *Server) handleNamespaces(w http.ResponseWriter, r *http.Request) {
	s.renderNamespaces(w, r, http.StatusOK, "", map[string]string{"schema": "nms:recipient"})
}

func (s *Server) renderNamespaces(w http.ResponseWriter, r *http.Request, status int, msg string, form map[string]string) {
	nss, err := s.privacy.Namespaces(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, status, "namespaces.html", page{Title: "Namespaces", Caller: callerOf(r), Error: msg,
		Notice: s.notice(r.URL.Query().Get("notice")), Data: newData{Namespaces: nss, Form: form}})
}

func (s *Server) handleNewNamespace(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{}
	for _, k := range []string{"name", "label", "schema", "key", "aec", "match", "region"} {
		form[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	aec, _ := strconv.ParseInt(form["aec"], 10, 64)
	err := s.privacy.CreateNamespaceAs(r.Context(), callerOf(r), privacy.Namespace{
		Name: form["name"], Label: form["label"], TargetSchema: form["schema"], ReconciliationKey: form["key"], AecID: aec,
		MatchRule: form["match"], DefaultRegion: form["region"]})
	switch apperr.CodeOf(err) {
	case "":
		http.Redirect(w, r, "/privacy/namespaces?notice="+noticeNamespace, http.StatusSeeOther)
	case apperr.Invalid, apperr.Conflict:
		s.renderNamespaces(w, r, http.StatusBadRequest, apperr.MessageOf(err), form)
	default:
		s.fail(w, r, err)
	}
}

func (s *Server) handleRunWorkflows(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	if !slices.Contains(c.Rights, session.RightAdmin) {
		s.fail(w, r, apperr.Errorf(apperr.Forbidden, "Only an administrator may run the workflows."))
		return
	}
	s.log.InfoContext(r.Context(), "workflows run from the console", "operator_id", c.OperatorID)
	reports, err := s.cfg.Workflows(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var parts []string
	for _, rep := range reports {
		parts = append(parts, rep.String())
	}
	s.mu.Lock()
	s.lastRun = "Workflows run: " + strings.Join(parts, "; ") + "."
	s.mu.Unlock()
	http.Redirect(w, r, "/privacy/?notice="+noticeWorkflows, http.StatusSeeOther)
}

// handleDownloadPage is the "DOWNLOAD GDPR DATA" page of Adobe's example,
// a page operators can hand out: one request, one link.
func (s *Server) handleDownloadPage(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, r, apperr.Errorf(apperr.NotFound, "Unknown privacy request."))
		return
	}
	v, err := s.privacy.Request(r.Context(), callerOf(r), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if v.Purged || v.Destroyed {
		status = http.StatusGone
	}
	s.render(w, r, status, "download.html", page{Title: "Download GDPR data", Caller: callerOf(r), Data: v})
}
