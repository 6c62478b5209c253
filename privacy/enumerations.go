package privacy

import (
	"fmt"
	"strconv"

	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// The names, values and labels of the request type, regulation and status
// are declared once, in the enumerations of schemas/xml/nms_gdprRequest.xml.
// Go keeps only the constants it switches on (status.go); the names and
// labels shown on the console, in logs and in the schema come from the
// embedded schema, read once when the package starts. A constant whose
// name or value the schema does not declare stops the process at start:
// the two can never disagree silently.

// enumEntry is one value of an enumeration: ACC's internal name and label.
type enumEntry struct{ name, label string }

// enumeration maps a stored value to its entry.
type enumeration map[int]enumEntry

var (
	statusEnum     enumeration
	typeEnum       enumeration
	regulationEnum enumeration
)

func init() {
	var err error
	statusEnum, typeEnum, regulationEnum, err = readEnumerations()
	if err != nil {
		panic("privacy: " + err.Error())
	}
}

// goNames are the constants of status.go with the names the schema must
// give their values.
var goNames = map[string]map[int]string{
	"status": {
		int(StatusNew): "new", int(StatusProcessing): "processing", int(StatusRetryPending): "retryPending",
		int(StatusRetryInProgress): "retryInProgress", int(StatusConfirmDeletePending): "confirmDeletePending",
		int(StatusDeletePending): "deletePending", int(StatusDeleteInProgress): "deleteInProgress",
		int(StatusComplete): "complete", int(StatusError): "error", int(StatusErrorDataNotFound): "errorDataNotFound",
	},
	"type":       {TypeAccess: "access", TypeDelete: "delete"},
	"regulation": {RegulationGDPR: "gdpr", RegulationCCPA: "ccpa", RegulationPDPA: "pdpa", RegulationLGPD: "lgpd"},
}

// readEnumerations reads the three enumerations of nms:gdprRequest from
// the embedded schemas and checks every Go constant against them.
func readEnumerations() (status, typ, regulation enumeration, err error) {
	reg, err := schemas.Default()
	if err != nil {
		return nil, nil, nil, err
	}
	sc, ok := reg.Schema("nms:gdprRequest")
	if !ok || sc.Data == nil {
		return nil, nil, nil, fmt.Errorf("the schema nms:gdprRequest is missing")
	}
	out := map[string]enumeration{}
	for name, want := range goNames {
		e := sc.Data.Enumerations[name]
		if e == nil {
			return nil, nil, nil, fmt.Errorf("nms:gdprRequest declares no enumeration %q", name)
		}
		m := enumeration{}
		for _, v := range e.Values {
			n, err := strconv.Atoi(v.Value)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("enumeration %s: value %q of %q is not a number", name, v.Value, v.Name)
			}
			m[n] = enumEntry{name: v.Name, label: v.Label}
		}
		for value, goName := range want {
			if m[value].name != goName {
				return nil, nil, nil, fmt.Errorf("enumeration %s: the schema gives value %d the name %q, the code %q", name, value, m[value].name, goName)
			}
		}
		if len(m) != len(want) {
			return nil, nil, nil, fmt.Errorf("enumeration %s: the schema declares %d values, the code knows %d", name, len(m), len(want))
		}
		out[name] = m
	}
	return out["status"], out["type"], out["regulation"], nil
}
