package interop_test

import "testing"

// TestWorkflowAPI drives xtk:workflow with acc-js-sdk's NLWS.xtkWorkflow
// (start, startWithParameters, postEvent, stop) against the real binary,
// reads the workflows' state with queryDef, and checks that an operator
// without admin is refused.
func TestWorkflowAPI(t *testing.T) {
	client := clientScript{name: "acc-js-sdk-workflow", command: []string{"node", "js/acc-js-sdk-workflow.js"}, requires: nodeModule("@adobe/acc-js-sdk")}
	for _, st := range stores() {
		t.Run(st.name, func(t *testing.T) {
			st.require(t)
			requireRuntime(t, client)
			in := newInstance(t, st.env(t)...)
			ana := in.createOperator(t, "ana", "privacyRight")
			in.start(t)
			runScript(t, client, in.baseURL, in.admin, "CP_PRIVACY_LOGIN="+ana.login, "CP_PRIVACY_PASSWORD="+ana.password)
		})
	}
}
