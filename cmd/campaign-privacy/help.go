package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one row of the command table: the top-level usage, each
// command's --help and `help COMMAND` come from it.
type command struct {
	Name, Args, Summary string
}

var commandTable = []command{
	{"serve", "", "run the HTTP server (the default command)"},
	{"migrate", "", "apply database migrations and exit"},
	{"operator create", "--login L --password-stdin [--right R]...", "create an operator; its password is the first line of standard input"},
	{"operator list", "", "list the operators with their rights and state"},
	{"operator disable", "--login L", "disable an operator; its sessions are revoked at once"},
	{"operator unlock", "--login L", "clear an operator's logon lock-out"},
	{"operator password", "--login L --password-stdin", "set an operator's password from standard input; its sessions are revoked"},
	{"operator rights", "--login L [--right R]...", "set an operator's named rights (no --right: none)"},
	{"namespace create", "--name N --label L --key @field [--schema nms:recipient] [--aec-id N] [--match exact|email|phone] [--region US]", "create a namespace"},
	{"namespace update", "--name N [--label L] --match exact|email|phone [--region US]", "change a namespace's label or match rule; the stored field is rewritten to the rule's form at once"},
	{"namespace list", "", "list the namespaces"},
	{"workflow run", "collectPrivacyRequests|deletePrivacyRequestsData|cleanupPrivacyRequests|all", "run the technical workflows now (progress on standard error)"},
	{"demo-data", "[--recipients N] [--seed S]", "add N demo recipients with their deliveries, logs and subscriptions (progress on standard error); the same --seed adds the same data"},
	{"audit verify", "", "check the audit hash chain and the receipts; exit 1 names the first broken line or request"},
	{"receipt public-key", "", "print the erasure receipts' public key (PEM)"},
	{"receipt verify", "FILE [--public-key K]", "check a receipt offline and print its claims"},
	{"healthcheck", "[--addr A]", "ask the server at CP_ADDR whether it is ready (GET /readyz): exit 0, or 1 with the reason"},
	{"version", "", "print the version, VCS revision, commit time and Go version"},
	{"help", "[COMMAND | settings]", "print this help, a command's, or the settings'"},
}

// usage is the top-level help.
var usage = commandsUsage() + "\nSettings (flag or CP_* environment variable; the flag wins):\n" + settingsHelp()

func commandsUsage() string {
	var b strings.Builder
	b.WriteString("campaign-privacy — an Adobe Campaign Classic compatible privacy API service\n\nUsage:\n")
	for _, c := range commandTable {
		fmt.Fprintf(&b, "  campaign-privacy %s\n      %s\n", strings.TrimSpace(c.Name+" "+c.Args), c.Summary)
	}
	b.WriteString("\nEvery command answers -h or --help; `campaign-privacy help COMMAND` too.\n")
	return b.String()
}

// isHelp reports whether a is a request for help.
func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// helpRequested reports whether args ask for help (before a "--").
func helpRequested(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if isHelp(a) {
			return true
		}
	}
	return false
}

// writeHelp writes the help of a command (or of a group such as
// "operator"), with its own flags when extra adds some.
func writeHelp(w io.Writer, name string, extra func(*flag.FlagSet)) error {
	var rows []command
	for _, c := range commandTable {
		if c.Name == name || strings.HasPrefix(c.Name, name+" ") {
			rows = append(rows, c)
		}
	}
	if len(rows) == 0 {
		return fmt.Errorf("unknown command %q", name)
	}
	fmt.Fprintln(w, "Usage:")
	for _, c := range rows {
		fmt.Fprintf(w, "  campaign-privacy %s\n      %s\n", strings.TrimSpace(c.Name+" "+c.Args), c.Summary)
	}
	if extra != nil {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		extra(fs)
		fmt.Fprintln(w, "\nOptions:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if name != "version" && name != "help" {
		fmt.Fprintln(w, "\nEvery setting (a flag or a CP_* variable) applies too: campaign-privacy help settings")
	}
	return nil
}

// help answers -h, --help and `help NAME` for the command name: its usage
// on standard output, and flag.ErrHelp, which main turns into exit 0.
func (m *Main) help(name string, extra func(*flag.FlagSet)) error {
	if err := writeHelp(m.Stdout, name, extra); err != nil {
		return err
	}
	return flag.ErrHelp
}

// subcommand splits a group's command line ("operator create ...") into its
// subcommand and the rest; help for the group itself is answered here.
func (m *Main) subcommand(group string, args []string) (string, []string, error) {
	if len(args) == 0 {
		writeHelp(m.Stderr, group, nil)
		return "", nil, fmt.Errorf("%s needs a subcommand", group)
	}
	if isHelp(args[0]) || args[0] == "help" {
		return "", nil, m.help(group, nil)
	}
	return args[0], args[1:], nil
}
