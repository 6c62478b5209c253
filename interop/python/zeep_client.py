#!/usr/bin/python3
"""Interop checks with zeep (Debian python3-zeep), a WSDL-driven client.

Loads the xtk:session WSDL, logs on, logs off, expects the logged-off token
to be refused (XSV-350008; WSDL clients send the token in the body only) and
the XSV-350012 fault on a wrong password.

    /usr/bin/python3 zeep_client.py <base-url> <login> <password>

or set CP_BASE_URL, CP_LOGIN, CP_PASSWORD (CP_BAD_PASSWORD overrides the
wrong password, default "<password>-wrong"). Run it with Debian's
/usr/bin/python3, where python3-zeep is installed. CP_TRACE=1 prints the
SOAP envelopes.
"""

import os

import zeep
import zeep.exceptions
from lxml import etree

import checks

check = checks.check

def parse_args():
    base_url, login, password = checks.parse_args(__doc__)
    bad_password = os.environ.get("CP_BAD_PASSWORD") or password + "-wrong"
    return base_url, login, password, bad_password


def logon(client, login, password):
    # elemParameters is of the complex type Element: a sequence holding one
    # xs:any, which zeep exposes as "_value_1". The wildcard has the default
    # minOccurs=1, so zeep refuses an empty value ("Missing element for Any");
    # give it an empty <parameters/> element, the shape acc-js-sdk sends.
    return client.service.Logon(
        sessiontoken="",
        strLogin=login,
        strPassword=password,
        elemParameters={"_value_1": etree.Element("parameters")},
    )


def user_login(session_info):
    """The login attribute of <sessionInfo><userInfo> in a pSessionInfo value
    (an Element object whose xs:any content zeep keeps as lxml in _value_1)."""
    if session_info is None or session_info["_value_1"] is None:
        return None
    user_info = session_info["_value_1"].find("{*}userInfo")
    return None if user_info is None else user_info.get("login")


def main():
    base_url, login, password, bad_password = parse_args()
    wsdl_url = f"{base_url}/nl/jsp/schemawsdl.jsp?schema=xtk:session"

    plugins = checks.plugins()
    client = zeep.Client(wsdl_url, plugins=plugins)
    check(True, f"WSDL loaded from {wsdl_url}")
    missing = []
    for name in ("Logon", "Logoff", "GetUserInfo"):
        try:
            client.service[name]
        except AttributeError:
            missing.append(name)
    check(not missing, "WSDL declares Logon, Logoff and GetUserInfo", f"missing: {missing}")

    # --- Logon ---
    result = logon(client, login, password)
    session_token = result["pstrSessionToken"] or ""
    security_token = result["pstrSecurityToken"] or ""
    check(session_token != "", "Logon returns a non-empty pstrSessionToken", repr(result))
    check(security_token != "", "Logon returns a non-empty pstrSecurityToken", repr(result))
    check(
        user_login(result["pSessionInfo"]) == login,
        "pSessionInfo holds sessionInfo/userInfo with the login",
        repr(result["pSessionInfo"]),
    )

    # --- GetUserInfo, before and after Logoff ---
    try:
        info = client.service.GetUserInfo(sessiontoken=session_token)
        login_attr = info.get("login") if info is not None else None
        check(login_attr == login, "GetUserInfo with the session token returns userInfo with the login", repr(info))
    except zeep.exceptions.Error as err:
        check(False, "GetUserInfo with the session token", repr(err))

    # --- The xtk:persist WSDL (answers in urn:wpp:default) and a data
    # schema's WSDL (nms:recipient implements xtk:persist) ---
    for schema in ("xtk:persist", "nms:recipient"):
        url = f"{base_url}/nl/jsp/schemawsdl.jsp?schema={schema}"
        try:
            other = zeep.Client(url, plugins=plugins)
            check(True, f"WSDL loaded from {url}")
            doc = other.service.GetEntityIfMoreRecent(
                sessiontoken=session_token, strPk="xtk:schema|nms:recipient", strMd5="", bMustExist=True)
            # zeep unwraps a response of one XML part into its element, or
            # keeps the Element object with the content in _value_1.
            root = doc if doc is None or etree.iselement(doc) else doc["_value_1"]
            check(root is not None and root.get("name") == "recipient",
                  f"{schema}#GetEntityIfMoreRecent returns the nms:recipient schema", repr(doc))
        except zeep.exceptions.Error as err:
            check(False, f"{schema} WSDL: GetEntityIfMoreRecent", repr(err))

    # --- Logoff ---
    try:
        client.service.Logoff(sessiontoken=session_token)
        check(True, "Logoff with the session token")
    except zeep.exceptions.Error as err:
        check(False, "Logoff with the session token", repr(err))

    try:
        client.service.GetUserInfo(sessiontoken=session_token)
        check(False, "GetUserInfo with the logged-off token raises zeep.exceptions.Fault", "it succeeded")
    except zeep.exceptions.Fault as fault:
        message = fault.message or ""
        check(
            message.startswith("XSV-350008"),
            "GetUserInfo with the logged-off token: fault message starts with XSV-350008",
            repr(message),
        )

    # --- Wrong password ---
    try:
        logon(client, login, bad_password)
        check(False, "Logon with a wrong password raises zeep.exceptions.Fault", "it succeeded")
    except zeep.exceptions.Fault as fault:
        check(True, "Logon with a wrong password raises zeep.exceptions.Fault")
        message = fault.message or ""
        check(message.startswith("XSV-350012"), "fault message starts with XSV-350012", repr(message))


if __name__ == "__main__":
    checks.run(main)
