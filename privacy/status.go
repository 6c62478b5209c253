package privacy

// Status is the status of a privacy request. The values are those of the
// "status" enumeration of nms:gdprRequest, which is the one definition:
// TestEnumerationsMatchSchema keeps these names in step with it. ACC does
// not publish its numbers; these are ours.
type Status int

// Request statuses, in the order of the life cycle.
const (
	StatusNew                  Status = 0
	StatusProcessing           Status = 1
	StatusRetryPending         Status = 2
	StatusRetryInProgress      Status = 3
	StatusConfirmDeletePending Status = 4
	StatusDeletePending        Status = 5
	StatusDeleteInProgress     Status = 6
	StatusComplete             Status = 7
	StatusError                Status = 8
	StatusErrorDataNotFound    Status = 9
)

// statusNames are ACC's internal names, as the schema's enumeration spells them.
var statusNames = map[Status]string{
	StatusNew: "new", StatusProcessing: "processing", StatusRetryPending: "retryPending",
	StatusRetryInProgress: "retryInProgress", StatusConfirmDeletePending: "confirmDeletePending",
	StatusDeletePending: "deletePending", StatusDeleteInProgress: "deleteInProgress",
	StatusComplete: "complete", StatusError: "error", StatusErrorDataNotFound: "errorDataNotFound",
}

// String returns the ACC internal name.
func (s Status) String() string { return statusNames[s] }

// Active reports whether the request is still being worked on; an identical
// request created meanwhile gets this one's id.
func (s Status) Active() bool { return s < StatusComplete }

// Request types (PRIVACY_REQUEST_TYPE_ACCESS / _DELETE in nms:gdpr.js).
const (
	TypeAccess = 1
	TypeDelete = 2
)

// Regulations (enumeration "regulation" of nms:gdprRequest).
const (
	RegulationGDPR = 1
	RegulationCCPA = 2
	RegulationPDPA = 3
	RegulationLGPD = 4
)

var typeNames = map[int]string{TypeAccess: "access", TypeDelete: "delete"}

var regulationNames = map[int]string{RegulationGDPR: "gdpr", RegulationCCPA: "ccpa", RegulationPDPA: "pdpa", RegulationLGPD: "lgpd"}
