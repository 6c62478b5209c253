#!/usr/bin/python3
"""Privacy-request checks with zeep (Debian python3-zeep), a WSDL-driven client.

Loads the xtk:session and nms:privacyRequest WSDLs, logs on, calls
CreateRequestByName with the session token in the body (an integer id back,
the same id for an identical active request) and expects the SOP-330011
fault for type 3, for ConfirmDeletePending on a fresh request and for an
operator without privacyRight.

    /usr/bin/python3 zeep_privacy.py <base-url> <login> <password>

or set CP_BASE_URL, CP_LOGIN, CP_PASSWORD. CP_UNPRIVILEGED_LOGIN and
CP_UNPRIVILEGED_PASSWORD name an operator without privacyRight (optional).
CP_TRACE=1 prints the SOAP envelopes.
"""

import os
import re

import zeep
import zeep.exceptions
from lxml import etree

import checks

check = checks.check

def parse_args():
    return checks.parse_args(__doc__)


def logon(session, login, password):
    # elemParameters: see zeep_client.py (an xs:any needing an element).
    result = session.service.Logon(
        sessiontoken="",
        strLogin=login,
        strPassword=password,
        elemParameters={"_value_1": etree.Element("parameters")},
    )
    return result["pstrSessionToken"] or ""


def request(privacy, token, **overrides):
    args = dict(
        sessiontoken=token,
        namespaceName="defaultNamespace1",
        reconciliationValue="zeep@example.com",
        type=1,
        confirmDeletePending=True,
        regulation=3,
    )
    args.update(overrides)
    return privacy.service.CreateRequestByName(**args)


def expect_fault(what, call, detail_pattern=None):
    """Checks that call() raises a SOP-330011 zeep Fault."""
    try:
        call()
        check(False, f"{what} raises zeep.exceptions.Fault", "it succeeded")
    except zeep.exceptions.Fault as fault:
        message = fault.message or ""
        check(message.startswith("SOP-330011"), f"{what}: fault message starts with SOP-330011", repr(message))
        if detail_pattern:
            detail = "" if fault.detail is None else "".join(fault.detail.itertext())
            check(re.search(detail_pattern, detail), f"{what}: detail matches {detail_pattern}", repr(detail))


def main():
    base_url, login, password = parse_args()
    plugins = checks.plugins()
    session = zeep.Client(f"{base_url}/nl/jsp/schemawsdl.jsp?schema=xtk:session", plugins=plugins)
    privacy = zeep.Client(f"{base_url}/nl/jsp/schemawsdl.jsp?schema=nms:privacyRequest", plugins=plugins)
    check(True, "xtk:session and nms:privacyRequest WSDLs loaded")

    token = logon(session, login, password)
    check(token != "", f"Logon as {login}")

    request_id = request(privacy, token)
    check(isinstance(request_id, int) and request_id > 0, "CreateRequestByName returns an int id", repr(request_id))
    again = request(privacy, token)
    check(again == request_id, "an identical active request returns the same id", f"{again!r} vs {request_id!r}")

    expect_fault("CreateRequestByName with type 3", lambda: request(privacy, token, type=3))
    expect_fault(
        "CreateRequestByName with an unknown namespace",
        lambda: request(privacy, token, namespaceName="noSuchNamespace"),
        "noSuchNamespace",
    )
    expect_fault(
        "ConfirmDeletePending on a fresh request",
        lambda: privacy.service.ConfirmDeletePending(sessiontoken=token, privacyRequestId=request_id),
    )

    unprivileged = os.environ.get("CP_UNPRIVILEGED_LOGIN")
    if unprivileged:
        other = logon(session, unprivileged, os.environ.get("CP_UNPRIVILEGED_PASSWORD", ""))
        check(other != "", f"Logon as {unprivileged} (no privacyRight)")
        expect_fault(f"CreateRequestByName as {unprivileged}", lambda: request(privacy, other), "privacyRight")
        session.service.Logoff(sessiontoken=other)

    session.service.Logoff(sessiontoken=token)
    check(True, "Logoff")


if __name__ == "__main__":
    checks.run(main)
