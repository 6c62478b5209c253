package interop_test

import (
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/imstest"
)

// TestBearerTokenLogon drives xtk:session#BearerTokenLogon with
// acc-js-sdk's ConnectionParameters.ofBearerToken against the real binary,
// whose CP_IMS_JWKS is the key set of a key this test generates.
func TestBearerTokenLogon(t *testing.T) {
	client := clientScript{name: "acc-js-sdk-bearer", command: []string{"node", "js/acc-js-sdk-bearer.js"}, requires: nodeModule("@adobe/acc-js-sdk")}
	idp := imstest.New(t)
	for _, st := range stores() {
		t.Run(st.name, func(t *testing.T) {
			st.require(t)
			requireRuntime(t, client)
			in := newInstance(t, append(st.env(t), "CP_IMS_JWKS="+idp.JWKSFile, "CP_IMS_ISSUER="+imstest.Issuer,
				"CP_IMS_AUDIENCE="+imstest.Audience)...)
			tech := in.createOperator(t, "techacct", "privacyRight")
			in.start(t)
			now := time.Now()
			runScript(t, client, in.baseURL, tech,
				"CP_BEARER_TOKEN="+idp.Token(t, "techacct", now, time.Hour),
				"CP_BEARER_EXPIRED="+idp.Token(t, "techacct", now.Add(-3*time.Hour), time.Hour))
		})
	}
	// Adobe IMS's own form of access token (no iss, aud nor exp), the
	// technical account named by user_id.
	t.Run("ims-form", func(t *testing.T) {
		st := stores()[0]
		st.require(t)
		requireRuntime(t, client)
		in := newInstance(t, append(st.env(t), "CP_IMS_JWKS="+idp.JWKSFile, "CP_IMS_ISSUER="+imstest.Issuer,
			"CP_IMS_AUDIENCE="+imstest.Audience, "CP_IMS_OPERATOR_CLAIM=user_id")...)
		tech := in.createOperator(t, "techacct", "privacyRight")
		in.start(t)
		now := time.Now()
		runScript(t, client, in.baseURL, tech,
			"CP_BEARER_TOKEN="+idp.IMSToken(t, "techacct", now, time.Hour),
			"CP_BEARER_EXPIRED="+idp.IMSToken(t, "techacct", now, -time.Hour))
	})
}
