'use strict';
// Interop checks of xtk:workflow with Adobe's own client: NLWS.xtkWorkflow
// start, startWithParameters, postEvent and stop on the technical
// workflows (by internal name and by id), their state read back with
// xtk:queryDef, and the admin right required.
//
//   node acc-js-sdk-workflow.js <base-url> <admin-login> <password>
//
// CP_PRIVACY_LOGIN / CP_PRIVACY_PASSWORD: an operator with privacyRight
// only, who must be refused.

const sdk = require('@adobe/acc-js-sdk');
const { parseArgs, check, describe, run } = require('./common');

const args = parseArgs('acc-js-sdk-workflow.js');
const options = { noStorage: true, traceAPICalls: !!process.env.CP_TRACE };

async function workflows(client) {
  const out = await client.NLWS.xtkQueryDef.create({
    schema: 'xtk:workflow', operation: 'select',
    select: { node: [{ expr: '@id' }, { expr: '@internalName' }, { expr: '@state' }, { expr: '@lastStart' }, { expr: '@lastEnd' }, { expr: '@lastResult' }] },
    orderBy: { node: [{ expr: '@id' }] },
  }).executeQuery();
  const list = (out && out.workflow) || [];
  return Array.isArray(list) ? list : [list];
}

// finished waits until the workflow's last run has ended (runs are
// asynchronous, as ACC's).
async function finished(client, name) {
  for (let i = 0; i < 100; i++) {
    const w = (await workflows(client)).find((x) => x.internalName === name);
    if (w && String(w.state) === '20' && w.lastEnd) return w;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

run(async () => {
  const { baseURL, login, password } = args;
  const client = await sdk.init(sdk.ConnectionParameters.ofUserAndPassword(baseURL, login, password, options));
  await client.logon();
  check(client.isLogged(), `logon as ${login}`);

  const before = await workflows(client);
  check(before.length === 3, 'queryDef on xtk:workflow lists the three technical workflows',
    JSON.stringify(before.map((w) => w.internalName)));

  await client.NLWS.xtkWorkflow.start('collectPrivacyRequests');
  check(true, "xtkWorkflow.start('collectPrivacyRequests') is accepted");
  const collect = await finished(client, 'collectPrivacyRequests');
  check(!!collect && /processed/.test(collect.lastResult || ''), 'collectPrivacyRequests ran: state 20, lastStart, lastEnd, lastResult',
    JSON.stringify(collect));

  await client.NLWS.xtkWorkflow.startWithParameters(2, { hello: 'world' });
  check(true, 'xtkWorkflow.startWithParameters(2, {hello: "world"}) is accepted');
  check(!!(await finished(client, 'deletePrivacyRequestsData')), 'deletePrivacyRequestsData (id 2) ran');

  await client.NLWS.xtkWorkflow.postEvent('cleanupPrivacyRequests', 'signal', '', {}, false);
  check(true, "xtkWorkflow.postEvent('cleanupPrivacyRequests', 'signal', …) is accepted");
  check(!!(await finished(client, 'cleanupPrivacyRequests')), 'cleanupPrivacyRequests ran');

  await client.NLWS.xtkWorkflow.stop('cleanupPrivacyRequests');
  check(true, "xtkWorkflow.stop('cleanupPrivacyRequests') on a finished workflow is accepted");

  let err;
  try {
    await client.NLWS.xtkWorkflow.start('noSuchWorkflow');
  } catch (e) {
    err = e || new Error('rejected');
  }
  check(err !== undefined && err.errorCode === 'SOP-330011', 'start of an unknown workflow: SOP-330011', describe(err));

  const pl = process.env.CP_PRIVACY_LOGIN;
  if (pl) {
    const other = await sdk.init(sdk.ConnectionParameters.ofUserAndPassword(baseURL, pl, process.env.CP_PRIVACY_PASSWORD, options));
    await other.logon();
    let denied;
    try {
      await other.NLWS.xtkWorkflow.start('collectPrivacyRequests');
    } catch (e) {
      denied = e || new Error('rejected');
    }
    check(denied !== undefined && /admin right/.test(`${denied.detail || ''} ${denied.message || ''}`),
      'an operator without admin is refused', describe(denied));
    await other.logoff();
  }
  await client.logoff();
});
