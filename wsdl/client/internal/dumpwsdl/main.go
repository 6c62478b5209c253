// Command dumpwsdl writes the WSDLs the running server renders for the
// schemas and interfaces it is given, from the embedded schema registry,
// so that the generated clients in wsdl/client are built from exactly
// what the server serves.
//
// Usage: dumpwsdl <schema id>=<file.wsdl>...
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/wsdl"
)

// location is the soap:address written into the dumped WSDLs; clients
// built from them take the real URL at run time (soap.NewClient).
const location = "http://localhost:8080/nl/jsp/soaprouter.jsp"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dumpwsdl:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: dumpwsdl <schema id>=<file.wsdl> [...]")
	}
	registry, err := schemas.Default()
	if err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	for _, arg := range args {
		id, file, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("%q: want <schema id>=<file.wsdl>", arg)
		}
		s, ok := registry.Schema(id)
		if !ok {
			s, ok = registry.Interface(id)
		}
		if !ok {
			return fmt.Errorf("schema %s is not in the registry", id)
		}
		var b bytes.Buffer
		if err := wsdl.Render(&b, s, location); err != nil {
			return fmt.Errorf("render %s: %w", id, err)
		}
		if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
