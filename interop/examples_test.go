package interop_test

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The examples/ folder is user material; these tests keep it working:
// the SoapUI project (well-formed, its envelopes those of examples/soap, its
// test case run step by step against the server), the shell session of
// examples/soap/README.md and examples/acc-js-sdk/privacy-request.js.

const soapUIProjectFile = "soapui/campaign-privacy-soapui-project.xml"

// soapUIProject is the part of a soapui-project file these tests read.
type soapUIProject struct {
	XMLName    xml.Name          `xml:"http://eviware.com/soapui/config soapui-project"`
	Interfaces []soapUIInterface `xml:"interface"`
	TestSuites []struct {
		Name      string `xml:"name,attr"`
		TestCases []struct {
			Name  string           `xml:"name,attr"`
			Steps []soapUITestStep `xml:"testStep"`
		} `xml:"testCase"`
	} `xml:"testSuite"`
	Properties []struct {
		Name  string `xml:"name"`
		Value string `xml:"value"`
	} `xml:"properties>property"`
}

type soapUIInterface struct {
	Name        string   `xml:"name,attr"`
	BindingName string   `xml:"bindingName,attr"`
	Definition  string   `xml:"definition,attr"`
	SoapVersion string   `xml:"soapVersion,attr"`
	Endpoints   []string `xml:"endpoints>endpoint"`
	Operations  []struct {
		Name   string `xml:"name,attr"`
		Action string `xml:"action,attr"`
		Calls  []struct {
			Name     string `xml:"name,attr"`
			Endpoint string `xml:"endpoint"`
			Request  string `xml:"request"`
		} `xml:"call"`
	} `xml:"operation"`
}

type soapUITestStep struct {
	Type   string `xml:"type,attr"`
	Name   string `xml:"name,attr"`
	Config struct {
		Interface string `xml:"interface"`
		Operation string `xml:"operation"`
		Request   struct {
			Endpoint   string `xml:"endpoint"`
			Body       string `xml:"request"`
			Assertions []struct {
				Type  string `xml:"type,attr"`
				Token string `xml:"configuration>token"`
				Regex string `xml:"configuration>useRegEx"`
			} `xml:"assertion"`
		} `xml:"request"`
		Transfers []struct {
			SourceType string `xml:"sourceType"`
			SourceStep string `xml:"sourceStep"`
			SourcePath string `xml:"sourcePath"`
			TargetType string `xml:"targetType"`
			TargetStep string `xml:"targetStep"`
		} `xml:"transfers"`
	} `xml:"config"`
}

// soapUIPlaceholders maps the project's property expansions to the
// placeholders of the examples/soap files.
var soapUIPlaceholders = strings.NewReplacer(
	"${#Project#login}", "{{LOGIN}}",
	"${#Project#password}", "{{PASSWORD}}",
	"${#Project#sessionToken}", "{{SESSION_TOKEN}}",
	"${#Project#requestId}", "{{REQUEST_ID}}",
	"${#Project#bearerToken}", "{{BEARER_TOKEN}}",
)

// soapUIDefaultEndpoint is where the project points; tests swap in their server.
const soapUIDefaultEndpoint = "http://localhost:8080"

func loadSoapUIProject(t *testing.T) *soapUIProject {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, soapUIProjectFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseXML(string(data)); err != nil {
		t.Fatalf("examples/%s is not well-formed XML: %v", soapUIProjectFile, err)
	}
	var p soapUIProject
	if err := xml.Unmarshal(data, &p); err != nil {
		t.Fatalf("examples/%s: %v", soapUIProjectFile, err)
	}
	return &p
}

func normalizeEnvelope(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
}

