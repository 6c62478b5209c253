"""What the zeep interop scripts share: one result line per check, the
envelope trace (CP_TRACE=1), the arguments, and the run that turns an
unexpected error into a failed check and sets the exit status."""

import os
import sys
import traceback

import zeep.plugins
from lxml import etree

failures = 0


def check(cond, what, detail=None):
    """Print one result line and count failures."""
    global failures
    if cond:
        print(f"ok - {what}")
    else:
        failures += 1
        print(f"FAIL - {what}" + ("" if detail is None else f": {detail}"))
    return bool(cond)


class Trace(zeep.plugins.Plugin):
    """Prints every envelope sent and received."""

    def egress(self, envelope, http_headers, operation, binding_options):
        print("> " + etree.tostring(envelope, encoding="unicode"))
        return envelope, http_headers

    def ingress(self, envelope, http_headers, operation):
        print("< " + etree.tostring(envelope, encoding="unicode"))
        return envelope, http_headers


def plugins():
    """The zeep plugins: the trace when CP_TRACE is set."""
    return [Trace()] if os.environ.get("CP_TRACE") else []


def parse_args(usage):
    """<base-url> <login> <password> from argv, else CP_BASE_URL, CP_LOGIN,
    CP_PASSWORD; prints usage and exits 2 when one is missing."""
    argv = sys.argv[1:]

    def arg(i, env):
        return argv[i] if len(argv) > i else os.environ.get(env, "")

    base_url = arg(0, "CP_BASE_URL").rstrip("/")
    login = arg(1, "CP_LOGIN")
    password = arg(2, "CP_PASSWORD")
    if not (base_url and login and password):
        print(usage, file=sys.stderr)
        sys.exit(2)
    return base_url, login, password


def run(main):
    """Runs main, counts an unexpected error as a failed check, and exits
    0 when every check passed, 1 otherwise."""
    global failures
    try:
        main()
    except Exception as err:  # an unexpected error is a failed check
        failures += 1
        print(f"FAIL - unexpected error: {err!r}")
        traceback.print_exc(file=sys.stdout)
    print("all checks passed" if failures == 0 else f"{failures} check(s) failed")
    sys.exit(0 if failures == 0 else 1)
