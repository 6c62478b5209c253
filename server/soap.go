package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// call is one SOAP call after parsing, authentication and action resolution.
type call struct {
	method  *schemas.Method
	service string           // the service as the client named it
	args    []*etree.Element // one per method.RequestParams(); nil when absent
	caller  *session.Caller  // nil for anonymous methods
	http    *http.Request
}

// handler runs one method. It returns one value per m.ResponseParams().
type handler func(ctx context.Context, c *call) ([]any, error)

// soapError carries the method and service names known so far, for the
// fault text.
type soapError struct {
	method, service string
	err             error
	operatorID      int64 // the caller, once authenticated; 0 before
}

// handleSOAP is /nl/jsp/soaprouter.jsp.
func (s *Server) handleSOAP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		http.Error(w, "Compressed requests are not accepted.", http.StatusUnsupportedMediaType)
		return
	}
	mediaType, ctParams, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !isXMLMediaType(mediaType) {
		http.Error(w, "A SOAP request is XML: use text/xml or application/soap+xml.", http.StatusUnsupportedMediaType)
		return
	}
	if cs := ctParams["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") {
		http.Error(w, "Only UTF-8 is accepted.", http.StatusUnsupportedMediaType)
		return
	}
	ref := newRef()
	start := time.Now()
	s.cfg.Metrics.CallStarted()
	defer s.cfg.Metrics.CallEnded()
	select {
	case s.inflight <- struct{}{}:
	default:
		s.fault(w, r, ref, start, &soapError{err: apperr.Errorf(apperr.Busy, "The server is busy, try again.")})
		return
	}
	// A Logon leaves the count when it comes to wait for a hash slot
	// (session.WithInFlightRelease): the hasher bounds its own queue.
	var left atomic.Bool
	leave := func() {
		if left.CompareAndSwap(false, true) {
			<-s.inflight
		}
	}
	defer leave()
	// method is the registry's method once the call resolved it: a panic
	// after that is counted under its name (never the caller's text), so
	// the alert on reason="internal" says which method crashes.
	var method *schemas.Method
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(r.Context(), "panic in SOAP call", "ref", ref, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			s.observe(method, apperr.Internal, start)
			writeXML(w, http.StatusInternalServerError, writeFault(apperr.Errorf(apperr.Internal, "panic"), "", "", ref))
		}
	}()
	ctx, cancel := context.WithTimeout(session.WithInFlightRelease(r.Context(), leave), s.cfg.CallTimeout)
	defer cancel()

	body, err := readBody(w, r, s.cfg.Limits.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = apperr.Errorf(apperr.TooLarge, "The request is larger than %d bytes.", s.cfg.Limits.MaxBodyBytes)
		} else {
			err = apperr.Wrap(apperr.Malformed, err, "The request body could not be read.")
		}
		s.fault(w, r, ref, start, &soapError{err: err})
		return
	}
	c, serr := s.prepare(ctx, r, body, ctParams["action"])
	if serr != nil {
		s.fault(w, r, ref, start, serr)
		return
	}
	method = c.method
	h, ok := s.handlers[c.method.Service+"#"+c.method.Name]
	if !ok {
		s.fault(w, r, ref, start, &soapError{method: c.method.Name, service: c.method.Service, err: apperr.Errorf(apperr.Invalid, "campaign-privacy does not implement the method '%s'.", c.method.Name)})
		return
	}
	if s.cfg.Failpoint != nil {
		if err := s.cfg.Failpoint("soap:" + c.method.Service + "#" + c.method.Name); err != nil {
			s.fault(w, r, ref, start, &soapError{method: c.method.Name, service: c.method.Service, err: err, operatorID: operatorID(c.caller)})
			return
		}
	}
	values, err := h(ctx, c)
	if err != nil {
		s.fault(w, r, ref, start, &soapError{method: c.method.Name, service: c.method.Service, err: err, operatorID: operatorID(c.caller)})
		return
	}
	out, err := writeResponse(c.method, c.service, values)
	if err != nil {
		s.fault(w, r, ref, start, &soapError{method: c.method.Name, service: c.method.Service, err: apperr.Wrap(apperr.Internal, err, "")})
		return
	}
	writeXML(w, http.StatusOK, out)
	s.observe(c.method, "", start)
	s.log.InfoContext(ctx, "soap call", "ref", ref, "action", c.method.Service+"#"+c.method.Name,
		"operator_id", operatorID(c.caller), "ms", time.Since(start).Milliseconds())
}

