// Package client holds typed Go SOAP clients of this service, generated with
// gowsdl (github.com/hooklift/gowsdl v0.5.0) from the WSDLs the server
// itself renders from its schema registry (package wsdl):
//
//   - xtksession: xtk:session (Logon, Logoff, GetUserInfo, …)
//   - nmsprivacyrequest: nms:privacyRequest
//   - xtkpersist: the xtk:persist interface (answers in urn:wpp:default)
//   - nmsrecipient: nms:recipient, a data schema (xtk:persist's methods)
//
// The WSDLs are checked in under testdata/ and the generated code beside
// them; both are produced, never edited. After changing a schema or the
// WSDL renderer, regenerate everything from the module root with
//
//	go generate ./wsdl/client
//
// which first dumps the WSDLs (internal/dumpwsdl), then generates the
// clients from them (internal/gen: header, types and operations only, no
// server stub, gofmt'ed). The tests in this folder run the generated
// xtksession client against the real in-process server.
package client

//go:generate go run ./internal/dumpwsdl xtk:session=testdata/xtk_session.wsdl nms:privacyRequest=testdata/nms_privacyRequest.wsdl xtk:persist=testdata/xtk_persist.wsdl nms:recipient=testdata/nms_recipient.wsdl
//go:generate go run ./internal/gen -wsdl testdata/xtk_session.wsdl -pkg xtksession -o xtksession/xtksession.go
//go:generate go run ./internal/gen -wsdl testdata/nms_privacyRequest.wsdl -pkg nmsprivacyrequest -o nmsprivacyrequest/nmsprivacyrequest.go
//go:generate go run ./internal/gen -wsdl testdata/xtk_persist.wsdl -pkg xtkpersist -o xtkpersist/xtkpersist.go
//go:generate go run ./internal/gen -wsdl testdata/nms_recipient.wsdl -pkg nmsrecipient -o nmsrecipient/nmsrecipient.go
