#!/usr/bin/env node
// Real-browser checks of the console's defences where the browser is the
// attacker's tool (issue 15): headless Debian Chromium through
// playwright-core. Prints "ok - ..." or "FAIL - ..." per check and exits
// non-zero on the first failure.
//
//  1. Open redirect after logon: for each crafted target, the logon form is
//     filled and sent; where Chromium lands (its WHATWG URL parser reading
//     the Location) must be this service, and no request may leave it.
//  2. Login CSRF: a page on another site (CP_ATTACKER_URL, served by the Go
//     test) posts the logon form with the attacker's account; the victim's
//     browser must not end up logged on.
//
// Environment: CP_BASE_URL, CP_LOGIN, CP_PASSWORD (an operator of the
// service), CP_ATTACKER_URL, CP_CHROMIUM (default /usr/bin/chromium).
'use strict';

const { chromium } = require('playwright-core');

const env = (name, def) => {
  const v = process.env[name];
  if (v !== undefined && v !== '') return v;
  if (def === undefined) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return def;
};

const BASE = env('CP_BASE_URL').replace(/\/+$/, '');
const ORIGIN = new URL(BASE).origin;
const LOGIN = env('CP_LOGIN');
const PASSWORD = env('CP_PASSWORD');
const ATTACKER = env('CP_ATTACKER_URL');
const CHROMIUM = env('CP_CHROMIUM', '/usr/bin/chromium');
const TIMEOUT = 15000;

let browser;

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (err) {
    console.log(`FAIL - ${name}: ${err && err.message ? err.message.split('\n')[0] : err}`);
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
}

// Targets as an attacker writes them into a link, raw (the server decodes
// the query) or encoded once more.
const TARGETS = [
  '/%09/evil.example',
  '/%0d%0a/evil.example',
  '/%5cevil.example',
  '%5c%5cevil.example',
  '%09//evil.example',
  'https:evil.example',
  '/%2509/evil.example',
];
// The same through ACC's logon.jsp, which hands the target on.
const JSP_TARGETS = ['/%09/evil.example', '%2F%09%2Fevil.example%2Fprivacy%2F', '/%5c/evil.example'];

async function newPage() {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const away = [];
  // Nothing may leave the service (or, for the CSRF page, the attacker's
  // site): such a request is recorded and answered here with a stand-in
  // page, so no name is ever looked up and the landing shows in page.url().
  await context.route('**', (route) => {
    const u = new URL(route.request().url());
    if (u.origin === ORIGIN || u.origin === new URL(ATTACKER).origin) return route.continue();
    if (!away.includes(u.href)) away.push(u.href);
    return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>evil</title>evil' });
  });
  // A redirect's next request is seen here even when routing skips it.
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin !== ORIGIN && u.origin !== new URL(ATTACKER).origin && !away.includes(r.url())) away.push(r.url());
  });
  return { context, page, away };
}

// whatwgView opens entry, posts the logon form's own target outside the
// browser's navigation (so the raw Location is seen) and returns where
// Chromium's URL parser puts that Location, read against the service.
async function whatwgView(page, entry) {
  await page.goto(entry);
  const target = await page.locator('input[name="target"]').getAttribute('value');
  const resp = await page.request.post(`${BASE}/privacy/logon`, {
    form: { login: LOGIN, password: PASSWORD, target }, maxRedirects: 0, headers: { Origin: ORIGIN },
  });
  const location = resp.headers()['location'];
  assert(resp.status() === 303 && location !== undefined, `logon answered ${resp.status()}`);
  return page.evaluate(([l, b]) => new URL(l, b).href, [location, BASE]);
}

// logonThrough logs on from entry through the form, as a user would.
async function logonThrough(page, entry) {
  await page.goto(entry);
  await page.locator('#login').fill(LOGIN);
  await page.locator('#password').fill(PASSWORD);
  await Promise.all([
    page.waitForNavigation({ timeout: TIMEOUT }).catch(() => {}),
    page.getByRole('button', { name: 'Log on' }).click(),
  ]);
  await page.waitForLoadState('load').catch(() => {});
}

async function main() {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });

  const cases = TARGETS.map((t) => `/privacy/logon?target=${t}`).concat(JSP_TARGETS.map((t) => `/nl/jsp/logon.jsp?target=${t}`));
  const shared = await newPage();
  for (const entry of cases) {
    await check(`logon through ${entry} stays on the service`, async () => {
      const { page, away } = shared;
      const redirect = new URL(await whatwgView(page, BASE + entry));
      assert(redirect.origin === ORIGIN && redirect.pathname === '/privacy/', `the logon's Location reads as ${redirect.href}`);
      await logonThrough(page, BASE + entry);
      const landed = new URL(page.url());
      assert(away.length === 0, `the browser went to ${away.join(', ')} (now at ${landed.href})`);
      assert(landed.origin === ORIGIN, `landed on ${landed.href}`);
      assert(landed.pathname === '/privacy/', `landed on ${landed.pathname}, want the request list`);
    });
  }
  await shared.context.close();
  await check('a console page given as the target is reached after logon', async () => {
    const { context, page, away } = await newPage();
    await logonThrough(page, `${BASE}/privacy/logon?target=${encodeURIComponent('/privacy/namespaces')}`);
    const landed = new URL(page.url());
    await context.close();
    assert(away.length === 0 && landed.origin === ORIGIN && landed.pathname === '/privacy/namespaces', `landed on ${landed.href}`);
  });

  await check('a logon form posted from another site does not log the browser on', async () => {
    const { context, page, away } = await newPage();
    let status = 0;
    page.on('response', (r) => {
      if (r.request().method() === 'POST' && new URL(r.url()).pathname === '/privacy/logon') status = r.status();
    });
    await page.goto(ATTACKER);
    await page.waitForURL((u) => u.origin === ORIGIN, { timeout: TIMEOUT });
    await page.waitForLoadState('load');
    assert(status === 403, `the cross-site logon post was answered ${status}`);
    const cookies = await context.cookies(BASE);
    assert(!cookies.some((c) => c.name === '__sessiontoken' && c.value !== ''), 'the browser holds a session cookie');
    await page.goto(`${BASE}/privacy/`);
    assert(new URL(page.url()).pathname === '/privacy/logon', `the console opened at ${page.url()} without a logon`);
    await context.close();
    assert(away.length === 0, `the browser went to ${away.join(', ')}`);
  });

  await check('the console\'s own logon form still works', async () => {
    const { context, page } = await newPage();
    await logonThrough(page, `${BASE}/privacy/logon`);
    const landed = new URL(page.url());
    await context.close();
    assert(landed.origin === ORIGIN && landed.pathname === '/privacy/', `landed on ${landed.href}`);
  });

  await browser.close();
}

main().catch(async (err) => {
  console.log(`FAIL - ${err && err.stack ? err.stack : err}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
});
