#!/usr/bin/env node
// Real-browser test of the campaign-privacy web console: headless Debian
// Chromium (/usr/bin/chromium) driven by playwright-core, through the UI
// only (clicks and typing). Prints one line per check ("ok - ..." or
// "FAIL - ...") and exits non-zero on the first failure.
//
// Environment:
//   CP_BASE_URL          the service, e.g. http://127.0.0.1:8080 (required)
//   CP_ADMIN_LOGIN       operator holding privacyRight and admin (default root)
//   CP_ADMIN_PASSWORD    its password (required)
//   CP_NORIGHT_LOGIN     operator without privacyRight (default bob)
//   CP_NORIGHT_PASSWORD  its password (required)
//   CP_ARTIFACTS         directory for screenshots (default ./artifacts)
//   CP_CHROMIUM          browser binary (default /usr/bin/chromium)
//
// The service must hold demo recipients demo-1..3@example.com and the
// namespace defaultNamespace1 (email).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
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
const ADMIN = { login: env('CP_ADMIN_LOGIN', 'root'), password: env('CP_ADMIN_PASSWORD') };
const NORIGHT = { login: env('CP_NORIGHT_LOGIN', 'bob'), password: env('CP_NORIGHT_PASSWORD') };
const ARTIFACTS = path.resolve(env('CP_ARTIFACTS', 'artifacts'));
const CHROMIUM = env('CP_CHROMIUM', '/usr/bin/chromium');
const TIMEOUT = 15000;

const ACCESS_SUBJECT = 'demo-2@example.com';
const OTHER_SUBJECT = 'demo-3@example.com';
const DELETE_SUBJECT = 'demo-1@example.com';
const NAMESPACE = 'defaultNamespace1';

let browser;
let page;
let checks = 0;

// Everything the browser saw go wrong; checked at the end of each phase.
const problems = [];
let faviconMissing = false;
let allowStatus = 0; // an HTTP error status the current check expects

function fail(msg) {
  throw new Error(msg);
}

function assert(cond, msg) {
  if (!cond) fail(msg);
}

// Cosmetic checks (a notice, a colour) are fatal too; CP_STRICT=0 turns
// them into "warn - ..." lines while a page is being reworked.
const STRICT = process.env.CP_STRICT !== '0';
const warnings = [];

async function soft(name, fn) {
  if (STRICT) return check(name, fn);
  checks++;
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (err) {
    const msg = `${name}: ${err && err.message ? err.message.split('\n')[0] : err} (at ${page.url()})`;
    warnings.push(msg);
    console.log(`warn - ${msg}`);
  }
}

