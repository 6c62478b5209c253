'use strict';
// Privacy-request checks with Adobe's own client, @adobe/acc-js-sdk:
// nmsPrivacyRequest.createRequestByName (5 and 4 arguments), the legacy
// nmsGdprRequest.createRequestByName, deduplication of an identical active
// request, the SOP-330011 faults (unknown namespace, ConfirmDeletePending on
// a fresh request, an operator without privacyRight), the schema API
// (getSchema), xtkSession.write of a recipient and xtkQueryDef reads of the
// requests (get, getIfExists, select with lineCount, count, functions with
// groupBy and having).
//
//   node acc-js-sdk-privacy.js <base-url> <login> <password> [expected-right]
//
// The operator must hold privacyRight (or admin). Optional environment:
//   CP_UNPRIVILEGED_LOGIN, CP_UNPRIVILEGED_PASSWORD  an operator without
//       privacyRight, whose CreateRequestByName must fault with SOP-330011
//   CP_CUSTOM_SCHEMAS=1  the server runs with CP_SCHEMAS_DIR=examples/schemas:
//       check the CCPA extension (@OPTOUTCCPA on nms:recipient) and
//       cus:transaction / cus:transactionDetail
//   CP_TRACE=1  print the SOAP traffic

const sdk = require('@adobe/acc-js-sdk');
const { parseArgs, check, describe, run } = require('./common');

const args = parseArgs('acc-js-sdk-privacy.js');
const options = { noStorage: true, traceAPICalls: !!process.env.CP_TRACE };

const SOP = 'SOP-330011';

// rejection calls fn and returns the error it threw or rejected with, or
// undefined when it succeeded.
async function rejection(fn) {
  try {
    await fn();
  } catch (err) {
    return err || new Error('rejected without a value');
  }
  return undefined;
}

// checkFault checks that err is a SOP-330011 fault of CreateRequestByName-like
// methods, and (when given) that its detail matches detailPattern.
function checkFault(err, what, detailPattern) {
  if (!check(err !== undefined, `${what} fails`, 'it succeeded')) return;
  check(err.errorCode === SOP, `${what}: errorCode ${SOP}`, describe(err));
  if (detailPattern) {
    const text = `${err.detail || ''} ${err.message || ''}`;
    check(detailPattern.test(text), `${what}: detail matches ${detailPattern}`, describe(err));
  }
}

