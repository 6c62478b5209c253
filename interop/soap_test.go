package interop_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Helpers for the tests that send raw envelopes (curl, the examples/soap
// files and the SoapUI project's requests) and read the responses.

// examplesDir is the examples folder of the repository, relative to interop/.
const examplesDir = "../examples"

// xmlNode is a parsed XML element, by local names (namespaces dropped).
type xmlNode struct {
	name     string
	attrs    map[string]string
	text     string
	children []*xmlNode
}

// parseXML parses a whole document and checks that it is well-formed to
// its end.
func parseXML(data string) (*xmlNode, error) {
	dec := xml.NewDecoder(strings.NewReader(data))
	var root *xmlNode
	var stack []*xmlNode
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &xmlNode{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, n)
			} else if root == nil {
				root = n
			} else {
				return nil, fmt.Errorf("second root element <%s>", n.name)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

// find returns the first element named local in document order (n itself
// included), or nil.
func (n *xmlNode) find(local string) *xmlNode {
	if n == nil {
		return nil
	}
	if n.name == local {
		return n
	}
	for _, c := range n.children {
		if f := c.find(local); f != nil {
			return f
		}
	}
	return nil
}

// soapResult is one HTTP answer of the SOAP router.
type soapResult struct {
	status int
	body   string
	root   *xmlNode // nil when the body is not XML
}

// fault returns the faultstring and detail of a SOAP fault; ok is false for
// a normal response.
func (r soapResult) fault() (faultstring, detail string, ok bool) {
	f := r.root.find("Fault")
	if f == nil {
		return "", "", false
	}
	fs, d := f.find("faultstring"), f.find("detail")
	if fs != nil {
		faultstring = strings.TrimSpace(fs.text)
	}
	if d != nil {
		detail = strings.TrimSpace(d.text)
	}
	return faultstring, detail, true
}

// value returns the trimmed text of the first element named local.
func (r soapResult) value(local string) string {
	if n := r.root.find(local); n != nil {
		return strings.TrimSpace(n.text)
	}
	return ""
}

func (r soapResult) String() string {
	return fmt.Sprintf("HTTP %d\n%s", r.status, r.body)
}

// requireOK fails the test unless r is an HTTP 200 answer without fault.
func requireOK(t *testing.T, what string, r soapResult) {
	t.Helper()
	if fs, d, isFault := r.fault(); r.status != 200 || r.root == nil || isFault {
		t.Fatalf("%s: want a normal response, got fault %q (%s):\n%s", what, fs, d, r)
	}
}

// checkFault checks that r is an HTTP 200 SOAP fault whose faultstring
// starts with code and whose detail contains detailPart.
func checkFault(t *testing.T, what string, r soapResult, code, detailPart string) {
	t.Helper()
	fs, detail, isFault := r.fault()
	switch {
	case !isFault:
		t.Errorf("%s: want a %s fault, got:\n%s", what, code, r)
	case r.status != 200:
		t.Errorf("%s: fault with HTTP %d, want 200:\n%s", what, r.status, r)
	case !strings.HasPrefix(fs, code):
		t.Errorf("%s: faultstring %q, want it to start with %s", what, fs, code)
	case !strings.Contains(detail, detailPart):
		t.Errorf("%s: detail %q, want it to contain %q", what, detail, detailPart)
	}
}

// requestID returns the id of a CreateRequestByName response.
func requestID(t *testing.T, what string, r soapResult) int {
	t.Helper()
	requireOK(t, what, r)
	id, err := strconv.Atoi(r.value("id"))
	if err != nil || id <= 0 {
		t.Fatalf("%s: id %q is not a positive integer:\n%s", what, r.value("id"), r)
	}
	return id
}

// curlHTTP posts envelope to the SOAP router of baseURL with the curl
// command-line client, with the given headers.
func curlHTTP(t *testing.T, baseURL, envelope string, headers ...string) soapResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	args := []string{"-sS", "--max-time", "20", "-w", "\n%{http_code}", "--data-binary", "@-"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, baseURL+"/nl/jsp/soaprouter.jsp")
	cmd := exec.CommandContext(ctx, "curl", args...)
	cmd.Stdin = strings.NewReader(envelope)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	// -w appends "\n<status>" after the body.
	i := strings.LastIndex(string(out), "\n")
	if i < 0 {
		t.Fatalf("curl: no status line in %q", out)
	}
	status, err := strconv.Atoi(string(out[i+1:]))
	if err != nil {
		t.Fatalf("curl: bad status line in %q", out)
	}
	r := soapResult{status: status, body: string(out[:i])}
	r.root, _ = parseXML(r.body)
	return r
}

// curlSOAP posts a SoapUI-style envelope the way SoapUI and WSDL clients do:
// text/xml and a quoted SOAPAction.
func curlSOAP(t *testing.T, baseURL, action, envelope string) soapResult {
	t.Helper()
	return curlHTTP(t, baseURL, envelope, "Content-Type: text/xml; charset=utf-8", `SOAPAction: "`+action+`"`)
}

// curlSDK posts an acc-js-sdk-style envelope the way the SDK does:
// application/soap+xml, an unquoted SoapAction and the security token header.
func curlSDK(t *testing.T, baseURL, action, securityToken, envelope string) soapResult {
	t.Helper()
	return curlHTTP(t, baseURL, envelope, "Content-Type: application/soap+xml", "SoapAction: "+action,
		"X-Security-Token: "+securityToken)
}

// readExample returns a file of examples/ with its {{PLACEHOLDERS}}
// replaced; a placeholder left over fails the test.
func readExample(t *testing.T, rel string, values map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for k, v := range values {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	if i := strings.Index(s, "{{"); i >= 0 {
		t.Fatalf("examples/%s: placeholder left after substitution: %.40s", rel, s[i:])
	}
	return s
}

// requireCommand skips (or under CI fails) when a program is missing.
func requireCommand(t *testing.T, name, install string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		skipOrFail(t, "%s not found; install: %s", name, install)
	}
}