func operatorID(c *session.Caller) int64 {
	if c == nil {
		return 0
	}
	return c.OperatorID
}

func isXMLMediaType(t string) bool {
	switch t {
	case "text/xml", "application/soap+xml", "application/xml":
		return true
	}
	return false
}

// fault logs a failed call (code and the reason's template, never values:
// see apperr.LogText) and answers it; the fault itself carries the full text.
func (s *Server) fault(w http.ResponseWriter, r *http.Request, ref string, start time.Time, e *soapError) {
	code := apperr.CodeOf(e.err)
	level := s.log.InfoContext
	if code == apperr.Internal {
		level = s.log.ErrorContext
	}
	// The names come from the caller (the SOAPAction, the Body's
	// namespace): only a method of the registry is named, in the log and
	// with a metrics label of its own; any other is "unknown".
	var m *schemas.Method
	if e.method != "" {
		m, _ = s.registry.Method(e.service, e.method)
	}
	action := ""
	switch {
	case m != nil:
		action = m.Service + "#" + m.Name
	case e.service != "" || e.method != "":
		action = "unknown"
	}
	level(r.Context(), "soap fault", "ref", ref, "action", action, "code", string(code),
		"err", apperr.LogText(e.err), "operator_id", e.operatorID, "ms", time.Since(start).Milliseconds())
	writeXML(w, s.cfg.FaultHTTPStatus, writeFault(e.err, e.method, e.service, ref))
	s.observe(m, code, start)
}

// observe records an answered call in the metrics: m is the registry's
// method (nil when the call named none the registry knows), code the
// fault's class ("" for success).
func (s *Server) observe(m *schemas.Method, code apperr.Code, start time.Time) {
	if s.cfg.Metrics == nil {
		return
	}
	mm := s.unknownMetrics
	if m != nil {
		if v, ok := s.methodMetrics.Load(m); ok {
			mm = v.(*metrics.Method)
		} else {
			v, _ := s.methodMetrics.LoadOrStore(m, s.cfg.Metrics.Method(m.Service+"#"+m.Name))
			mm = v.(*metrics.Method)
		}
	}
	if code == "" {
		mm.Done(metrics.OutcomeOK, "", time.Since(start))
		return
	}
	outcome, ok := faultCodes[code]
	if !ok {
		code, outcome = apperr.Internal, faultCodes[apperr.Internal]
	}
	mm.Done(outcome, string(code), time.Since(start))
}

// prepare parses the envelope, resolves the action, authenticates the caller
// and checks the parameters' shape.
func (s *Server) prepare(ctx context.Context, r *http.Request, body []byte, ctAction string) (*call, *soapError) {
	env, err := s.cfg.Limits.parseEnvelope(body)
	if err != nil {
		return nil, &soapError{err: err}
	}
	service, name, err := resolveAction(r, ctAction, env.op)
	if err != nil {
		return nil, &soapError{err: err}
	}
	m, ok := s.registry.Method(service, name)
	if !ok {
		return nil, &soapError{method: name, service: service, err: apperr.Errorf(apperr.UnknownMethod, "unknown method")}
	}
	if err := s.checkZone(ctx, r, m); err != nil {
		return nil, &soapError{method: m.Name, service: service, err: err}
	}
	args, err := bindParams(m, env.op.ChildElements())
	if err != nil {
		return nil, &soapError{method: m.Name, service: service, err: err}
	}
	c := &call{method: m, args: args, http: r, service: service}
	if !m.Anonymous() {
		cred := httpCredentials(r, env, args[0])
		cred.From = s.addrOf(r)
		caller, err := s.sessions.Authenticate(ctx, cred)
		if err != nil {
			return nil, &soapError{method: m.Name, service: service, err: err}
		}
		c.caller = caller
	}
	return c, nil
}

// checkZone refuses a call from outside the SOAP security zone, on every
// call and not only at Logon: a token carried elsewhere is no use there. A
// Logon gets the one answer every failed logon gets; any other call the
// answer of an invalid session.
func (s *Server) checkZone(ctx context.Context, r *http.Request, m *schemas.Method) error {
	if s.inSOAPZone(r) {
		return nil
	}
	s.log.WarnContext(ctx, "SOAP call refused: the client is outside the security zone", "action", m.Service+"#"+m.Name)
	if m.Anonymous() {
		return apperr.Errorf(apperr.BadLogon, "The client is outside the security zone.")
	}
	return apperr.Errorf(apperr.BadSession, "The client is outside the security zone.")
}

