'use strict';
// Interop checks of xtk:session#BearerTokenLogon with Adobe's own client:
// ConnectionParameters.ofBearerToken exchanges an IMS bearer token for a
// session (the same tokens as Logon), then calls as any logged-on client;
// ofImsBearerToken sends the token on every call and never logs on.
//
//   CP_BEARER_TOKEN=<jwt> CP_BEARER_EXPIRED=<jwt> \
//     node acc-js-sdk-bearer.js <base-url> <login> <unused> [expected-right]
//
// The test (interop/bearer_test.go) mints both tokens with a key it
// generated and publishes as the server's CP_IMS_JWKS.

const sdk = require('@adobe/acc-js-sdk');
const { parseArgs, check, describe, run } = require('./common');

const args = parseArgs('acc-js-sdk-bearer.js');
const options = { noStorage: true, traceAPICalls: !!process.env.CP_TRACE };

run(async () => {
  const { baseURL, login, right } = args;
  const token = process.env.CP_BEARER_TOKEN || '';
  const expired = process.env.CP_BEARER_EXPIRED || '';
  check(token !== '' && expired !== '', 'CP_BEARER_TOKEN and CP_BEARER_EXPIRED are set');

  const client = await sdk.init(sdk.ConnectionParameters.ofBearerToken(baseURL, token, options));
  await client.logon();
  check(client.isLogged(), 'ofBearerToken logon');
  check(!!client._sessionToken && !!client._securityToken, 'BearerTokenLogon returned a session and a security token');
  const operator = client.application && client.application.operator;
  check(operator && operator.login === login, `operator.login is ${JSON.stringify(login)}`, `got ${JSON.stringify(operator && operator.login)}`);
  if (right) {
    check(operator && operator.hasRight(right), `operator has right ${right}`, `rights=${JSON.stringify(operator && operator.rights)}`);
  }
  check(client.hasPackage('nms:campaign'), "hasPackage('nms:campaign') after a bearer logon");

  try {
    const userInfo = await client.NLWS.xtkSession.getUserInfo();
    check(userInfo && userInfo.login === login, 'getUserInfo() with the bearer session', `got ${JSON.stringify(userInfo)}`);
  } catch (err) {
    check(false, 'getUserInfo() with the bearer session succeeds', describe(err));
  }
  await client.logoff();
  check(!client.isLogged(), 'logoff');

  // ofImsBearerToken (Campaign 8.5): no logon, the token on every call.
  const ims = await sdk.init(sdk.ConnectionParameters.ofImsBearerToken(baseURL, token, options));
  await ims.logon();
  check(ims.isLogged(), 'ofImsBearerToken logon');
  try {
    const userInfo = await ims.NLWS.xtkSession.getUserInfo();
    check(userInfo && userInfo.login === login, 'getUserInfo() with the IMS token on the call', `got ${JSON.stringify(userInfo)}`);
  } catch (err) {
    check(false, 'getUserInfo() with the IMS token on the call succeeds', describe(err));
  }
  await ims.logoff();
  const imsExpired = await sdk.init(sdk.ConnectionParameters.ofImsBearerToken(baseURL, expired, options));
  await imsExpired.logon();
  let imsErr;
  try {
    await imsExpired.NLWS.xtkSession.getUserInfo();
  } catch (e) {
    imsErr = e || new Error('rejected without a value');
  }
  check(imsErr !== undefined, 'an expired IMS token on a call is refused', 'the call ran');
  if (imsErr !== undefined) {
    // The SDK turns ACC's XSV-350008 into its SDK-000012 (HTTP 401), as for any expired session.
    const text = `${imsErr.errorCode} ${imsErr.faultString} ${imsErr.message}`;
    check(/SDK-000012/.test(imsErr.errorCode) && /Session has expired or is invalid/.test(text), 'the expired IMS token gives the session fault (SDK-000012)', describe(imsErr));
  }

  const old = await sdk.init(sdk.ConnectionParameters.ofBearerToken(baseURL, expired, options));
  let err;
  try {
    await old.logon();
  } catch (e) {
    err = e || new Error('rejected without a value');
  }
  check(err !== undefined, 'an expired bearer token is refused', 'it logged on');
  if (err !== undefined) {
    check(err.errorCode === 'XSV-350012', 'the expired token gives errorCode XSV-350012', describe(err));
  }
});
