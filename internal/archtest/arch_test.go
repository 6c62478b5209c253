// Package archtest enforces the project's import rules with go list, so the
// layering of house-style.md stays true: cmd → server/web → session/privacy
// → store; schemas is a leaf everyone reads; only the store imports gorm.
package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/campaign-privacy/campaign-privacy"

// allowed lists, for each package, the project packages it may depend on
// (directly or not). A package missing here may import nothing of ours.
var allowed = map[string][]string{
	"schemas":           {},
	"internal/apperr":   {},
	"internal/canon":    {},
	"internal/argon2":   {},
	"wsdl":              {"schemas"},
	"internal/store":    {"internal/canon", "internal/apperr", "schemas"},
	"session":           {"internal/argon2", "internal/canon", "internal/store", "internal/apperr", "schemas", "internal/metrics", "internal/netzone"},
	"privacy":           {"internal/argon2", "internal/canon", "session", "internal/store", "internal/apperr", "schemas", "internal/metrics", "internal/netzone"},
	"internal/persist":  {"internal/canon", "schemas", "internal/store", "internal/apperr"},
	"internal/querydef": {"internal/canon", "schemas", "internal/store", "internal/apperr"},
	"server":            {"internal/argon2", "internal/canon", "wsdl", "schemas", "session", "privacy", "internal/persist", "internal/querydef", "internal/store", "internal/apperr", "internal/siteurl", "internal/netzone", "internal/xmlread", "internal/metrics"},
	"web":               {"internal/argon2", "internal/canon", "session", "privacy", "schemas", "internal/store", "internal/apperr", "internal/siteurl", "internal/netzone", "internal/metrics"},
	"internal/netzone":  {},
	"internal/imstest":  {},
	"internal/xmlread":  {"internal/apperr"},
	// metrics sits below every package it instruments; it knows none of
	// them (the request counts come in through a function).
	"internal/metrics": {"internal/netzone"},
	// The wiring sits beside cmd, above everything it wires: the command
	// and the tests' servertest build the service only through app.Open,
	// and no package of the service may reach up to either.
	"internal/app":        service,
	"internal/servertest": append([]string{"internal/app", "internal/storetest"}, service...),
	"internal/storetest":  {"internal/apperr", "internal/store", "schemas", "internal/canon"},
}

// service is every package of the running service: what internal/app
// wires together.
var service = []string{"internal/argon2", "internal/canon", "internal/apperr", "schemas", "wsdl", "internal/store", "session", "privacy",
	"internal/persist", "internal/querydef", "internal/siteurl", "internal/netzone", "internal/xmlread", "server", "web",
	"internal/metrics"}

// direct lists project packages a package must not import itself, even
// when it may depend on them through another: the server and the web front
// reach the database only through session and privacy.
var direct = map[string][]string{
	"server":               {"internal/store"},
	"web":                  {"internal/store"},
	"internal/servertest":  {"internal/persist", "internal/querydef"}, // app wires those
	"cmd/campaign-privacy": {"internal/persist", "internal/querydef", "internal/servertest", "internal/storetest"},
}

func goList(t *testing.T, format string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", format, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	res := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ":")
		res[strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")] = strings.Fields(deps)
	}
	return res
}

func TestImportDirection(t *testing.T) {
	deps := goList(t, `{{.ImportPath}}:{{join .Deps " "}}`)
	for pkg, ok := range allowed {
		okSet := map[string]bool{}
		for _, p := range ok {
			okSet[p] = true
		}
		d, found := deps[pkg]
		if !found {
			t.Errorf("package %s not found", pkg)
			continue
		}
		for _, dep := range d {
			if !strings.HasPrefix(dep, module+"/") {
				continue
			}
			rel := strings.TrimPrefix(dep, module+"/")
			if !okSet[rel] {
				t.Errorf("%s depends on %s, which the layering forbids", pkg, rel)
			}
		}
	}
	imports := goList(t, `{{.ImportPath}}:{{join .Imports " "}}`)
	for pkg, banned := range direct {
		for _, imp := range imports[pkg] {
			for _, b := range banned {
				if imp == module+"/"+b {
					t.Errorf("%s imports %s directly", pkg, b)
				}
			}
		}
	}
}

func TestOnlyStoreImportsGorm(t *testing.T) {
	imports := goList(t, `{{.ImportPath}}:{{join .Imports " "}}`)
	for pkg, imps := range imports {
		for _, imp := range imps {
			if strings.HasPrefix(imp, "gorm.io/") && pkg != "internal/store" {
				t.Errorf("%s imports %s: only internal/store may use gorm", pkg, imp)
			}
		}
	}
}

func TestNoPackageReadsTheEnvironment(t *testing.T) {
	files := goList(t, `{{.ImportPath}}:{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}} {{end}}`)
	for pkg, paths := range files {
		if pkg == "cmd/campaign-privacy" || pkg == "internal/storetest" || strings.HasPrefix(pkg, "bench/") || len(paths) == 0 {
			continue
		}
		out, _ := exec.Command("grep", append([]string{"-l", `os\.Getenv\|os\.LookupEnv\|os\.Environ`}, paths...)...).Output()
		if hits := strings.TrimSpace(string(out)); hits != "" {
			t.Errorf("%s reads the environment (settings belong in cmd): %s", pkg, hits)
		}
	}
}

// TestNoStoreTypeAbovePrivacy: the store's rows stop at session and
// privacy. Their exported API (and so the console's templates, the SOAP
// server and the command line) uses the domain types — privacy.Request,
// privacy.Namespace, session.Operator — never a type of internal/store;
// only the constructors take the store itself.
func TestNoStoreTypeAbovePrivacy(t *testing.T) {
	files := goList(t, `{{.ImportPath}}:{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}} {{end}}`)
	for _, pkg := range []string{"session", "privacy"} {
		fset := token.NewFileSet()
		for _, path := range files[pkg] {
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			store := "store"
			for _, imp := range f.Imports {
				if strings.Trim(imp.Path.Value, `"`) == module+"/internal/store" && imp.Name != nil {
					store = imp.Name.Name
				}
			}
			report := func(name string, n ast.Node) {
				ast.Inspect(n, func(n ast.Node) bool {
					if sel, ok := n.(*ast.SelectorExpr); ok {
						if x, ok := sel.X.(*ast.Ident); ok && x.Name == store {
							if sel.Sel.Name != "DB" || name != "New" {
								t.Errorf("%s: %s.%s exposes store.%s", fset.Position(sel.Pos()), pkg, name, sel.Sel.Name)
							}
						}
					}
					return true
				})
			}
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if !d.Name.IsExported() || (d.Recv != nil && !exportedRecv(d.Recv)) {
						continue
					}
					report(d.Name.Name, d.Type)
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							if s.Name.IsExported() {
								report(s.Name.Name, exportedPart(s.Type))
							}
						case *ast.ValueSpec:
							for _, n := range s.Names {
								if n.IsExported() {
									report(n.Name, s)
								}
							}
						}
					}
				}
			}
		}
	}
}

// exportedRecv reports whether a method's receiver type is exported.
func exportedRecv(recv *ast.FieldList) bool {
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}

// exportedPart is a type with the unexported fields of a struct left out.
func exportedPart(typ ast.Expr) ast.Node {
	st, ok := typ.(*ast.StructType)
	if !ok {
		return typ
	}
	out := &ast.FieldList{}
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 || f.Names[0].IsExported() {
			out.List = append(out.List, f)
		}
	}
	return out
}
