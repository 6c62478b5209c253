'use strict';
// Interop checks with Adobe's own client, @adobe/acc-js-sdk:
// Logon (tokens, operator, rights), GetServerTime, GetUserInfo, Logoff, the
// old session refused after Logoff, and the XSV-350012 fault on a wrong
// password.
//
//   node acc-js-sdk.js <base-url> <login> <password> [expected-right]
//
// expected-right: a named right the operator must hold (e.g. privacyRight or
// admin); when it is not "admin", the operator must NOT hold "admin".

const sdk = require('@adobe/acc-js-sdk');
const { parseArgs, check, describe, run } = require('./common');

const args = parseArgs('acc-js-sdk.js');

// The SDK would otherwise look for a browser localStorage; CP_TRACE=1 prints
// every HTTP request and response the SDK makes.
const options = { noStorage: true, traceAPICalls: !!process.env.CP_TRACE };

// expectRejection calls fn, awaits its result and returns the error it threw
// or rejected with, or undefined when it succeeded.
async function expectRejection(fn) {
  try {
    await fn();
  } catch (err) {
    return err || new Error('rejected without a value');
  }
  return undefined;
}

run(async () => {
  const { baseURL, login, password, badPassword, right } = args;

  // --- Logon ---
  const client = await sdk.init(sdk.ConnectionParameters.ofUserAndPassword(baseURL, login, password, options));
  await client.logon();
  check(client.isLogged(), `logon as ${login}`);
  const sessionToken = client._sessionToken;
  const securityToken = client._securityToken;
  check(typeof sessionToken === 'string' && sessionToken !== '', 'session token is non-empty');
  check(typeof securityToken === 'string' && securityToken !== '', 'security token is non-empty');

  const operator = client.application && client.application.operator;
  check(!!operator, 'client.application.operator is set');
  if (operator) {
    check(operator.login === login, `operator.login is ${JSON.stringify(login)}`, `got ${JSON.stringify(operator.login)}`);
    if (right) {
      check(operator.hasRight(right), `operator has right ${right}`, `rights=${JSON.stringify(operator.rights)}`);
      if (right !== 'admin') {
        check(!operator.hasRight('admin'), 'operator does not have right admin', `rights=${JSON.stringify(operator.rights)}`);
      }
    }
  }

  // --- serverInfo as real servers send it (issue 14 item 2) ---
  const serverInfo = client.getSessionInfo('xml');
  const si = serverInfo && serverInfo.getElementsByTagName('serverInfo')[0];
  check(!!si, 'sessionInfo has a serverInfo');
  let databaseId = '';
  if (si) {
    databaseId = si.getAttribute('databaseId');
    check(/^u[0-9A-F]{40}$/.test(databaseId), 'serverInfo databaseId is u + 40 hex digits', `got ${databaseId}`);
    check(/^[0-9a-f]{7}$/.test(si.getAttribute('commitId') || ''), 'serverInfo has a commitId', `got ${si.getAttribute('commitId')}`);
    check(si.getAttribute('minClientBuildNumber') !== null, 'serverInfo has minClientBuildNumber');
  }
  check(client.application.buildNumber === '9364' && client.application.version === '6.7.0',
    'application build 9364, version 6.7.0', `got ${client.application.buildNumber} ${client.application.version}`);
  check(client.hasPackage('nms:campaign') && client.hasPackage('nms', 'gdpr'), "hasPackage('nms:campaign') and ('nms','gdpr')",
    `packages ${JSON.stringify(client.application.packages)}`);
  check(client.application.operator.instanceLocale === 'en-US', 'operator.instanceLocale is en-US',
    `got ${client.application.operator.instanceLocale}`);
  try {
    const id = await client.getOption('XtkDatabaseId');
    check(id === databaseId, "getOption('XtkDatabaseId') is serverInfo's databaseId", `got ${describe(id)}, serverInfo ${databaseId}`);
  } catch (err) {
    check(false, "getOption('XtkDatabaseId') succeeds", describe(err));
  }

  // --- GetServerTime (declared anonymous in xtk:session; goes through the
  // schema fetch xtk:persist#GetEntityIfMoreRecent first) ---
  try {
    const serverTime = await client.NLWS.xtkSession.getServerTime();
    const ok = serverTime instanceof Date && !isNaN(serverTime.getTime());
    check(ok, 'xtkSession.getServerTime() returns a Date', `got ${describe(serverTime)}`);
    if (ok) {
      const skew = Math.abs(serverTime.getTime() - Date.now());
      check(skew < 5 * 60 * 1000, 'server time is within 5 minutes of local time', `skew ${skew} ms (${serverTime.toISOString()})`);
    }
  } catch (err) {
    check(false, 'xtkSession.getServerTime() succeeds', describe(err));
  }

  // --- GetUserInfo: the authenticated call re-tried after Logoff below ---
  try {
    const userInfo = await client.NLWS.xtkSession.getUserInfo();
    check(userInfo && userInfo.login === login, `xtkSession.getUserInfo() returns login ${JSON.stringify(login)}`,
      `got ${JSON.stringify(userInfo)}`);
  } catch (err) {
    check(false, 'xtkSession.getUserInfo() succeeds while logged on', describe(err));
  }

  // --- Logoff ---
  await client.logoff();
  check(!client.isLogged(), 'logoff');

  // The same client may no longer call (the SDK refuses locally or the
  // server refuses the dropped session).
  const afterLogoff = await expectRejection(() => client.NLWS.xtkSession.getUserInfo());
  check(afterLogoff !== undefined, 'getUserInfo() on the logged-off client fails',
    'it succeeded');

  // The server itself must refuse the old tokens: a fresh client re-uses
  // them (no Logon call is made for these credentials).
  const stale = await sdk.init(sdk.ConnectionParameters.ofSessionAndSecurityToken(baseURL, sessionToken, securityToken, options));
  await stale.logon();
  const staleErr = await expectRejection(() => stale.NLWS.xtkSession.getUserInfo());
  check(staleErr !== undefined, 'getUserInfo() with the logged-off tokens fails', 'it succeeded');
  if (staleErr !== undefined) {
    const text = `${staleErr.errorCode || ''} ${staleErr.message || ''} ${staleErr.detail || ''}`;
    check(/XSV-350008|SDK-000012/.test(text), 'the server refuses the logged-off session with XSV-350008 (SDK-000012)', describe(staleErr));
  }

  // --- Wrong password ---
  const bad = await sdk.init(sdk.ConnectionParameters.ofUserAndPassword(baseURL, login, badPassword, options));
  const badErr = await expectRejection(() => bad.logon());
  check(badErr !== undefined, 'logon with a wrong password is rejected', 'it succeeded');
  if (badErr !== undefined) {
    check(badErr.errorCode === 'XSV-350012', 'wrong password gives errorCode XSV-350012', describe(badErr));
  }
  check(!bad.isLogged(), 'client with a wrong password is not logged');
});
