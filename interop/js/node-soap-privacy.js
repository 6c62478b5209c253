'use strict';
// Privacy-request checks with node-soap (npm "soap"), a WSDL-driven client:
// load the xtk:session and nms:privacyRequest WSDLs, Logon, call
// CreateRequestByName with the session token in the body (an integer id
// back, the same id for an identical active request), and the SOP-330011
// fault for type 3, for ConfirmDeletePending on a fresh request and for an
// operator without privacyRight.
//
//   node node-soap-privacy.js <base-url> <login> <password>
//
// CP_UNPRIVILEGED_LOGIN / CP_UNPRIVILEGED_PASSWORD name an operator without
// privacyRight (optional); CP_TRACE=1 prints the envelopes.

const soap = require('soap');
const { parseArgs, check, describe, run } = require('./common');

const args = parseArgs('node-soap-privacy.js');

function text(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object' && '$value' in v) return String(v.$value);
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function fault(err) {
  const f = err && err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
  return f ? { faultstring: text(f.faultstring), detail: text(f.detail) } : { faultstring: '', detail: '' };
}

async function wsdlClient(baseURL, schema) {
  const client = await soap.createClientAsync(`${baseURL}/nl/jsp/schemawsdl.jsp?schema=${schema}`);
  if (process.env.CP_TRACE) {
    client.on('request', (xml) => console.log(`> ${xml}`));
    client.on('response', (xml) => console.log(`< ${xml}`));
  }
  return client;
}

async function logon(session, login, password) {
  const [result] = await session.LogonAsync({ sessiontoken: '', strLogin: login, strPassword: password, elemParameters: {} });
  return text(result && result.pstrSessionToken);
}

function request(token, overrides = {}) {
  return {
    sessiontoken: token,
    namespaceName: 'defaultNamespace1',
    reconciliationValue: 'node-soap@example.com',
    type: 1,
    confirmDeletePending: false,
    regulation: 2,
    ...overrides,
  };
}

// expectFault calls fn and checks that it raises a SOP-330011 SOAP fault.
async function expectFault(what, fn, detailPattern) {
  try {
    await fn();
    check(false, `${what} raises a fault`, 'it succeeded');
  } catch (err) {
    const f = fault(err);
    check(f.faultstring.startsWith('SOP-330011'), `${what}: faultstring starts with SOP-330011`,
      `${JSON.stringify(f)} ${describe(err)}`);
    if (detailPattern) check(detailPattern.test(f.detail), `${what}: detail matches ${detailPattern}`, JSON.stringify(f.detail));
  }
}

run(async () => {
  const { baseURL, login, password } = args;
  const session = await wsdlClient(baseURL, 'xtk:session');
  const privacy = await wsdlClient(baseURL, 'nms:privacyRequest');
  const port = Object.values(Object.values(privacy.describe())[0] || {})[0] || {};
  check('CreateRequestByName' in port && 'ConfirmDeletePending' in port,
    'nms:privacyRequest WSDL declares CreateRequestByName and ConfirmDeletePending', Object.keys(port).join(', '));

  const token = await logon(session, login, password);
  check(token !== '', `Logon as ${login}`);

  const [res] = await privacy.CreateRequestByNameAsync(request(token));
  const id = Number(text(res && res.id));
  check(Number.isInteger(id) && id > 0, 'CreateRequestByName returns an integer id', describe(res));

  const [again] = await privacy.CreateRequestByNameAsync(request(token));
  check(Number(text(again && again.id)) === id, 'an identical active request returns the same id', describe(again));

  await expectFault('CreateRequestByName with type 3', () => privacy.CreateRequestByNameAsync(request(token, { type: 3 })));
  await expectFault('CreateRequestByName with an unknown namespace',
    () => privacy.CreateRequestByNameAsync(request(token, { namespaceName: 'noSuchNamespace' })), /noSuchNamespace/);
  await expectFault('ConfirmDeletePending on a fresh request',
    () => privacy.ConfirmDeletePendingAsync({ sessiontoken: token, privacyRequestId: id }));

  const unprivileged = process.env.CP_UNPRIVILEGED_LOGIN;
  if (unprivileged) {
    const other = await logon(session, unprivileged, process.env.CP_UNPRIVILEGED_PASSWORD || '');
    check(other !== '', `Logon as ${unprivileged} (no privacyRight)`);
    await expectFault(`CreateRequestByName as ${unprivileged}`,
      () => privacy.CreateRequestByNameAsync(request(other)), /privacyRight/);
    await session.LogoffAsync({ sessiontoken: other });
  }

  await session.LogoffAsync({ sessiontoken: token });
  check(true, 'Logoff');
});
