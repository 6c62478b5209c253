// Package interop_test drives the real campaign-privacy binary with real
// SOAP clients (acc-js-sdk, node-soap, zeep, PHP SoapClient, SOAP::Lite,
// curl), on SQLite and on PostgreSQL: logon/logoff (TestFoundation), the
// privacy-request API (TestPrivacyRequestAPI) and the user material of
// examples/ (TestExamples, TestSoapUIProject).
//
// Run from the repository root:
//
//	(cd interop/js && npm ci)
//	cd interop && go test -v -count=1 ./...
//
// A missing client runtime or an unreachable PostgreSQL skips the matching
// tests with an install instruction, unless CI is set: then they fail (curl
// and bash are needed for the curl client and the examples/soap session).
// CP_TEST_POSTGRES_URL selects the database (make test sets it to a
// throwaway cluster, scripts/with-test-postgres); every server gets a
// schema of its own there, dropped afterwards. CP_TRACE=1 makes the scripts
// print the SOAP traffic.
package interop_test

import "testing"

// clientScript is one real SOAP client, run as a script taking
// <base-url> <login> <password> <right>; it prints one line per check and
// exits non-zero when a check fails.
type clientScript struct {
	name     string
	command  []string // program and script, relative to interop/
	requires runtimeCheck
}

var clients = []clientScript{
	{
		name:     "acc-js-sdk",
		command:  []string{"node", "js/acc-js-sdk.js"},
		requires: nodeModule("@adobe/acc-js-sdk"),
	},
	{
		name:     "node-soap",
		command:  []string{"node", "js/node-soap.js"},
		requires: nodeModule("soap"),
	},
	{
		// Debian's python3-zeep lives in /usr/bin/python3, not in a pyenv
		// or virtualenv python3 that may come first on PATH.
		name:     "zeep",
		command:  []string{"/usr/bin/python3", "python/zeep_client.py"},
		requires: probeCommand("apt-get install python3-zeep", "/usr/bin/python3", "-c", "import zeep"),
	},
	{
		name:    "php-soapclient",
		command: []string{"/usr/bin/php", "php/soapclient.php"},
		requires: probeCommand("apt-get install php-cli php-soap",
			"/usr/bin/php", "-r", `exit(class_exists("SoapClient") ? 0 : 1);`),
	},
	{
		name:     "soap-lite",
		command:  []string{"perl", "perl/soaplite.pl"},
		requires: probeCommand("apt-get install libsoap-lite-perl", "perl", "-MSOAP::Lite", "-e", "1"),
	},
}

// store is a database backend. require skips (or under CI fails) when the
// backend is unavailable; env returns the extra settings of one server's
// instance (none for the SQLite default).
type store struct {
	name    string
	require func(t *testing.T)
	env     func(t *testing.T) []string
}

func stores() []store {
	var pgURL string
	return []store{
		{
			name:    "sqlite",
			require: func(*testing.T) {},
			env:     func(*testing.T) []string { return nil },
		},
		{
			name:    "postgres",
			require: func(t *testing.T) { pgURL = requirePostgres(t) },
			env: func(t *testing.T) []string {
				return []string{"CP_DATABASE_URL=" + postgresSchema(t, pgURL)}
			},
		},
	}
}

// TestFoundation covers the foundation milestone: Logon, Logoff (the old
// session then refused with XSV-350008, probed with GetUserInfo) and the
// XSV-350012 fault on a bad password, plus loading the xtk:session WSDL for
// the WSDL-driven clients. Each client gets a fresh server (so failed
// logons of one client never count towards another's lockout) with three
// operators: the bootstrap admin, "ana" created with the CLI before the
// server starts and "ben" created with the CLI while it runs.
func TestFoundation(t *testing.T) {
	for _, st := range stores() {
		t.Run(st.name, func(t *testing.T) {
			st.require(t)
			for _, c := range clients {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel() // a server of its own per client
					requireRuntime(t, c)
					in := newInstance(t, st.env(t)...)
					ana := in.createOperator(t, "ana", "privacyRight")
					in.start(t)
					ben := in.createOperator(t, "ben", "privacyRight")

					for _, op := range []operator{in.admin, ana, ben} {
						t.Run(op.login, func(t *testing.T) {
							runScript(t, c, in.baseURL, op)
						})
					}
				})
			}
		})
	}
}