// TestSoapUIProject checks the SoapUI project without a server: it is
// well-formed, declares the WSDL interfaces of xtk:session,
// nms:privacyRequest, nms:gdprRequest and xtk:queryDef on the local
// server, and each request is, property expansions aside, one of the
// envelopes of examples/soap (which the curl tests send), and every one of
// those envelopes is in the project.
func TestSoapUIProject(t *testing.T) {
	p := loadSoapUIProject(t)

	examples := map[string]string{} // normalized envelope -> file
	files, err := filepath.Glob(filepath.Join(examplesDir, "soap", "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/soap/*.xml: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseXML(string(data)); err != nil {
			t.Errorf("%s is not well-formed XML: %v", f, err)
		}
		examples[normalizeEnvelope(string(data))] = filepath.Base(f)
	}

	wantInterfaces := map[string]bool{"xtk:session": true, "nms:privacyRequest": true, "nms:gdprRequest": true, "xtk:queryDef": true, "xtk:workflow": true}
	used := map[string]bool{}
	calls := map[string]string{} // interface/operation -> request
	for _, in := range p.Interfaces {
		schema := strings.TrimPrefix(in.Definition, soapUIDefaultEndpoint+"/nl/jsp/schemawsdl.jsp?schema=")
		if !wantInterfaces[schema] {
			t.Errorf("interface %s: unexpected definition %q", in.Name, in.Definition)
			continue
		}
		delete(wantInterfaces, schema)
		if want := "{urn:" + schema + "}" + in.Name; in.BindingName != want {
			t.Errorf("interface %s: bindingName %q, want %q", in.Name, in.BindingName, want)
		}
		if in.SoapVersion != "1_1" {
			t.Errorf("interface %s: soapVersion %q, want 1_1", in.Name, in.SoapVersion)
		}
		for _, op := range in.Operations {
			if want := schema + "#" + op.Name; op.Action != want {
				t.Errorf("%s/%s: action %q, want %q", in.Name, op.Name, op.Action, want)
			}
			for _, c := range op.Calls {
				if c.Endpoint != soapUIDefaultEndpoint+"/nl/jsp/soaprouter.jsp" {
					t.Errorf("%s/%s: endpoint %q", in.Name, c.Name, c.Endpoint)
				}
				env := normalizeEnvelope(soapUIPlaceholders.Replace(c.Request))
				file, ok := examples[env]
				if !ok {
					t.Errorf("%s/%s: the request is none of examples/soap/*.xml:\n%s", in.Name, c.Name, env)
				}
				used[file] = true
				calls[in.Name+"/"+op.Name] = c.Request
			}
		}
	}
	for schema := range wantInterfaces {
		t.Errorf("no interface for %s", schema)
	}
	for _, file := range examples {
		if !used[file] {
			t.Errorf("examples/soap/%s is not a request of the SoapUI project", file)
		}
	}

	if len(p.TestSuites) == 0 || len(p.TestSuites[0].TestCases) == 0 {
		t.Fatal("no test case in the SoapUI project")
	}
	for _, tc := range p.TestSuites[0].TestCases {
		for _, step := range tc.Steps {
			checkStepCall(t, step, calls)
		}
	}
}

// checkStepCall checks that a request step sends its interface's call.
func checkStepCall(t *testing.T, step soapUITestStep, calls map[string]string) {
	t.Helper()
	if step.Type != "request" {
		return
	}
	key := step.Config.Interface + "/" + step.Config.Operation
	call, ok := calls[key]
	if !ok {
		t.Errorf("test step %s: no call %s", step.Name, key)
	} else if normalizeEnvelope(call) != normalizeEnvelope(step.Config.Request.Body) {
		t.Errorf("test step %s: request differs from the call of %s", step.Name, key)
	}
}

// TestExamples runs the examples against a server started with the example
// custom schemas, on SQLite and PostgreSQL.
func TestExamples(t *testing.T) {
	for _, st := range stores() {
		t.Run(st.name, func(t *testing.T) {
			st.require(t)
			in, pia, _ := privacyInstance(t, append(st.env(t), "CP_SCHEMAS_DIR="+exampleSchemas(t))...)

			t.Run("soapui-test-case", func(t *testing.T) {
				runSoapUITestCase(t, in.baseURL, pia, 0)
			})
			t.Run("soapui-workflow-test-case", func(t *testing.T) {
				runSoapUITestCase(t, in.baseURL, in.admin, 1)
			})
			t.Run("soap-readme", func(t *testing.T) {
				requireCommand(t, "curl", "apt-get install curl")
				requireCommand(t, "bash", "apt-get install bash")
				runSoapReadme(t, in.baseURL, pia)
			})
			t.Run("acc-js-sdk", func(t *testing.T) {
				c := withScript("acc-js-sdk", "")
				requireRuntime(t, c)
				runJSExample(t, in.baseURL, pia)
			})
		})
	}
}