function isId(v) {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

async function query(client, queryDef) {
  return client.NLWS.xtkQueryDef.create(queryDef).executeQuery();
}

// requestQuery is the documented status query: get on nms:gdprRequest by id.
function requestQuery(id, operation = 'get') {
  return {
    schema: 'nms:gdprRequest',
    operation,
    select: {
      node: [
        { expr: '@id' }, { expr: '@status' }, { expr: '@type' }, { expr: '@regulation' },
        { expr: '@urlFile' }, { expr: '@reconciliationValue' }, { expr: '@confirmDeletePending' },
        { expr: '[namespace/@name]', alias: '@namespaceName' },
      ],
    },
    where: { condition: [{ expr: `@id = ${id}` }] },
  };
}

async function checkSchemas(client) {
  try {
    const recipient = await client.application.getSchema('nms:recipient');
    check(!!recipient, "application.getSchema('nms:recipient') returns a schema");
    if (recipient) {
      const email = await recipient.root.findNode('@email');
      check(!!email && email.name === '@email', 'nms:recipient has an attribute @email', describe(email && email.name));
      if (process.env.CP_CUSTOM_SCHEMAS) {
        const optOut = await recipient.root.findNode('@OPTOUTCCPA');
        check(!!optOut, 'nms:recipient has the CCPA extension attribute @OPTOUTCCPA');
        if (optOut) {
          check(optOut.type === 'boolean', '@OPTOUTCCPA is a boolean', `type ${optOut.type}`);
          check(optOut.label === 'Opt-Out for CCPA', '@OPTOUTCCPA has the label "Opt-Out for CCPA"', `label ${optOut.label}`);
        }
      }
    }
  } catch (err) {
    check(false, "application.getSchema('nms:recipient')", describe(err));
  }
  if (!process.env.CP_CUSTOM_SCHEMAS) return;
  try {
    const tx = await client.application.getSchema('cus:transaction');
    check(!!tx, "application.getSchema('cus:transaction') returns a schema");
    if (tx) {
      for (const attr of ['@amount', '@date', '@store']) {
        check(!!(await tx.root.findNode(attr)), `cus:transaction has ${attr}`);
      }
      const link = await tx.root.findNode('recipient');
      check(!!link && link.target === 'nms:recipient', 'cus:transaction links to nms:recipient',
        describe(link && link.target));
    }
    const detail = await client.application.getSchema('cus:transactionDetail');
    check(!!detail, "application.getSchema('cus:transactionDetail') returns a schema");
    if (detail) {
      const link = await detail.root.findNode('transaction');
      check(!!link && link.target === 'cus:transaction', 'cus:transactionDetail links to cus:transaction',
        describe(link && link.target));
    }
  } catch (err) {
    check(false, "application.getSchema('cus:transaction')", describe(err));
  }
}

async function checkWrite(client) {
  // Seed the data subject: a recipient with the reconciliation value.
  try {
    await client.NLWS.xtkSession.write({
      xtkschema: 'nms:recipient', email: 'x@example.com', firstName: 'Ana', _operation: 'insert',
    });
    check(true, 'xtkSession.write inserts an nms:recipient');
  } catch (err) {
    check(false, 'xtkSession.write inserts an nms:recipient', describe(err));
    return;
  }
  // insertOrUpdate on the key @email updates the same row.
  const update = { xtkschema: 'nms:recipient', _operation: 'insertOrUpdate', _key: '@email', email: 'x@example.com', lastName: 'Silva' };
  if (process.env.CP_CUSTOM_SCHEMAS) update.OPTOUTCCPA = true;
  try {
    await client.NLWS.xtkSession.write(update);
    check(true, "xtkSession.write insertOrUpdate with _key='@email'");
  } catch (err) {
    check(false, "xtkSession.write insertOrUpdate with _key='@email'", describe(err));
  }
  try {
    const select = [{ expr: '@id' }, { expr: '@email' }, { expr: '@firstName' }, { expr: '@lastName' }];
    if (process.env.CP_CUSTOM_SCHEMAS) select.push({ expr: '@OPTOUTCCPA' });
    const res = await query(client, {
      schema: 'nms:recipient', operation: 'select',
      select: { node: select },
      where: { condition: [{ expr: "@email = 'x@example.com'" }] },
    });
    const rows = (res && res.recipient) || [];
    check(rows.length === 1, 'select on nms:recipient by @email finds one recipient', JSON.stringify(res));
    if (rows.length === 1) {
      check(rows[0].firstName === 'Ana' && rows[0].lastName === 'Silva',
        'the recipient has firstName Ana (insert) and lastName Silva (insertOrUpdate)', JSON.stringify(rows[0]));
      if (process.env.CP_CUSTOM_SCHEMAS) {
        check(['1', 'true'].includes(rows[0].OPTOUTCCPA), 'the recipient has OPTOUTCCPA set', JSON.stringify(rows[0]));
      }
    }
  } catch (err) {
    check(false, 'select on nms:recipient by @email', describe(err));
  }

  // writeCollection, in the form of the SDK's documentation, then a delete.
  const countCollection = async () => {
    const r = await query(client, {
      schema: 'nms:recipient', operation: 'count',
      where: { condition: [{ expr: "@lastName = 'Collection'" }] },
    });
    return r && r.count;
  };
  try {
    await client.NLWS.xtkSession.writeCollection({
      xtkschema: 'nms:recipient',
      recipient: [
        { _operation: 'insert', firstName: 'Carla', lastName: 'Collection', email: 'c1@example.com' },
        { _operation: 'insert', firstName: 'Caio', lastName: 'Collection', email: 'c2@example.com' },
      ],
    });
    check(true, 'xtkSession.writeCollection inserts two recipients');
    const n = await countCollection();
    check(n === '2', 'count on nms:recipient finds the two recipients of writeCollection', JSON.stringify(n));
    await client.NLWS.xtkSession.write({ xtkschema: 'nms:recipient', _operation: 'delete', _key: '@email', email: 'c2@example.com' });
    const after = await countCollection();
    check(after === '1', "xtkSession.write delete with _key='@email' removes one recipient", JSON.stringify(after));
  } catch (err) {
    check(false, 'xtkSession.writeCollection, count and delete', describe(err));
  }
}

async function checkQueries(client, ids) {
  const { access, deleteDefault, legacy } = ids;
  try {
    const r = await query(client, requestQuery(access));
    check(r && r.id === String(access), `get on nms:gdprRequest returns request ${access}`, JSON.stringify(r));
    if (r) {
      check(r.status === '0', 'status is 0 (new)', JSON.stringify(r));
      check(r.type === '1', 'type is 1 (access)', JSON.stringify(r));
      check(r.regulation === '1', 'regulation is 1 (GDPR)', JSON.stringify(r));
      check(r.reconciliationValue === 'x@example.com', 'reconciliationValue is x@example.com', JSON.stringify(r));
      check(typeof r.urlFile === 'string' && r.urlFile.endsWith(`/nms/gdpr.jssp?id=${access}`),
        `urlFile ends with /nms/gdpr.jssp?id=${access}`, JSON.stringify(r.urlFile));
      check(r.namespaceName === 'defaultNamespace1', '[namespace/@name] aliased @namespaceName is defaultNamespace1',
        JSON.stringify(r));
    }
  } catch (err) {
    check(false, 'get on nms:gdprRequest by id', describe(err));
  }
  try {
    const r = await query(client, requestQuery(deleteDefault));
    check(r && r.type === '2' && r.regulation === '1',
      'the 4-argument request (regulation sent as 0) is a delete under GDPR (regulation 1)', JSON.stringify(r));
  } catch (err) {
    check(false, 'get on nms:gdprRequest for the 4-argument request', describe(err));
  }
  try {
    const r = await query(client, { ...requestQuery(legacy), schema: 'nms:privacyRequest' });
    check(r && r.id === String(legacy) && r.regulation === '1' && r.namespaceName === 'defaultNamespace2',
      'get on nms:privacyRequest returns the legacy request (GDPR, defaultNamespace2)', JSON.stringify(r));
  } catch (err) {
    check(false, 'get on nms:privacyRequest for the legacy request', describe(err));
  }
  try {
    const r = await query(client, requestQuery(2147483000, 'getIfExists'));
    check(r === null, 'getIfExists on a missing id returns null', JSON.stringify(r));
  } catch (err) {
    check(false, 'getIfExists on a missing id', describe(err));
  }
  try {
    const err = await rejection(() => query(client, requestQuery(2147483000, 'get')));
    check(err !== undefined && !/does not implement/.test(err.detail || ''), 'get on a missing id fails',
      err === undefined ? 'it succeeded' : describe(err));
  } catch (err) {
    check(false, 'get on a missing id', describe(err));
  }
  try {
    const r = await query(client, {
      schema: 'nms:gdprRequest', operation: 'select', lineCount: 2,
      select: { node: [{ expr: '@id' }, { expr: '@status' }] },
      orderBy: { node: [{ expr: '@id' }] },
    });
    const rows = (r && r.gdprRequest) || [];
    check(rows.length === 2, 'select with lineCount=2 returns 2 of the 3 requests', JSON.stringify(r));
    const sorted = [access, deleteDefault, legacy].sort((a, b) => a - b);
    check(rows.length === 2 && rows[0].id === String(sorted[0]) && rows[1].id === String(sorted[1]),
      'the rows are ordered by @id', `${JSON.stringify(rows)} expected ids ${sorted.slice(0, 2)}`);
  } catch (err) {
    check(false, 'select on nms:gdprRequest with lineCount', describe(err));
  }
  try {
    const r = await query(client, {
      schema: 'nms:gdprRequest', operation: 'select',
      select: { node: [{ expr: '@id' }] },
      where: { condition: [{ expr: "@reconciliationValue = 'nobody@example.com'" }] },
    });
    check(r && Array.isArray(r.gdprRequest) && r.gdprRequest.length === 0, 'select with no match returns an empty array',
      JSON.stringify(r));
  } catch (err) {
    check(false, 'select with no match', describe(err));
  }
  // A status dashboard: functions, groupBy and having.
  try {
    const r = await query(client, {
      schema: 'nms:gdprRequest', operation: 'select',
      select: { node: [{ expr: '@type' }, { expr: 'count()', alias: '@requests' }, { expr: 'countDistinct([namespace/@name])' }] },
      groupBy: { node: [{ expr: '@type' }] },
      orderBy: { node: [{ expr: '@type' }] },
    });
    check(JSON.stringify(r && r.gdprRequest) === JSON.stringify([
      { type: '1', requests: '2', expr2: '2' }, { type: '2', requests: '1', expr2: '1' }]),
    'count() and countDistinct() grouped by @type', JSON.stringify(r));
  } catch (err) {
    check(false, 'select with count() and groupBy', describe(err));
  }
  try {
    const r = await query(client, {
      schema: 'nms:gdprRequest', operation: 'select',
      select: { node: [{ expr: '[namespace/@name]', alias: '@namespace' }, { expr: 'count()', alias: '@requests' }, { expr: 'Year(max(@created))', alias: '@year' }] },
      groupBy: { node: [{ expr: '[namespace/@name]' }] },
      having: { condition: [{ expr: 'count() > 1' }] },
    });
    const rows = (r && r.gdprRequest) || [];
    check(rows.length === 1 && rows[0].namespace === 'defaultNamespace1' && rows[0].requests === '2' && /^\d{4}$/.test(rows[0].year),
      'having count() > 1 keeps defaultNamespace1', JSON.stringify(r));
  } catch (err) {
    check(false, 'select with having', describe(err));
  }
  try {
    const r = await query(client, {
      schema: 'nms:gdprRequest', operation: 'get',
      select: { node: [{ expr: 'count()' }, { expr: 'min(@id)', alias: '@first' }] },
      where: { condition: [{ expr: "Lower(@reconciliationValue) = 'x@example.com' AND @created <= GetDate()" }] },
    });
    check(r && r.expr0 === '2' && r.first === String(Math.min(access, deleteDefault)), 'get with count() (no alias: expr0), min() and Lower()', JSON.stringify(r));
  } catch (err) {
    check(false, 'get with count()', describe(err));
  }
  checkFault(await rejection(() => query(client, { schema: 'nms:gdprRequest', select: { node: [{ expr: 'avg(@type)' }] } })),
    'a function outside the table', /unknown function 'avg'/);
  for (const schema of ['nms:gdprRequest', 'nms:privacyRequest']) {
    try {
      const r = await query(client, { schema, operation: 'count' });
      check(r && r.count === '3', `count on ${schema} is 3`, JSON.stringify(r));
    } catch (err) {
      check(false, `count on ${schema}`, describe(err));
    }
  }
}

async function checkUnprivileged(baseURL) {
  const login = process.env.CP_UNPRIVILEGED_LOGIN;
  const password = process.env.CP_UNPRIVILEGED_PASSWORD;
  if (!login || !password) return;
  const client = await sdk.init(sdk.ConnectionParameters.ofUserAndPassword(baseURL, login, password, options));
  await client.logon();
  check(client.isLogged(), `logon as ${login} (no privacyRight)`);
  const err = await rejection(() => client.NLWS.nmsPrivacyRequest.createRequestByName(
    'defaultNamespace1', 'x@example.com', 1, false, 1));
  checkFault(err, `createRequestByName as ${login} without privacyRight`, /privacyRight/);
  await client.logoff();
}

run(async () => {
  const { baseURL, login, password } = args;
  const client = await sdk.init(sdk.ConnectionParameters.ofUserAndPassword(baseURL, login, password, options));
  await client.logon();
  check(client.isLogged(), `logon as ${login}`);

  await checkSchemas(client);
  await checkWrite(client);

  const create = client.NLWS.nmsPrivacyRequest;
  const ids = {};

  // 5 arguments: access request under GDPR.
  ids.access = await create.createRequestByName('defaultNamespace1', 'x@example.com', 1, false, 1);
  check(isId(ids.access), 'nmsPrivacyRequest.createRequestByName(5 args) returns an integer id', describe(ids.access));

  // 4 arguments: the SDK sends regulation = 0, which means GDPR.
  ids.deleteDefault = await create.createRequestByName('defaultNamespace1', 'x@example.com', 2, true);
  check(isId(ids.deleteDefault) && ids.deleteDefault !== ids.access,
    'createRequestByName(4 args) returns a new integer id', describe(ids.deleteDefault));

  // The legacy schema, 4 parameters.
  ids.legacy = await client.NLWS.nmsGdprRequest.createRequestByName('defaultNamespace2', '+15550100', 1, false);
  check(isId(ids.legacy) && ids.legacy !== ids.access && ids.legacy !== ids.deleteDefault,
    'nmsGdprRequest.createRequestByName(4 args) returns a new integer id', describe(ids.legacy));

  // The same request while the first one is active: the same id.
  const again = await create.createRequestByName('defaultNamespace1', 'x@example.com', 1, false, 1);
  check(again === ids.access, 'an identical active request returns the same id', `${again} vs ${ids.access}`);

  checkFault(await rejection(() => create.createRequestByName('noSuchNamespace', 'x@example.com', 1, false, 1)),
    'createRequestByName with an unknown namespace', /noSuchNamespace/);
  checkFault(await rejection(() => create.createRequestByName('defaultNamespace1', 'x@example.com', 3, false, 1)),
    'createRequestByName with type 3');
  checkFault(await rejection(() => create.createRequestByName('defaultNamespace1', 'x@example.com', 1, false, 5)),
    'createRequestByName with regulation 5');
  checkFault(await rejection(() => create.createRequestByName('defaultNamespace1', '', 1, false, 1)),
    'createRequestByName with an empty reconciliation value');
  checkFault(await rejection(() => create.confirmDeletePending(ids.deleteDefault)),
    'confirmDeletePending on a fresh request');

  await checkQueries(client, ids);
  await checkUnprivileged(baseURL);

  await client.logoff();
  check(!client.isLogged(), 'logoff');
});
