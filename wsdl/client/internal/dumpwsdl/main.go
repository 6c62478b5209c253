// Command dumpwsdl writes the WSDLs the running server renders for
// xtk:session and nms:privacyRequest, from the embedded schema registry,
// so that the generated clients in wsdl/client are built from exactly
// what the server serves.
//
// Usage: dumpwsdl <xtk_session.wsdl> <nms_privacyRequest.wsdl>
package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/wsdl"
)

// location is the soap:address written into the dumped WSDLs; clients
// built from them take the real URL at run time (soap.NewClient).
const location = "http://localhost:8080/nl/jsp/soaprouter.jsp"

// ids are the schemas dumped, in the order of the command-line files.
var ids = []string{"xtk:session", "nms:privacyRequest"}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dumpwsdl:", err)
		os.Exit(1)
	}
}

func run(files []string) error {
	if len(files) != len(ids) {
		return fmt.Errorf("usage: dumpwsdl <xtk_session.wsdl> <nms_privacyRequest.wsdl>")
	}
	registry, err := schemas.Default()
	if err != nil {
		return fmt.Errorf("load schemas: %w", err)
	}
	for i, id := range ids {
		s, ok := registry.Schema(id)
		if !ok {
			return fmt.Errorf("schema %s is not in the registry", id)
		}
		var b bytes.Buffer
		if err := wsdl.Render(&b, s, location); err != nil {
			return fmt.Errorf("render %s: %w", id, err)
		}
		if err := os.WriteFile(files[i], b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