// check runs one named check; on failure it saves a screenshot and exits.
async function check(name, fn) {
  checks++;
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (err) {
    console.log(`FAIL - ${name}: ${err && err.message ? err.message.split('\n')[0] : err}`);
    if (page) {
      console.log(`       at ${page.url()}`);
      try {
        const body = (await page.locator('body').innerText({ timeout: 2000 })).replace(/\s+/g, ' ').slice(0, 600);
        console.log(`       page text: ${body}`);
        const shot = path.join(ARTIFACTS, `failure-${checks}.png`);
        await page.screenshot({ path: shot, fullPage: true });
        fs.writeFileSync(shot.replace(/\.png$/, '.html'), await page.content());
        console.log(`       screenshot: ${shot} (and .html)`);
      } catch (_) { /* the page may be gone */ }
    }
    for (const p of problems) console.log(`       browser: ${p}`);
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
}

const text = async (selector) => (await page.locator(selector).first().innerText({ timeout: TIMEOUT })).trim();
const squash = (s) => s.replace(/\s+/g, ' ').trim();

// A request's id from a detail URL /privacy/requests/N.
function idFromURL(u) {
  const m = new URL(u).pathname.match(/^\/privacy\/requests\/(\d+)$/);
  assert(m, `not a request detail page: ${u}`);
  return m[1];
}

async function expectPath(want) {
  await page.waitForURL((u) => u.pathname === want, { timeout: TIMEOUT }).catch(() => {});
  const got = new URL(page.url()).pathname;
  assert(got === want, `expected path ${want}, got ${got}`);
}

async function statusOnDetail() {
  return text('.bar .status');
}

// The status shown in the list row of request id.
async function statusInList(id) {
  const row = page.locator('tbody tr').filter({ has: page.locator(`a[href="/privacy/requests/${id}"]`) });
  assert((await row.count()) === 1, `request ${id} is not in the list`);
  return (await row.locator('.status').innerText()).trim();
}

async function goToList() {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Requests' }).click();
  await expectPath('/privacy/');
}

async function runWorkflows() {
  await goToList();
  await page.locator('#run-workflows').click();
  await page.waitForURL((u) => u.pathname === '/privacy/' && u.searchParams.has('notice'), { timeout: 60000 });
  // The URL carries a notice code; the report's text comes from the run.
  const code = new URL(page.url()).searchParams.get('notice');
  assert(code === 'workflows', `unexpected notice code in the URL after running the workflows: ${code}`);
  if (!workflowNoticeChecked) {
    workflowNoticeChecked = true;
    await soft('the "Workflows run: ..." notice of the run is shown on the list page', async () => {
      const n = await page.locator('.alert.notice').count();
      assert(n === 1, 'no notice on the page after running the workflows');
      const shown = await text('.alert.notice');
      assert(/^Workflows run: collectPrivacyRequests: \d+ processed/.test(shown), `notice text is not the run's report: ${shown}`);
    });
  }
}
let workflowNoticeChecked = false;

// The status pill of a complete request is green (CSS class s7).
async function completePillIsGreen(pill) {
  const bg = await pill.evaluate((e) => getComputedStyle(e).backgroundColor);
  assert(bg === 'rgb(231, 246, 236)', `"Complete" pill background ${bg}, want rgb(231, 246, 236) (class "${await pill.getAttribute('class')}")`);
}

// newRequest fills the "New request" form through the UI and returns the id.
async function newRequest({ type, value, twoStep, shot }) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New request' }).click();
  await expectPath('/privacy/new');
  await page.locator('#regulation').selectOption({ label: 'GDPR' });
  await page.locator(`input[name="type"][value="${type}"]`).check();
  await page.locator('#namespace').selectOption(NAMESPACE);
  await page.getByLabel('Reconciliation value').click();
  await page.getByLabel('Reconciliation value').pressSequentially(value);
  const box = page.locator('input[type="checkbox"][name="confirm"]');
  await box.setChecked(twoStep);
  assert((await box.isChecked()) === twoStep, '2-step checkbox did not take');
  if (shot) await page.screenshot({ path: path.join(ARTIFACTS, shot), fullPage: true });
  await page.locator('#create').click();
  await page.waitForURL(/\/privacy\/requests\/\d+/, { timeout: TIMEOUT });
  return idFromURL(page.url());
}

async function logon(who) {
  await page.locator('#login').click();
  await page.locator('#login').fill('');
  await page.locator('#login').pressSequentially(who.login);
  await page.locator('#password').click();
  await page.locator('#password').pressSequentially(who.password);
  await page.getByRole('button', { name: 'Log on' }).click();
}

async function readDownload(trigger) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: TIMEOUT }), trigger()]);
  const file = await download.path();
  assert(file, `download failed: ${await download.failure()}`);
  return { name: download.suggestedFilename(), url: download.url(), body: fs.readFileSync(file, 'utf8') };
}

function checkFile(f, id) {
  assert(f.name === `privacyRequest${id}.xml`, `file name ${f.name}, want privacyRequest${id}.xml`);
  assert(f.body.includes('<gdprRequestData'), 'file has no <gdprRequestData');
  assert(f.body.includes(`email="${ACCESS_SUBJECT}"`), `file has no email="${ACCESS_SUBJECT}"`);
  assert(!f.body.includes(OTHER_SUBJECT), `file mentions ${OTHER_SUBJECT}`);
}

