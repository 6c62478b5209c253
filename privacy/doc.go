// Package privacy will own what a privacy request is and what happens to it:
// namespaces, CreateRequestByName and ConfirmDeletePending, the status
// machine, the three technical workflows (collectPrivacyRequests,
// deletePrivacyRequestsData, cleanupPrivacyRequests), the link traversal
// over the recipient data model, the export document and its retention.
//
// It is empty in this release: the foundation (SOAP router, sessions,
// stores) comes first, and the request API builds on it. The package exists
// now so that the import rules of the project (see internal/archtest) hold
// from the start.
package privacy
