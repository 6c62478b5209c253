'use strict';
// End-to-end test of the privacy engine with Adobe's own client,
// @adobe/acc-js-sdk, in phases that the Go test (interop/engine_test.go)
// interleaves with `campaign-privacy workflow run all` against the same
// database:
//
//   seed             xtkSession.write / writeCollection of three recipients
//                    (a@, b@, c@example.com, c@ with a mobile phone) and of
//                    their rows in nms:broadLogRcp, nms:subscription,
//                    nms:rcpGrpRel, cus:transaction and cus:transactionDetail
//                    (a shared nms:service and nms:group), then four
//                    requests through nmsPrivacyRequest.createRequestByName:
//                    access a@, 2-step delete b@, 1-step delete c@ by mobile
//                    phone, access nobody@example.com. Prints the state line.
//   check-collected  after the first run: statuses (access 7, 2-step
//                    delete 4, 1-step delete 7, unknown subject 9), the
//                    nms:gdprRequestData rows of the access request, c@'s
//                    rows gone and b@'s still there.
//   confirm          nmsPrivacyRequest.confirmDeletePending on b@'s request.
//   check-done       after the second run: b@'s request complete, row counts
//                    of every table (printed on the counts line for the Go
//                    test), the access file downloaded with the session
//                    cookie from /nms/gdpr.jssp.
//
//   node acc-js-sdk-engine.js <phase> <base-url> <login> <password>
//
// Every phase but seed reads the state printed by seed from CP_ENGINE_STATE.
// Needs the server started with CP_SCHEMAS_DIR=examples/schemas and an
// operator holding privacyRight. CP_TRACE=1 prints the SOAP traffic.

const sdk = require('@adobe/acc-js-sdk');
const { check, describe, run } = require('./common');

// Marker lines read by engine_test.go.
const STATE_MARKER = 'ENGINE_STATE ';
const COUNTS_MARKER = 'ENGINE_COUNTS ';

const STATUS = { new: '0', confirmDeletePending: '4', deletePending: '5', complete: '7', errorDataNotFound: '9' };

const SUBJECTS = {
  a: { email: 'a@example.com', firstName: 'Ana', lastName: 'Almeida' },
  b: { email: 'b@example.com', firstName: 'Bruno', lastName: 'Barros' },
  c: { email: 'c@example.com', firstName: 'Clara', lastName: 'Costa', mobilePhone: '+15550100042' },
};
const UNKNOWN = 'nobody@example.com';

// Per subject: 2 broad logs, 1 subscription, 1 list membership, 2
// transactions, 3 transaction lines (2 on the first, 1 on the second).
const PER_SUBJECT = { recipient: 1, broadLogRcp: 2, subscription: 1, rcpGrpRel: 1, transaction: 2, transactionDetail: 3 };

function usage() {
  console.error('usage: node acc-js-sdk-engine.js <seed|check-collected|confirm|check-done> <base-url> <login> <password>\n' +
    '  (phases after seed read the state line of seed from CP_ENGINE_STATE)');
  process.exit(2);
}

const [phase, rawBaseURL, login, password] = process.argv.slice(2);
if (!['seed', 'check-collected', 'confirm', 'check-done'].includes(phase) || !rawBaseURL || !login || !password) usage();
const baseURL = rawBaseURL.replace(/\/+$/, '');
const options = { noStorage: true, traceAPICalls: !!process.env.CP_TRACE };

function loadState() {
  const raw = process.env.CP_ENGINE_STATE;
  if (!raw) {
    console.error('CP_ENGINE_STATE is not set: run the seed phase first and pass its state line');
    process.exit(2);
  }
  return JSON.parse(raw);
}