async function noBrowserProblems() {
  if (problems.length) fail(`${problems.length} problem(s): ${problems.join(' | ')}`);
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(TIMEOUT);
  page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error at ${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (allowStatus && m.text().includes(`status of ${allowStatus}`)) return;
    const where = m.location() && m.location().url;
    // Chromium asks for /favicon.ico on its own; the service has none (404).
    if (where && new URL(where).pathname === '/favicon.ico') {
      faviconMissing = true;
      return;
    }
    problems.push(`console error at ${page.url()} (${where || '?'}): ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() < 400) return;
    if (r.status() === allowStatus) return;
    problems.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => {
    // A download navigation is "aborted" from the page's point of view.
    if (/\/nms\/gdpr\.jssp/.test(r.url())) return;
    problems.push(`request failed ${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`);
  });

  await check('unauthenticated /privacy/ redirects to the logon page', async () => {
    const resp = await page.goto(`${BASE}/privacy/`);
    assert(resp && resp.ok(), `status ${resp && resp.status()}`);
    await expectPath('/privacy/logon');
    assert((await text('h1')) === 'Log on', 'no "Log on" heading');
  });

  await check('stylesheet loads (styled logon page)', async () => {
    const resp = await page.request.get(`${BASE}/privacy/static/app.css`);
    assert(resp.status() === 200, `app.css status ${resp.status()}`);
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert(bg === 'rgb(246, 247, 249)', `body background ${bg}: stylesheet not applied`);
  });

  await check('keyboard: login field has focus, Tab → password → Log on button', async () => {
    const focused = () => page.evaluate(() => {
      const e = document.activeElement;
      return e ? `${e.tagName.toLowerCase()}#${e.id}[${e.getAttribute('type') || ''}]${e.textContent.trim()}` : '';
    });
    let f = await focused();
    assert(f.startsWith('input#login'), `autofocus: focused ${f}`);
    await page.keyboard.press('Tab');
    f = await focused();
    assert(f.startsWith('input#password'), `after 1 Tab: focused ${f}, want #password`);
    await page.keyboard.press('Tab');
    f = await focused();
    assert(f.startsWith('button') && f.endsWith('Log on'), `after 2 Tabs: focused ${f}, want the Log on button`);
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'logon.png'), fullPage: true });

  await check('wrong password is refused on the logon page', async () => {
    allowStatus = 401;
    const [resp] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/privacy/logon' && r.request().method() === 'POST'),
      logon({ login: ADMIN.login, password: 'not the password' }),
    ]);
    assert(resp.status() === 401, `status ${resp.status()}, want 401`);
    await page.waitForLoadState();
    const alert = await text('.alert.error');
    assert(alert === 'Invalid login or password.', `alert: ${alert}`);
    assert((await page.locator('#login').inputValue()) === ADMIN.login, 'login not kept in the form');
    allowStatus = 0;
  });

  await check(`log on as admin operator ${ADMIN.login}`, async () => {
    await page.goto(`${BASE}/privacy/logon`);
    await logon(ADMIN);
    await expectPath('/privacy/');
    assert((await text('.who')) === ADMIN.login, 'logged-on login not shown');
    await page.locator('#run-workflows').waitFor({ state: 'visible' });
  });

  let accessID;
  await check(`create access request for ${ACCESS_SUBJECT} (GDPR, ${NAMESPACE}): detail page, status New`, async () => {
    accessID = await newRequest({ type: 1, value: ACCESS_SUBJECT, twoStep: false });
    assert((await text('.alert.notice')) === 'Request created.', 'no "Request created." notice');
    const st = await statusOnDetail();
    assert(st === 'New', `status ${st}, want New`);
    const dl = squash(await text('dl')).toLowerCase();
    for (const want of ['Type Access', 'Regulation GDPR', `Reconciliation value ${ACCESS_SUBJECT}`, '2-step process no']) {
      assert(dl.includes(want.toLowerCase()), `detail lacks "${want}": ${dl}`);
    }
    assert((await page.locator('#download').count()) === 0, 'Download button shown before the workflows ran');
  });

  await check('run workflows now (admin): access request Complete in the list', async () => {
    await runWorkflows();
    const st = await statusInList(accessID);
    assert(st === 'Complete', `status ${st}, want Complete`);
  });

  await soft('the "Complete" status pill is coloured (green)', async () => {
    await completePillIsGreen(page.locator('tbody tr .status').first());
  });

  await check('open the request, click Download: privacyRequestN.xml with the subject only', async () => {
    await page.locator(`a[href="/privacy/requests/${accessID}"]`).click();
    await expectPath(`/privacy/requests/${accessID}`);
    assert((await statusOnDetail()) === 'Complete', 'detail status not Complete');
    const f = await readDownload(() => page.locator('#download').click());
    checkFile(f, accessID);
    assert(new URL(f.url).pathname === '/nms/gdpr.jssp' && new URL(f.url).searchParams.get('id') === accessID,
      `download URL ${f.url}`);
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'detail.png'), fullPage: true });

  await check('"Download page to hand out": CLICK TO DOWNLOAD link downloads the same file', async () => {
    await page.getByRole('link', { name: 'Download page to hand out' }).click();
    await page.waitForURL((u) => u.pathname === '/privacy/download', { timeout: TIMEOUT });
    assert(new URL(page.url()).searchParams.get('id') === accessID, `URL ${page.url()}`);
    assert((await text('h1')) === 'DOWNLOAD GDPR DATA', 'heading');
    const link = page.locator('#click-to-download');
    assert((await link.innerText()).trim() === 'CLICK TO DOWNLOAD', 'link text');
    assert((await link.getAttribute('href')) === `/nms/gdpr.jssp?id=${accessID}`, `href ${await link.getAttribute('href')}`);
    const f = await readDownload(() => link.click());
    checkFile(f, accessID);
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'download-page.png'), fullPage: true });

  let deleteID;
  await check(`create 2-step delete request for ${DELETE_SUBJECT}: status New`, async () => {
    deleteID = await newRequest({ type: 2, value: DELETE_SUBJECT, twoStep: true, shot: 'new-form.png' });
    assert((await statusOnDetail()) === 'New', 'status not New');
    const dl = squash(await text('dl')).toLowerCase();
    assert(dl.includes('type delete') && dl.includes('2-step process yes'), `detail: ${dl}`);
  });

  await check('run workflows: delete request Confirm Delete Pending with "Confirm delete data"', async () => {
    await runWorkflows();
    const st = await statusInList(deleteID);
    assert(st === 'Confirm Delete Pending', `list status ${st}`);
    await page.locator(`a[href="/privacy/requests/${deleteID}"]`).click();
    await expectPath(`/privacy/requests/${deleteID}`);
    assert((await statusOnDetail()) === 'Confirm Delete Pending', 'detail status');
    const btn = page.locator('#confirm-delete');
    await btn.waitFor({ state: 'visible' });
    assert((await btn.innerText()).trim() === 'Confirm delete data', 'button text');
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'detail-confirm.png'), fullPage: true });

  await check('click "Confirm delete data": confirmed, button gone', async () => {
    await page.locator('#confirm-name').fill(`privacyRequest${deleteID}`);
    await page.locator('#confirm-delete').click();
    await page.waitForURL((u) => u.pathname === `/privacy/requests/${deleteID}` && u.searchParams.has('notice'), { timeout: TIMEOUT });
    assert((await text('.alert.notice')) === 'Deletion confirmed.', 'no "Deletion confirmed." notice');
    assert((await page.locator('#confirm-delete').count()) === 0, 'confirm button still shown');
    const st = await statusOnDetail();
    assert(st !== 'Confirm Delete Pending', `status still ${st}`);
  });

  await check('run workflows again: delete request Complete (list and detail)', async () => {
    await runWorkflows();
    const st = await statusInList(deleteID);
    assert(st === 'Complete', `list status ${st}, want Complete`);
    await page.locator(`a[href="/privacy/requests/${deleteID}"]`).click();
    assert((await statusOnDetail()) === 'Complete', 'detail status not Complete');
  });

  await check('screenshots of the list (1280px and 400px wide)', async () => {
    await goToList();
    await page.screenshot({ path: path.join(ARTIFACTS, 'list.png'), fullPage: true });
    await page.setViewportSize({ width: 400, height: 800 });
    await page.reload();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await page.screenshot({ path: path.join(ARTIFACTS, 'list-narrow.png'), fullPage: true });
    await page.goto(`${BASE}/privacy/requests/${accessID}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'detail-narrow.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    assert(overflow <= 0, `the 400px-wide list page scrolls sideways by ${overflow}px (only the table should)`);
  });

  await check('no page errors, console errors or failed requests so far', noBrowserProblems);

  await check('log off: back on the logon page, session gone', async () => {
    await page.getByRole('button', { name: 'Log off' }).click();
    await expectPath('/privacy/logon');
    await page.goto(`${BASE}/privacy/`);
    await expectPath('/privacy/logon');
  });

  await check(`operator ${NORIGHT.login} without privacyRight: 403 "Access denied" on /privacy/`, async () => {
    allowStatus = 403;
    const [resp] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/privacy/' && r.request().method() === 'GET'),
      logon(NORIGHT),
    ]);
    assert(resp.status() === 403, `after logon: status ${resp.status()}, want 403`);
    await page.waitForLoadState();
    assert((await text('h1')) === 'Access denied', `heading ${await text('h1')}`);
    const alert = await text('.detail');
    assert(alert.includes('privacyRight'), `alert: ${alert}`);
    const again = await page.goto(`${BASE}/privacy/`);
    assert(again.status() === 403, `reload: status ${again.status()}`);
    assert((await page.locator('#run-workflows').count()) === 0, 'run-workflows button shown');
    await page.screenshot({ path: path.join(ARTIFACTS, 'denied.png'), fullPage: true });
    const file = await page.goto(`${BASE}/nms/gdpr.jssp?id=${accessID}`).catch((e) => e);
    assert(!(file instanceof Error) && file.status() === 403, `download as ${NORIGHT.login}: ${file instanceof Error ? file.message : file.status()}`);
    allowStatus = 0;
  });

  await check('no unexpected page errors, console errors or failed requests', noBrowserProblems);

  await browser.close();
  for (const w of warnings) console.log(`# warning: ${w}`);
  if (faviconMissing) console.log('# note: /favicon.ico answers 404 (Chromium asks for it on its own)');
  console.log(`# ${checks} checks, ${checks - warnings.length} passed, ${warnings.length} warning(s); screenshots in ${ARTIFACTS}`);
}

main().catch(async (err) => {
  console.log(`FAIL - unexpected: ${err && err.stack ? err.stack : err}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
});