var projectProperty = regexp.MustCompile(`\$\{#Project#(\w+)\}`)

// runSoapUITestCase plays one of the SoapUI project's test cases the way
// SoapUI does: request steps with the project properties expanded (posted
// with text/xml and the operation's quoted SOAPAction) and their
// assertions, property transfers (XPath //*:name) into project properties.
// It also checks each interface's binding and operations against the WSDL
// the server serves.
func runSoapUITestCase(t *testing.T, baseURL string, op operator, testCase int) {
	p := loadSoapUIProject(t)
	props := map[string]string{}
	for _, pr := range p.Properties {
		props[pr.Name] = pr.Value
	}
	props["login"], props["password"] = op.login, op.password

	actions := map[string]string{}
	for _, in := range p.Interfaces {
		wsdl := httpGet(t, strings.Replace(in.Definition, soapUIDefaultEndpoint, baseURL, 1))
		root, err := parseXML(wsdl)
		if err != nil {
			t.Fatalf("WSDL of %s: %v", in.Name, err)
		}
		binding := findBinding(root, in.Name)
		if binding == nil {
			t.Errorf("interface %s: the WSDL %s has no binding %s", in.Name, in.Definition, in.Name)
			continue
		}
		if want := "{" + root.attrs["targetNamespace"] + "}" + in.Name; in.BindingName != want {
			t.Errorf("interface %s: bindingName %q, the WSDL's is %q", in.Name, in.BindingName, want)
		}
		for _, o := range in.Operations {
			actions[in.Name+"/"+o.Name] = o.Action
			if got := wsdlSoapAction(binding, o.Name); got != o.Action {
				t.Errorf("%s/%s: action %q, the WSDL's soapAction is %q", in.Name, o.Name, o.Action, got)
			}
		}
	}

	responses := map[string]soapResult{}
	if testCase >= len(p.TestSuites[0].TestCases) {
		t.Fatalf("the SoapUI project has no test case %d", testCase)
	}
	for _, step := range p.TestSuites[0].TestCases[testCase].Steps {
		switch step.Type {
		case "request":
			req := step.Config.Request
			var missing []string
			body := projectProperty.ReplaceAllStringFunc(req.Body, func(m string) string {
				name := projectProperty.FindStringSubmatch(m)[1]
				v, ok := props[name]
				if !ok || v == "" {
					missing = append(missing, name)
				}
				return v
			})
			if len(missing) > 0 {
				t.Fatalf("step %s: project properties %v unset", step.Name, missing)
			}
			action := actions[step.Config.Interface+"/"+step.Config.Operation]
			url := strings.Replace(req.Endpoint, soapUIDefaultEndpoint, baseURL, 1)
			r := httpSOAP(t, url, action, body)
			responses[step.Name] = r
			for _, a := range req.Assertions {
				switch a.Type {
				case "SOAP Response":
					if r.root == nil || r.root.name != "Envelope" {
						t.Errorf("step %s: not a SOAP response:\n%s", step.Name, r)
					}
				case "SOAP Fault Assertion":
					if fs, d, isFault := r.fault(); isFault {
						t.Errorf("step %s: SOAP fault %q (%s)", step.Name, fs, d)
					}
				case "Simple Contains":
					if a.Regex == "true" || !strings.Contains(r.body, a.Token) {
						t.Errorf("step %s: response does not contain %q:\n%s", step.Name, a.Token, r)
					}
				default:
					t.Errorf("step %s: assertion type %q not checked by this test", step.Name, a.Type)
				}
			}
			t.Logf("step %s: HTTP %d", step.Name, r.status)
		case "transfer":
			for _, tr := range step.Config.Transfers {
				r, ok := responses[tr.SourceStep]
				if tr.SourceType != "Response" || tr.TargetStep != "#Project#" || !ok || !strings.HasPrefix(tr.SourcePath, "//*:") {
					t.Fatalf("step %s: unsupported transfer %+v", step.Name, tr)
				}
				v := r.value(strings.TrimPrefix(tr.SourcePath, "//*:"))
				if v == "" {
					t.Fatalf("step %s: %s finds nothing in the response of %s:\n%s", step.Name, tr.SourcePath, tr.SourceStep, r)
				}
				props[tr.TargetType] = v
			}
		default:
			t.Errorf("step %s: step type %q not run by this test", step.Name, step.Type)
		}
	}
	if testCase == 0 && props["requestId"] == "" {
		t.Error("the test case did not keep a request id")
	}
}

