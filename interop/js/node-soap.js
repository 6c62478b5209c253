'use strict';
// Interop checks with node-soap (npm "soap"), a WSDL-driven client:
// load the xtk:session WSDL, Logon, Logoff, the logged-off token refused
// (XSV-350008, token in the body only, as WSDL clients send it), and the
// XSV-350012 fault on a wrong password.
//
//   node node-soap.js <base-url> <login> <password>

const soap = require('soap');
const { parseArgs, check, describe, run } = require('./common');

const args = parseArgs('node-soap.js');

// text returns the text of a value parsed by node-soap, which wraps
// elements carrying attributes (xsi:type) as {attributes, $value}.
function text(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object' && '$value' in v) return String(v.$value);
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// faultString extracts the SOAP faultstring from a node-soap error.
function faultString(err) {
  const fault = err && err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
  return fault ? text(fault.faultstring) : '';
}

// userLogin returns the login attribute of parent's <userInfo> child.
function userLogin(parent) {
  const u = parent && parent.userInfo;
  return u && u.attributes ? u.attributes.login : undefined;
}

function logonArgs(login, password) {
  // elemParameters is an XML (s:any) parameter; an empty object gives an
  // empty element.
  return { sessiontoken: '', strLogin: login, strPassword: password, elemParameters: {} };
}

run(async () => {
  const { baseURL, login, password, badPassword } = args;
  const wsdlURL = `${baseURL}/nl/jsp/schemawsdl.jsp?schema=xtk:session`;

  // --- WSDL ---
  const client = await soap.createClientAsync(wsdlURL);
  check(true, `WSDL loaded from ${wsdlURL}`);
  const ops = client.describe();
  const service = Object.values(ops)[0] || {};
  const port = Object.values(service)[0] || {};
  check('Logon' in port && 'Logoff' in port && 'GetUserInfo' in port, 'WSDL declares Logon, Logoff and GetUserInfo',
    `operations: ${Object.keys(port).join(', ')}`);
  if (process.env.CP_TRACE) {
    client.on('request', (xml) => console.log(`> ${xml}`));
    client.on('response', (xml) => console.log(`< ${xml}`));
  }

  // --- Logon ---
  const [result] = await client.LogonAsync(logonArgs(login, password));
  const sessionToken = text(result && result.pstrSessionToken);
  const securityToken = text(result && result.pstrSecurityToken);
  check(sessionToken !== '', 'Logon returns a non-empty pstrSessionToken', describe(result));
  check(securityToken !== '', 'Logon returns a non-empty pstrSecurityToken', describe(result));
  check(userLogin(result && result.pSessionInfo && result.pSessionInfo.sessionInfo) === login,
    'pSessionInfo holds sessionInfo/userInfo with the login', describe(result && result.pSessionInfo));

  // --- GetUserInfo, before and after Logoff ---
  try {
    const [info] = await client.GetUserInfoAsync({ sessiontoken: sessionToken });
    check(userLogin(info && info.pUserInfo) === login, 'GetUserInfo with the session token returns userInfo with the login',
      describe(info));
  } catch (err) {
    check(false, 'GetUserInfo with the session token', `${describe(err)} ${faultString(err)}`);
  }

  // --- The xtk:persist WSDL (answers in urn:wpp:default) and a data
  // schema's WSDL (nms:recipient implements xtk:persist) ---
  for (const schema of ['xtk:persist', 'nms:recipient']) {
    const url = `${baseURL}/nl/jsp/schemawsdl.jsp?schema=${schema}`;
    try {
      const other = await soap.createClientAsync(url);
      check(true, `WSDL loaded from ${url}`);
      const [, raw] = await other.GetEntityIfMoreRecentAsync({ sessiontoken: sessionToken, strPk: 'xtk:schema|nms:recipient',
        strMd5: '', bMustExist: true });
      check(typeof raw === 'string' && raw.includes('<schema') && raw.includes('name="recipient"'),
        `${schema}#GetEntityIfMoreRecent returns the nms:recipient schema`, String(raw).slice(0, 300));
    } catch (err) {
      check(false, `${schema} WSDL: GetEntityIfMoreRecent`, `${describe(err)} ${faultString(err)}`);
    }
  }

  // --- Logoff ---
  try {
    await client.LogoffAsync({ sessiontoken: sessionToken });
    check(true, 'Logoff with the session token');
  } catch (err) {
    check(false, 'Logoff with the session token', `${describe(err)} ${faultString(err)}`);
  }

  try {
    await client.GetUserInfoAsync({ sessiontoken: sessionToken });
    check(false, 'GetUserInfo with the logged-off token raises a fault', 'it succeeded');
  } catch (err) {
    const fs = faultString(err);
    check(fs.startsWith('XSV-350008'), 'GetUserInfo with the logged-off token: faultstring starts with XSV-350008',
      `${JSON.stringify(fs)} ${describe(err)}`);
  }

  // --- Wrong password ---
  try {
    await client.LogonAsync(logonArgs(login, badPassword));
    check(false, 'Logon with a wrong password raises a fault', 'it succeeded');
  } catch (err) {
    const fs = faultString(err);
    check(fs !== '', 'Logon with a wrong password raises a SOAP fault', describe(err));
    check(fs.startsWith('XSV-350012'), 'faultstring starts with XSV-350012', JSON.stringify(fs));
    const status = err.response && err.response.status;
    check(status === 200, 'the fault comes with HTTP 200', `HTTP ${status}`);
  }
});