// asArray turns a select result (an array, one object, or nothing) into an array.
function asArray(v) {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

function isId(v) {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

async function query(client, queryDef) {
  return client.NLWS.xtkQueryDef.create(queryDef).executeQuery();
}

// idOf returns the @id of the single row of schema matching condition.
async function idOf(client, schema, condition) {
  const r = await query(client, {
    schema, operation: 'get',
    select: { node: [{ expr: '@id' }] },
    where: { condition: [{ expr: condition }] },
  });
  const id = Number(r && r.id);
  if (!isId(id)) throw new Error(`get ${schema} where ${condition}: no id in ${JSON.stringify(r)}`);
  return id;
}

// selectIds returns the @id of every row of schema matching condition, in id order.
async function selectIds(client, schema, condition) {
  const name = schema.split(':')[1];
  const r = await query(client, {
    schema, operation: 'select',
    select: { node: [{ expr: '@id' }] },
    where: { condition: [{ expr: condition }] },
    orderBy: { node: [{ expr: '@id' }] },
  });
  return asArray(r && r[name]).map((row) => Number(row.id));
}

async function count(client, schema, condition) {
  const q = { schema, operation: 'count' };
  if (condition) q.where = { condition: [{ expr: condition }] };
  const r = await query(client, q);
  const n = Number(r && r.count);
  if (!Number.isInteger(n)) throw new Error(`count ${schema} where ${condition}: ${JSON.stringify(r)}`);
  return n;
}

async function logon() {
  const client = await sdk.init(sdk.ConnectionParameters.ofUserAndPassword(baseURL, login, password, options));
  await client.logon();
  if (!check(client.isLogged(), `[${phase}] logon as ${login}`)) throw new Error('logon failed');
  return client;
}

// ---- seed ------------------------------------------------------------------

async function seedSubject(client, key, subject, shared) {
  const recipient = subject.id;
  await client.NLWS.xtkSession.writeCollection({
    xtkschema: 'nms:broadLogRcp',
    broadLogRcp: [
      { _operation: 'insert', 'recipient-id': recipient, address: subject.email, deliveryLabel: 'Welcome', status: 1 },
      { _operation: 'insert', 'recipient-id': recipient, address: subject.email, deliveryLabel: 'Newsletter', status: 1 },
    ],
  });
  await client.NLWS.xtkSession.write({
    xtkschema: 'nms:subscription', _operation: 'insert', 'recipient-id': recipient, 'service-id': shared.service,
  });
  await client.NLWS.xtkSession.write({
    xtkschema: 'nms:rcpGrpRel', _operation: 'insert', 'recipient-id': recipient, 'rcpGroup-id': shared.group,
  });
  await client.NLWS.xtkSession.writeCollection({
    xtkschema: 'cus:transaction',
    transaction: [
      { _operation: 'insert', 'recipient-id': recipient, amount: 12.5, store: `store-${key}-1` },
      { _operation: 'insert', 'recipient-id': recipient, amount: 40, store: `store-${key}-2` },
    ],
  });
  const tx = await selectIds(client, 'cus:transaction', `@recipient-id = ${recipient}`);
  if (!check(tx.length === 2, `${subject.email}: the two cus:transaction rows are found by @recipient-id`, JSON.stringify(tx))) {
    throw new Error('transactions not found');
  }
  subject.transactions = tx;
  await client.NLWS.xtkSession.writeCollection({
    xtkschema: 'cus:transactionDetail',
    transactionDetail: [
      { _operation: 'insert', 'transaction-id': tx[0], product: `product-${key}-1`, quantity: 1, price: 10 },
      { _operation: 'insert', 'transaction-id': tx[0], product: `product-${key}-2`, quantity: 1, price: 2.5 },
      { _operation: 'insert', 'transaction-id': tx[1], product: `product-${key}-3`, quantity: 4, price: 10 },
    ],
  });
  check(true, `${subject.email}: seeded nms:broadLogRcp, nms:subscription, nms:rcpGrpRel, cus:transaction, cus:transactionDetail`);
}

async function seed() {
  const client = await logon();
  const state = { subjects: {}, shared: {}, requests: {} };

  // Recipients: a@ with write, b@ and c@ with writeCollection.
  const { a, b, c } = SUBJECTS;
  await client.NLWS.xtkSession.write({ xtkschema: 'nms:recipient', _operation: 'insert', ...a });
  check(true, 'xtkSession.write inserts a@example.com');
  await client.NLWS.xtkSession.writeCollection({
    xtkschema: 'nms:recipient',
    recipient: [{ _operation: 'insert', ...b }, { _operation: 'insert', ...c }],
  });
  check(true, 'xtkSession.writeCollection inserts b@ and c@example.com');
  for (const [key, s] of Object.entries(SUBJECTS)) {
    const id = await idOf(client, 'nms:recipient', `@email = '${s.email}'`);
    state.subjects[key] = { ...s, id };
    check(isId(id), `get nms:recipient @id of ${s.email}`, JSON.stringify(id));
  }
  const byPhone = await idOf(client, 'nms:recipient', `@mobilePhone = '${c.mobilePhone}'`);
  check(byPhone === state.subjects.c.id, 'c@example.com is found by @mobilePhone', `${byPhone} vs ${state.subjects.c.id}`);

  // The shared rows: one service, one list.
  await client.NLWS.xtkSession.write({ xtkschema: 'nms:service', _operation: 'insert', name: 'engineNews', label: 'Engine news' });
  state.shared.service = await idOf(client, 'nms:service', "@name = 'engineNews'");
  await client.NLWS.xtkSession.write({ xtkschema: 'nms:group', _operation: 'insert', name: 'engineList', label: 'Engine list' });
  state.shared.group = await idOf(client, 'nms:group', "@name = 'engineList'");
  check(isId(state.shared.service) && isId(state.shared.group), 'shared nms:service and nms:group created',
    JSON.stringify(state.shared));

  for (const [key, s] of Object.entries(state.subjects)) await seedSubject(client, key, s, state.shared);

  // Every table holds what was written, per subject.
  const counts = await countAll(client, state);
  for (const [key, s] of Object.entries(state.subjects)) {
    checkSubjectCounts(counts[key], PER_SUBJECT, `after seeding, ${s.email}`);
  }

  // The requests.
  const create = client.NLWS.nmsPrivacyRequest;
  const r = state.requests;
  r.access = await create.createRequestByName('defaultNamespace1', a.email, 1, false, 1);
  r.twoStep = await create.createRequestByName('defaultNamespace1', b.email, 2, true, 1);
  r.oneStep = await create.createRequestByName('defaultNamespace2', c.mobilePhone, 2, false, 1);
  r.unknown = await create.createRequestByName('defaultNamespace1', UNKNOWN, 1, false, 1);
  const ids = Object.values(r);
  check(ids.every(isId) && new Set(ids).size === 4, 'createRequestByName returns four distinct ids', JSON.stringify(r));
  for (const [name, id] of Object.entries(r)) {
    const row = await requestRow(client, id);
    check(row.status === STATUS.new, `request ${name} (${id}) is new (status 0)`, JSON.stringify(row));
  }

  await client.logoff();
  console.log(STATE_MARKER + JSON.stringify(state));
}

// ---- checks ----------------------------------------------------------------

async function requestRow(client, id) {
  return query(client, {
    schema: 'nms:gdprRequest', operation: 'get',
    select: { node: [{ expr: '@id' }, { expr: '@status' }, { expr: '@urlFile' }, { expr: '@regulation' }, { expr: '@type' }] },
    where: { condition: [{ expr: `@id = ${id}` }] },
  });
}

async function checkStatus(client, name, id, want) {
  const row = await requestRow(client, id);
  check(row && row.status === want, `request ${name} (${id}) has status ${want}`, JSON.stringify(row));
  check(row && row.regulation === '1', `request ${name} (${id}) has regulation 1 (GDPR)`, JSON.stringify(row));
  check(row && typeof row.urlFile === 'string' && row.urlFile.endsWith(`/nms/gdpr.jssp?id=${id}`),
    `request ${name} (${id}) has urlFile .../nms/gdpr.jssp?id=${id}`, JSON.stringify(row && row.urlFile));
  return row;
}

// countAll counts, per subject, its rows in every table (by recipient-id,
// and the transaction lines by transaction-id), plus the shared rows and
// the table totals.
async function countAll(client, state) {
  const out = {};
  for (const [key, s] of Object.entries(state.subjects)) {
    const byRcp = `@recipient-id = ${s.id}`;
    out[key] = {
      recipient: await count(client, 'nms:recipient', `@id = ${s.id}`),
      broadLogRcp: await count(client, 'nms:broadLogRcp', byRcp),
      subscription: await count(client, 'nms:subscription', byRcp),
      rcpGrpRel: await count(client, 'nms:rcpGrpRel', byRcp),
      transaction: await count(client, 'cus:transaction', byRcp),
      transactionDetail: await count(client, 'cus:transactionDetail', `@transaction-id IN (${s.transactions.join(', ')})`),
    };
  }
  out.shared = {
    service: await count(client, 'nms:service', `@id = ${state.shared.service}`),
    group: await count(client, 'nms:group', `@id = ${state.shared.group}`),
  };
  out.total = {};
  for (const schema of ['nms:recipient', 'nms:broadLogRcp', 'nms:subscription', 'nms:rcpGrpRel',
    'cus:transaction', 'cus:transactionDetail', 'nms:service', 'nms:group']) {
    out.total[schema] = await count(client, schema);
  }
  return out;
}

function checkSubjectCounts(got, want, what) {
  for (const [table, n] of Object.entries(want)) {
    check(got[table] === n, `${what}: ${n} row(s) in ${table}`, `got ${got[table]}`);
  }
}

const NONE = { recipient: 0, broadLogRcp: 0, subscription: 0, rcpGrpRel: 0, transaction: 0, transactionDetail: 0 };

async function checkCollected() {
  const state = loadState();
  const client = await logon();
  const r = state.requests;
  await checkStatus(client, 'access a@', r.access, STATUS.complete);
  await checkStatus(client, '2-step delete b@', r.twoStep, STATUS.confirmDeletePending);
  await checkStatus(client, '1-step delete c@ (mobile phone)', r.oneStep, STATUS.complete);
  await checkStatus(client, 'access nobody@', r.unknown, STATUS.errorDataNotFound);

  // What the access request found, per table.
  for (const condition of [`[@gdprRequest-id] = ${r.access}`, `@gdprRequest-id = ${r.access}`]) {
    const res = await query(client, {
      schema: 'nms:gdprRequestData', operation: 'select',
      select: { node: [{ expr: '@id' }, { expr: '@tableName' }, { expr: '@recordCount' }] },
      where: { condition: [{ expr: condition }] },
    });
    const rows = asArray(res && res.gdprRequestData);
    const byTable = Object.fromEntries(rows.map((row) => [row.tableName, row.recordCount]));
    check(rows.length > 0, `nms:gdprRequestData where ${condition} has rows`, JSON.stringify(res));
    check(byTable['nms:recipient'] === '1', `nms:gdprRequestData of the access request: nms:recipient, 1 record`, JSON.stringify(rows));
    check(byTable['cus:transaction'] === '2', `nms:gdprRequestData of the access request: cus:transaction, 2 records`, JSON.stringify(rows));
    check(byTable['cus:transactionDetail'] === '3', `nms:gdprRequestData of the access request: cus:transactionDetail, 3 records`, JSON.stringify(rows));
    check(byTable['nms:broadLogRcp'] === '2', `nms:gdprRequestData of the access request: nms:broadLogRcp, 2 records`, JSON.stringify(rows));
    check(!('nms:service' in byTable) && !('nms:group' in byTable),
      'nms:gdprRequestData of the access request: no shared nms:service / nms:group', JSON.stringify(rows));
  }
  const unknownData = await count(client, 'nms:gdprRequestData', `@gdprRequest-id = ${r.unknown}`);
  check(unknownData === 0, 'nms:gdprRequestData of the unknown subject is empty', `got ${unknownData}`);

  // The 1-step delete ran in the same "all": c@ is gone; b@ waits for confirmation.
  const counts = await countAll(client, state);
  checkSubjectCounts(counts.a, PER_SUBJECT, 'after the first run, a@ (access)');
  checkSubjectCounts(counts.b, PER_SUBJECT, 'after the first run, b@ (awaiting confirmation)');
  checkSubjectCounts(counts.c, NONE, 'after the first run, c@ (deleted)');

  await client.logoff();
}

async function confirm() {
  const state = loadState();
  const client = await logon();
  const id = state.requests.twoStep;
  await client.NLWS.nmsPrivacyRequest.confirmDeletePending(id);
  check(true, `nmsPrivacyRequest.confirmDeletePending(${id})`);
  const row = await requestRow(client, id);
  check(row.status === STATUS.deletePending, `request 2-step delete b@ (${id}) is deletePending (5) after the confirmation`,
    JSON.stringify(row));
  await client.logoff();
}

async function download(client, id) {
  const res = await fetch(`${baseURL}/nms/gdpr.jssp?id=${id}`, {
    headers: { Cookie: `__sessiontoken=${client._sessionToken}`, 'X-Security-Token': client._securityToken },
    redirect: 'manual',
  });
  return { status: res.status, type: res.headers.get('content-type') || '', body: await res.text() };
}

async function checkDone() {
  const state = loadState();
  const client = await logon();
  const r = state.requests;
  await checkStatus(client, '2-step delete b@', r.twoStep, STATUS.complete);
  await checkStatus(client, 'access a@', r.access, STATUS.complete);
  await checkStatus(client, '1-step delete c@ (mobile phone)', r.oneStep, STATUS.complete);
  await checkStatus(client, 'access nobody@', r.unknown, STATUS.errorDataNotFound);

  const counts = await countAll(client, state);
  checkSubjectCounts(counts.a, PER_SUBJECT, 'at the end, a@ (access only)');
  checkSubjectCounts(counts.b, NONE, 'at the end, b@ (deleted after confirmation)');
  checkSubjectCounts(counts.c, NONE, 'at the end, c@ (deleted in one step)');
  check(counts.shared.service === 1 && counts.shared.group === 1, 'the shared nms:service and nms:group remain',
    JSON.stringify(counts.shared));
  const wantTotal = {
    'nms:recipient': 1, 'nms:broadLogRcp': 2, 'nms:subscription': 1, 'nms:rcpGrpRel': 1,
    'cus:transaction': 2, 'cus:transactionDetail': 3, 'nms:service': 1, 'nms:group': 1,
  };
  for (const [schema, n] of Object.entries(wantTotal)) {
    check(counts.total[schema] === n, `at the end, ${schema} holds ${n} row(s) in all (a@'s and the shared ones)`,
      `got ${counts.total[schema]}`);
  }
  console.log(COUNTS_MARKER + JSON.stringify(counts));

  // The access file, with the SOAP session as a cookie.
  const file = await download(client, r.access);
  check(file.status === 200, `GET /nms/gdpr.jssp?id=${r.access} with the session cookie: 200`,
    `HTTP ${file.status}: ${file.body.slice(0, 300)}`);
  check(/xml/.test(file.type), 'the access file is XML', file.type);
  check(file.body.includes('<gdprRequestData'), 'the access file is a <gdprRequestData> document', file.body.slice(0, 300));
  check(file.body.includes('email="a@example.com"'), 'the access file holds email="a@example.com"', file.body.slice(0, 500));
  check(file.body.includes('<table name="cus:transaction">'), 'the access file holds <table name="cus:transaction">',
    file.body.slice(0, 500));
  check(file.body.includes('<table name="cus:transactionDetail">'), 'the access file holds <table name="cus:transactionDetail">',
    file.body.slice(0, 500));
  check(!file.body.includes('b@example.com') && !file.body.includes('c@example.com') && !file.body.includes(SUBJECTS.c.mobilePhone),
    'the access file holds nothing of b@ or c@');

  // A wrong security token is refused (a cookie alone is enough for a GET,
  // as in ACC's web pages; a security token is checked whenever given), and
  // so is a download without any session.
  const wrongSecurity = await fetch(`${baseURL}/nms/gdpr.jssp?id=${r.access}`, {
    headers: { Cookie: `__sessiontoken=${client._sessionToken}`, 'X-Security-Token': 'wrong' }, redirect: 'manual',
  });
  check(wrongSecurity.status !== 200, 'the download with the cookie and a wrong X-Security-Token is refused',
    `HTTP ${wrongSecurity.status}`);
  const anonymous = await fetch(`${baseURL}/nms/gdpr.jssp?id=${r.access}`, { redirect: 'manual' });
  check(anonymous.status !== 200, 'the download without a session is refused', `HTTP ${anonymous.status}`);

  await client.logoff();
}

run(async () => {
  try {
    switch (phase) {
      case 'seed': return await seed();
      case 'check-collected': return await checkCollected();
      case 'confirm': return await confirm();
      case 'check-done': return await checkDone();
    }
  } catch (err) {
    check(false, `[${phase}] ${err && err.message ? err.message : 'error'}`, describe(err));
    if (err && err.stack) console.log(err.stack);
  }
  return undefined;
});