// findBinding returns the WSDL <binding name=name>.
func findBinding(defs *xmlNode, name string) *xmlNode {
	for _, c := range defs.children {
		if c.name == "binding" && c.attrs["name"] == name {
			return c
		}
	}
	return nil
}

// wsdlSoapAction returns the soapAction of operation op in a WSDL binding.
func wsdlSoapAction(binding *xmlNode, op string) string {
	for _, c := range binding.children {
		if c.name != "operation" || c.attrs["name"] != op {
			continue
		}
		for _, so := range c.children {
			if so.name == "operation" { // soap:operation
				return so.attrs["soapAction"]
			}
		}
	}
	return ""
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// httpSOAP posts an envelope as SoapUI does (SOAP 1.1: text/xml, quoted
// SOAPAction).
func httpSOAP(t *testing.T, url, action, envelope string) soapResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(envelope))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml;charset=UTF-8")
	req.Header.Set("SOAPAction", `"`+action+`"`)
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := soapResult{status: resp.StatusCode, body: string(body)}
	r.root, _ = parseXML(r.body)
	return r
}

var shellBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// runSoapReadme runs the ```sh blocks of examples/soap/README.md, in order,
// as one bash script from examples/soap.
func runSoapReadme(t *testing.T, baseURL string, op operator) {
	data, err := os.ReadFile(filepath.Join(examplesDir, "soap", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	for _, m := range shellBlock.FindAllStringSubmatch(string(data), -1) {
		script.WriteString(m[1])
	}
	if script.Len() == 0 {
		t.Fatal("examples/soap/README.md has no ```sh block")
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eo", "pipefail", "-c", script.String())
	cmd.Dir = filepath.Join(examplesDir, "soap")
	cmd.Env = append(os.Environ(), "CP_BASE_URL="+baseURL, "CP_LOGIN="+op.login, "CP_PASSWORD="+op.password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README.md shell session: %v\n%s", err, out)
	}
	t.Logf("README.md shell session:\n%s", out)
	m := regexp.MustCompile(`request id: (\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no \"request id: N\" in the output")
	}
	if want := `<gdprRequest id="` + m[1] + `"`; !strings.Contains(string(out), want) {
		t.Errorf("the status query printed no %s", want)
	}
	// The acc-js-sdk-style session: a CCPA (regulation 2) delete request.
	if !regexp.MustCompile(`<gdprRequest [^>]*\bregulation="2"`).MatchString(string(out)) {
		t.Errorf("the sdk-style status query printed no CCPA request")
	}
}

// runJSExample runs examples/acc-js-sdk/privacy-request.js with the SDK of
// interop/js/node_modules.
func runJSExample(t *testing.T, baseURL string, op operator) {
	nodePath, err := filepath.Abs(filepath.Join("js", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(examplesDir, "acc-js-sdk", "privacy-request.js"), "ana@example.com")
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath, "CP_BASE_URL="+baseURL, "CP_LOGIN="+op.login,
		"CP_PASSWORD="+op.password, "CP_REGULATION=2")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("privacy-request.js timed out\n%s", out)
	}
	if err != nil {
		t.Fatalf("privacy-request.js: %v\n%s", err, out)
	}
	t.Logf("privacy-request.js:\n%s", out)
	m := regexp.MustCompile(`request id: (\d+)\nstatus: 0 \(New\)\nfile: \S+/nms/gdpr\.jssp\?id=(\d+)\n`).FindStringSubmatch(string(out))
	if m == nil || m[1] != m[2] {
		t.Errorf("want \"request id: N\", \"status: 0 (New)\" and \"file: …/nms/gdpr.jssp?id=N\" in the output")
	}
}