// inSOAPZone reports whether the client may reach the SOAP router and
// ping.jsp (CP_SOAP_ALLOWED_SUBNETS; no list allows everyone).
func (s *Server) inSOAPZone(r *http.Request) bool {
	if len(s.cfg.SOAPAllowed) == 0 {
		return true
	}
	_, ok := (netzone.Zone{Allowed: s.cfg.SOAPAllowed, Trusted: s.cfg.TrustedProxies}).Allows(r)
	return ok
}

// resolveAction finds service and method: the SOAPAction header (quoted or
// not), else ?soapAction=, else the action= of a SOAP 1.2 media type, else
// the method element itself. An action that names another method than the
// body carries is refused: authorization must apply to what runs.
func resolveAction(r *http.Request, ctAction string, op *etree.Element) (service, name string, err error) {
	bodyService := strings.TrimPrefix(op.NamespaceURI(), "urn:")
	values := r.Header.Values("SOAPAction")
	if len(values) > 1 {
		return "", "", apperr.Errorf(apperr.Malformed, "The SOAPAction header is given more than once.")
	}
	action := ""
	if len(values) == 1 {
		action = values[0]
	}
	if strings.TrimSpace(action) == "" || strings.Trim(strings.TrimSpace(action), `"`) == "" {
		action = r.URL.Query().Get("soapAction")
	}
	if action == "" {
		action = ctAction
	}
	action = strings.Trim(strings.TrimSpace(action), `"`)
	if action == "" {
		return bodyService, op.Tag, nil
	}
	service, name, ok := strings.Cut(action, "#")
	if !ok || service == "" || name == "" {
		return "", "", apperr.Errorf(apperr.Malformed, "The SOAPAction must be written <schema>#<method>.")
	}
	if name != op.Tag {
		return "", "", apperr.Errorf(apperr.Malformed, "The SOAPAction names '%s' but the Body calls '%s'.", name, op.Tag)
	}
	if bodyService != "" {
		if !containsParts(service, bodyService) {
			return "", "", apperr.Errorf(apperr.Malformed, "The SOAPAction names service '%s' but the Body is in 'urn:%s'.", service, bodyService)
		}
		// The Body's service runs, not the action's first: an action
		// listing other services too must not choose among them.
		return bodyService, name, nil
	}
	return service, name, nil
}

// containsParts reports whether every part of body ("xtk:persist|xtk:session"
// as acc-js-sdk writes an inherited method's namespace, or "xtk:session")
// is a part of the SOAPAction's service.
func containsParts(service, body string) bool {
	parts := map[string]bool{}
	for _, p := range strings.Split(service, "|") {
		parts[strings.TrimSpace(p)] = true
	}
	for _, p := range strings.Split(body, "|") {
		if !parts[strings.TrimSpace(p)] {
			return false
		}
	}
	return true
}

// httpCredentials collects the tokens of a call, in ACC's order of
// preference: the first body parameter, then the X-Session-Token header, the
// SOAP header Cookie entry, Authorization: Bearer, and last the
// __sessiontoken cookie. The security token comes from X-Security-Token or
// the SOAP header.
func httpCredentials(r *http.Request, env *envelope, tokenParam *etree.Element) session.Credentials {
	var e session.Envelope
	if tokenParam != nil {
		e.SessionToken = tokenParam.Text()
	}
	if env != nil {
		e.Cookie = env.soapHeaderValue("Cookie")
		e.SecurityToken = env.soapHeaderValue("X-Security-Token")
	}
	return session.ReadCredentials(r, e)
}

// --- positional parameters ---------------------------------------------------

// paramAliases are the other names clients give the implicit parameters:
// the console writes __sessiontoken, acc-js-sdk names the object "document".
var paramAliases = map[string]string{"__sessiontoken": "sessiontoken", "document": "entity"}

