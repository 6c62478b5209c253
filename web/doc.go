// Package web will serve what people open in a browser: the JSSP-style
// download /nms/gdpr.jssp?id=N (logged-on operator, privacyRight, caller
// inside CP_ALLOWED_SUBNETS), the security zones, and the privacy console.
//
// It is empty in this release: it builds on the privacy engine. The package
// exists now so that the import rules of the project (see internal/archtest)
// hold from the start.
package web
