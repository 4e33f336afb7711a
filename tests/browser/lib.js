// Helpers of the browser tests: Debian's Chromium driven by playwright-core,
// axe-core for accessibility, a tiny sequential test runner.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');

const BASE = process.env.MOTCUA_BASE_URL || 'http://127.0.0.1:8080';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, 'artifacts');
const PASSWORD = 'motcua-demo';
const BIRTH = '1.001193';

// The viewports of the people who use the pages: a cheap phone for the
// citizen, a desktop at the counter.
const PHONE = { width: 412, height: 915 };
const DESKTOP = { width: 1280, height: 800 };

const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

async function launch() {
  // launch() gives every run a fresh temporary profile (user-data-dir);
  // nothing is downloaded: the browser is Debian's.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** A browser context for one person: its own cookies, language and screen. */
async function person(browser, { locale = 'vi-VN', viewport = PHONE, js = true, axe = false } = {}) {
  const context = await browser.newContext({
    baseURL: BASE,
    locale,
    viewport,
    javaScriptEnabled: js,
    // axe-core is injected as an inline script, which the pages' strict
    // Content-Security-Policy forbids: only the accessibility contexts
    // bypass it.
    bypassCSP: axe,
  });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(30_000);
  const page = await context.newPage();
  return page;
}

/** Navigates and checks the HTTP status. */
async function visit(page, url, status = 200) {
  const res = await page.goto(url, { waitUntil: 'load' });
  assert.equal(res.status(), status, `GET ${url}`);
  return res;
}

/** Runs `action` (a click that submits a form) and waits for the page it leads to. */
async function submit(page, action, status = 200) {
  const [res] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), action()]);
  assert.ok(res, 'a navigation happened');
  assert.equal(res.status(), status, `${res.request().method()} → ${page.url()}`);
  return res;
}

async function login(page, username) {
  await visit(page, '/dang-nhap');
  await page.fill('#username', username);
  await page.fill('#password', PASSWORD);
  await submit(page, () => page.click('form[action="/dang-nhap"] button[type="submit"]'));
  assert.ok(!new URL(page.url()).pathname.startsWith('/dang-nhap'), `${username} signed in`);
}

let shot = 0;
/**
 * Saves a full-page screenshot as a test artifact. With `tour`, also saves
 * the picture for the README's tour to artifacts/tour/<tour>.png (the
 * visible screen, or the full page with `full`).
 */
async function screenshot(page, name, { tour, full = false } = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (tour) {
    fs.mkdirSync(path.join(ARTIFACTS, 'tour'), { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'tour', `${tour}.png`), fullPage: full });
  }
  return file;
}

/** Runs axe-core (WCAG 2.1 A and AA) and fails with a readable list of violations. */
async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.addScriptTag({ path: require.resolve('axe-core') });
  }
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] }),
    AXE_TAGS,
  );
  assert.ok(result.passes.length > 0, 'axe checked something');
  return result;
}

async function expectAccessible(page, label) {
  const result = await axeViolations(page);
  if (result.violations.length > 0) {
    const lines = [`axe: ${result.violations.length} violation(s) on ${label} (${page.url()})`];
    for (const v of result.violations) {
      lines.push(`  [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})`);
      for (const n of v.nodes.slice(0, 8)) {
        lines.push(`      at ${n.target.join(' ')}`);
        lines.push(`         ${n.failureSummary.replace(/\n/g, '\n         ')}`);
      }
      if (v.nodes.length > 8) lines.push(`      … and ${v.nodes.length - 8} more`);
    }
    throw new Error(lines.join('\n'));
  }
}

/** A small valid-looking PDF, made here. */
function pdf(label) {
  return Buffer.from(`%PDF-1.4\n% ${label}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n`);
}

/** A new national ID number of a citizen born in the 1990s in Hà Nội (001). */
function newNationalId() {
  const tail = String(Math.floor(Math.random() * 1e6)).padStart(6, '0');
  return `001095${tail}`;
}

