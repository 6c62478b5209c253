// Command gen generates a typed SOAP client from a WSDL file with the
// gowsdl library (github.com/hooklift/gowsdl v0.5.0).
//
// It keeps only the header, types and operations sections gowsdl produces
// (never a server stub), fails when any of them is empty (gowsdl's Start
// logs template errors instead of returning them, and leaves the section
// empty), drops a type declared twice alike (a WSDL whose schemas each
// declare a type of the same name and shape, such as Element in
// urn:xtk:persist and urn:wpp:default), and gofmt's the result.
//
// Usage: gen -wsdl file.wsdl -pkg name -o dir/file.go
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"

	"github.com/hooklift/gowsdl"
)

// sections are the parts of gowsdl's output that are written, in order.
var sections = []string{"header", "types", "operations"}

func main() {
	wsdlFile := flag.String("wsdl", "", "WSDL file to generate from (a local file, never a URL)")
	pkg := flag.String("pkg", "", "Go package name of the generated code")
	out := flag.String("o", "", "Go file to write")
	flag.Parse()
	if err := run(*wsdlFile, *pkg, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(wsdlFile, pkg, out string) error {
	if wsdlFile == "" || pkg == "" || out == "" || flag.NArg() != 0 {
		return errors.New("usage: gen -wsdl file.wsdl -pkg name -o dir/file.go")
	}
	if _, err := os.Stat(wsdlFile); err != nil {
		return fmt.Errorf("WSDL must be a local file: %w", err)
	}
	g, err := gowsdl.NewGoWSDL(wsdlFile, pkg, false, true)
	if err != nil {
		return fmt.Errorf("%s: %w", wsdlFile, err)
	}
	code, err := g.Start()
	if err != nil {
		return fmt.Errorf("%s: %w", wsdlFile, err)
	}
	var b bytes.Buffer
	for _, name := range sections {
		if len(bytes.TrimSpace(code[name])) == 0 {
			return fmt.Errorf("%s: gowsdl generated an empty %s section (see its log above)", wsdlFile, name)
		}
		b.Write(code[name])
	}
	src, err := dedupeTypes(b.Bytes())
	if err != nil {
		return fmt.Errorf("%s: %w", wsdlFile, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, src, 0o644)
}

// dedupeTypes parses the generated code, removes a type declaration that
// repeats an earlier one of the same name and the same definition (a
// different definition is an error), and formats the result.
func dedupeTypes(code []byte) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", code, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("generated code does not parse: %w", err)
	}
	seen := map[string]string{}
	var decls []ast.Decl
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.TYPE || len(g.Specs) != 1 {
			decls = append(decls, d)
			continue
		}
		ts := g.Specs[0].(*ast.TypeSpec)
		var def bytes.Buffer
		if err := format.Node(&def, fset, ts.Type); err != nil {
			return nil, err
		}
		if prev, dup := seen[ts.Name.Name]; dup {
			if prev != def.String() {
				return nil, fmt.Errorf("type %s is generated twice with different definitions", ts.Name.Name)
			}
			continue
		}
		seen[ts.Name.Name] = def.String()
		decls = append(decls, d)
	}
	f.Decls = decls
	var out bytes.Buffer
	if err := format.Node(&out, fset, f); err != nil {
		return nil, err
	}
	return format.Source(out.Bytes())
}
