package privacy

import "github.com/campaign-privacy/campaign-privacy/internal/store"

// Status is the status of a privacy request. The values are those of the
// "status" enumeration of nms:gdprRequest, which is the one definition:
// enumerations.go reads names and labels from it and refuses to start if a
// constant below disagrees (TestEnumerationsMatchSchema). ACC does not
// publish its numbers; these are ours.
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

// String returns the ACC internal name.
func (s Status) String() string { return statusEnum[int(s)].name }

// Active reports whether the request is still being worked on; an identical
// request created meanwhile gets this one's id.
func (s Status) Active() bool { return s < StatusComplete }

// stored is the status as the store keeps it (one named type on each side
// of the store's API; this is the only place they meet).
func (s Status) stored() store.Status { return store.Status(s) }

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
