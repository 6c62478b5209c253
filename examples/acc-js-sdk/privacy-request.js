'use strict';
// Create a privacy request with Adobe's acc-js-sdk and follow its status.
//
//   npm install @adobe/acc-js-sdk
//   CP_BASE_URL=http://localhost:8080 CP_LOGIN=privacy-api CP_PASSWORD=... \
//     node privacy-request.js [reconciliation-value]
//
// Optional environment: CP_NAMESPACE (default defaultNamespace1, the
// recipient's email), CP_TYPE (1 access, 2 delete; default 1), CP_REGULATION
// (1 GDPR, 2 CCPA, 3 PDPA, 4 LGPD; default 1), CP_POLL_SECONDS (how long to
// wait for the request to complete; default 0 = read the status once).
// The operator needs the named right privacyRight (or admin).
//
// The same code works against Adobe Campaign Classic: only the URL and the
// credentials change.

const sdk = require('@adobe/acc-js-sdk');

const env = (name, fallback) => process.env[name] || fallback;
const baseURL = env('CP_BASE_URL', 'http://localhost:8080');
const login = env('CP_LOGIN', '');
const password = env('CP_PASSWORD', '');
const value = process.argv[2] || 'john.doe@example.com';
const namespace = env('CP_NAMESPACE', 'defaultNamespace1');
const type = Number(env('CP_TYPE', '1'));
const regulation = Number(env('CP_REGULATION', '1'));
const pollSeconds = Number(env('CP_POLL_SECONDS', '0'));

// Statuses of nms:gdprRequest (the "status" enumeration of the schema).
const FINAL = new Set(['7', '8', '9']); // complete, error, errorDataNotFound

async function main() {
  if (!login || !password) {
    throw new Error('set CP_LOGIN and CP_PASSWORD (and CP_BASE_URL)');
  }
  // noStorage: no browser localStorage in node for the SDK's schema cache.
  const connection = sdk.ConnectionParameters.ofUserAndPassword(baseURL, login, password, { noStorage: true });
  const client = await sdk.init(connection);
  await client.logon();
  try {
    const NLWS = client.NLWS;

    // Create the request. An identical request that is still being processed
    // returns its id instead of a new one.
    const id = await NLWS.nmsPrivacyRequest.createRequestByName(namespace, value, type, false, regulation);
    console.log(`request id: ${id}`);

    // Poll its status with a queryDef "get" on nms:gdprRequest, the documented
    // way; the SDK returns the selected attributes as strings.
    const statusQuery = NLWS.xtkQueryDef.create({
      schema: 'nms:gdprRequest',
      operation: 'get',
      select: { node: [{ expr: '@id' }, { expr: '@status' }, { expr: '@type' }, { expr: '@regulation' }, { expr: '@urlFile' }] },
      where: { condition: [{ expr: `@id = ${id}` }] },
    });
    const deadline = Date.now() + pollSeconds * 1000;
    let request = await statusQuery.executeQuery();
    while (!FINAL.has(request.status) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5000));
      request = await statusQuery.executeQuery();
    }

    // The label of the status, from the schema's enumeration.
    const statusEnum = await client.application.getSysEnum('status', 'nms:gdprRequest');
    const status = statusEnum.values.find((v) => String(v.value) === request.status);
    console.log(`status: ${request.status} (${status ? status.label : 'unknown'})`);
    // For an access request, the data file is served here once complete.
    console.log(`file: ${request.urlFile}`);
  } finally {
    await client.logoff();
  }
}

main().catch((err) => {
  // SDK errors carry the ACC error code (e.g. SOP-330011) and the detail.
  console.error(`error: ${err.errorCode || ''} ${err.faultString || err.message} ${err.detail || ''}`);
  process.exit(1);
});