// bindParams matches the children of the method element to the method's
// request parameters. ACC reads them by position ("the parameters are
// recognized by order of appearance"), and clients name them differently
// (acc-js-sdk uses the schema names, WSDL clients the Hungarian ones,
// SOAP::Lite may invent its own). But WSDL-generated clients such as
// gowsdl leave out empty elements, which would shift every later
// parameter. So: when every child carries a name the method declares (its
// ACC name, its WSDL name or an alias), bind by name; otherwise bind by
// position, as ACC. A name given twice is refused either way.
func bindParams(m *schemas.Method, children []*etree.Element) ([]*etree.Element, error) {
	params := m.RequestParams()
	index := map[string]int{}
	for i, p := range params {
		index[p.Name] = i
		index[m.WSDLName(p)] = i
	}
	for alias, name := range paramAliases {
		if i, ok := index[name]; ok {
			index[alias] = i
		}
	}
	bound := make([]*etree.Element, len(params))
	byName := true
	seen := map[string]bool{}
	for _, c := range children {
		if seen[c.Tag] {
			return nil, apperr.Errorf(apperr.Malformed, "The parameter <%s> is given twice.", c.Tag)
		}
		seen[c.Tag] = true
		i, ok := index[c.Tag]
		if !ok || bound[i] != nil {
			byName = false
			continue
		}
		bound[i] = c
	}
	if !byName {
		bound = make([]*etree.Element, len(params))
		for i := 0; i < len(children) && i < len(params); i++ {
			bound[i] = children[i]
		}
	}
	// A value with an element inside is not a value: its text would stop
	// at the element, and a request would be made for part of what was
	// sent (alice@example.com<b/>.au), a password checked on its start.
	for i, el := range bound {
		if el != nil && !params[i].IsXML() && len(el.ChildElements()) > 0 {
			return nil, apperr.Errorf(apperr.Invalid, "The parameter '%s' must be text, not XML.", params[i].Name)
		}
	}
	return bound, nil
}

// param returns the wire element of the named request parameter, or nil
// when the client left it out.
func (c *call) param(name string) (*etree.Element, schemas.Param) {
	for i, p := range c.method.RequestParams() {
		if p.Name == name {
			return c.args[i], p
		}
	}
	panic("server: method " + c.method.Name + " has no parameter " + name) // a programming error, caught by tests
}

// has reports whether the method declares the parameter.
func (c *call) has(name string) bool {
	for _, p := range c.method.RequestParams() {
		if p.Name == name {
			return true
		}
	}
	return false
}

// String reads a string parameter; absent is "".
func (c *call) String(name string) string {
	el, _ := c.param(name)
	if el == nil {
		return ""
	}
	return el.Text()
}

// Long reads an xtk long (32-bit) parameter. Absent or empty is 0; anything
// but an optionally signed decimal integer is an Invalid error.
func (c *call) Long(name string) (int64, bool, error) {
	el, _ := c.param(name)
	if el == nil || el.Text() == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(el.Text(), 10, 32)
	if err != nil {
		return 0, true, apperr.Errorf(apperr.Invalid, "The parameter '%s' must be an integer.", name)
	}
	return v, true, nil
}

// Bool reads a boolean: true/false or 1/0, as ACC and its clients write
// them. Absent or empty reports present=false.
func (c *call) Bool(name string) (value, present bool, err error) {
	el, _ := c.param(name)
	if el == nil || el.Text() == "" {
		return false, false, nil
	}
	switch el.Text() {
	case "true", "1":
		return true, true, nil
	case "false", "0":
		return false, true, nil
	}
	return false, true, apperr.Errorf(apperr.Invalid, "The parameter '%s' must be true, false, 1 or 0.", name)
}

// Element reads an XML parameter: its first element child, or nil.
func (c *call) Element(name string) *etree.Element {
	el, _ := c.param(name)
	if el == nil {
		return nil
	}
	children := el.ChildElements()
	if len(children) == 0 {
		return nil
	}
	return children[0]
}

// readBody reads the request's body, at most limit bytes. With a
// Content-Length, into a buffer that grows with the bytes that arrive up
// to that length (io.ReadAll grows by doubling past the body, about twice
// its size; a buffer of the declared length at once would let a client
// that declares 256 KiB and sends nothing pin 256 KiB for the read
// timeout). A body declared larger than limit is not read at all: the
// fault is answered with Connection: close (net/http's own, for a body
// left unread past 256 KiB), so 100 MiB of dots costs the server its
// headers' 4 KiB buffer.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength < 0 {
		return io.ReadAll(body)
	}
	want := int(r.ContentLength) + 1 // +1: the reader's EOF, without growing
	buf := make([]byte, 0, min(want, 4<<10+1))
	for {
		if len(buf) == cap(buf) {
			// Doubled, up to the declared length; past it (a body longer
			// than declared) the reader errs first.
			buf = slices.Grow(buf, max(1, min(cap(buf), want-len(buf))))
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
