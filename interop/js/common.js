'use strict';
// Shared helpers for the JavaScript interop scripts: argument parsing and
// check reporting. Each check prints one line ("ok - ..." or "FAIL - ...");
// finish() exits non-zero when any check failed.

function usage(script) {
  console.error(`usage: node ${script} <base-url> <login> <password> [expected-right]\n` +
    '  (or set CP_BASE_URL, CP_LOGIN, CP_PASSWORD, CP_EXPECT_RIGHT; CP_BAD_PASSWORD overrides\n' +
    '   the wrong password used for the negative case, default "<password>-wrong")');
  process.exit(2);
}

function parseArgs(script) {
  const argv = process.argv.slice(2);
  const baseURL = (argv[0] || process.env.CP_BASE_URL || '').replace(/\/+$/, '');
  const login = argv[1] || process.env.CP_LOGIN || '';
  const password = argv[2] || process.env.CP_PASSWORD || '';
  const right = argv[3] || process.env.CP_EXPECT_RIGHT || '';
  if (!baseURL || !login || !password) usage(script);
  const badPassword = process.env.CP_BAD_PASSWORD || `${password}-wrong`;
  return { baseURL, login, password, badPassword, right };
}

let failures = 0;

function check(cond, what, detail) {
  if (cond) {
    console.log(`ok - ${what}`);
  } else {
    failures++;
    console.log(`FAIL - ${what}${detail === undefined ? '' : `: ${detail}`}`);
  }
  return !!cond;
}

// describe renders an error (or any value) compactly for FAIL lines.
function describe(err) {
  if (err === undefined || err === null) return String(err);
  if (typeof err !== 'object') return String(err);
  const parts = [];
  for (const k of ['message', 'errorCode', 'faultCode', 'faultString', 'statusCode', 'detail']) {
    if (err[k] !== undefined && err[k] !== '') parts.push(`${k}=${JSON.stringify(err[k])}`);
  }
  return parts.length ? parts.join(' ') : JSON.stringify(err);
}

// run executes main, turning an unexpected exception into a failure.
function run(main) {
  main().catch((err) => {
    failures++;
    console.log(`FAIL - unexpected error: ${describe(err)}`);
    if (err && err.stack) console.log(err.stack);
  }).finally(() => {
    console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
    process.exit(failures === 0 ? 0 : 1);
  });
}

module.exports = { parseArgs, check, describe, run };