/** The birth registration as a citizen fills it in. */
const BIRTH_FORM = {
  f_declarant_full_name: 'Nguyễn Văn An',
  f_declarant_national_id: '001090012345',
  f_declarant_phone: '0912345678',
  f_child_full_name: 'Nguyễn Minh Khang',
  f_child_birth_date: '2026-11-01',
  f_child_ethnicity: 'Kinh',
  f_child_nationality: 'Việt Nam',
  f_child_birth_place: 'Bệnh viện Phụ sản Hà Nội, Hà Nội',
  f_mother_full_name: 'Trần Thị Hoa',
  f_parents_residence: '12 phố Tràng Thi, Phường Cửa Nam, Hà Nội',
};

/** Fills the apply form of the birth registration (JavaScript on or off). */
async function fillBirthForm(page, overrides = {}) {
  const values = { ...BIRTH_FORM, ...overrides };
  await page.selectOption('select[name="unit_code"]', '00073');
  for (const [name, value] of Object.entries(values)) {
    await page.fill(`[name="${name}"]`, value);
  }
  await page.selectOption('select[name="f_declarant_relationship"]', 'father');
  await page.check('input[name="f_child_sex"][value="male"]');
}

/** The dossier code shown on a receipt page. */
async function receiptCode(page) {
  assert.match(new URL(page.url()).pathname, /^\/ho-so\/[^/]+\/bien-nhan$/);
  const code = (await page.textContent('dd.code')).trim();
  assert.equal(new URL(page.url()).pathname, `/ho-so/${code}/bien-nhan`);
  return code;
}

/**
 * Submits one lifecycle action from the dossier page, as a person does:
 * opens its section, writes the note, presses its button.
 */
async function act(page, action, { note, fill, status = 200 } = {}) {
  const sel = `input[name="action"][value="${action}"]`;
  const details = page.locator(`details.action:has(${sel})`);
  assert.equal(await details.count(), 1, `action ${action} offered on ${page.url()}`);
  if ((await details.getAttribute('open')) === null) await details.locator('summary').click();
  const form = details.locator('form');
  if (note !== undefined) await form.locator('textarea[name="note"]').fill(note);
  if (fill) await fill(form);
  await submit(page, () => form.locator('button[type="submit"]').click(), status);
}

/** Opens a dossier from the officer's workqueue (a tab of it, or a search). */
async function openFromQueue(page, code, query = '') {
  await visit(page, `/can-bo${query}`);
  const link = page.locator(`main a[href="/ho-so/${code}"]`).first();
  await submit(page, () => link.click());
  assert.equal(new URL(page.url()).pathname, `/ho-so/${code}`);
}

/** The visible text of the main part of the page. */
async function mainText(page) {
  return page.innerText('main');
}

// ---- runner -------------------------------------------------------------

const tests = [];
function test(name, fn) {
  tests.push({ name, fn });
}

async function run() {
  const only = process.env.ONLY;
  const browser = await launch();
  let passed = 0;
  let failed = 0;
  const failures = [];
  for (const t of tests) {
    if (only && !t.name.includes(only)) continue;
    const started = Date.now();
    const opened = [];
    const ctx = {
      browser,
      person: async (opts) => {
        const p = await person(browser, opts);
        opened.push(p);
        return p;
      },
    };
    try {
      await t.fn(ctx);
      passed += 1;
      console.log(`ok ${passed + failed} - ${t.name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed += 1;
      failures.push(t.name);
      console.log(`not ok ${passed + failed} - ${t.name}`);
      console.log(String(e && e.stack ? e.stack : e).replace(/^/gm, '    '));
      for (const [i, p] of opened.entries()) {
        try {
          const safe = t.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
          const f = path.join(ARTIFACTS, `FAILED-${safe}-${i}.png`);
          fs.mkdirSync(ARTIFACTS, { recursive: true });
          await p.screenshot({ path: f, fullPage: true });
          console.log(`    page ${i}: ${p.url()} → ${path.relative(process.cwd(), f)}`);
        } catch (_) {
          /* the page may be gone */
        }
      }
    } finally {
      for (const p of opened) await p.context().close().catch(() => {});
    }
  }
  await browser.close();
  if (failures.length) console.log(`failed: ${failures.join('; ')}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0;
}

module.exports = {
  BASE,
  BIRTH,
  PHONE,
  DESKTOP,
  assert,
  visit,
  submit,
  login,
  screenshot,
  expectAccessible,
  axeViolations,
  pdf,
  newNationalId,
  BIRTH_FORM,
  fillBirthForm,
  receiptCode,
  act,
  openFromQueue,
  mainText,
  test,
  run,
};
