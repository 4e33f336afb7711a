// The motcua pages in a real browser: the whole story of a dossier in
// Vietnamese and in English, the supplement and refusal paths, the apply
// flow without JavaScript, keyboard use and axe-core on the key pages.
// Run through run.sh, which starts a fresh demo server.
'use strict';

const {
  BIRTH,
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
  fillBirthForm,
  receiptCode,
  act,
  openFromQueue,
  mainText,
  test,
  run,
} = require('./lib');

const TEXT = {
  vi: {
    html: 'vi',
    statusNew: 'Mới đăng ký',
    statusAccepted: 'Đã tiếp nhận',
    statusReturned: 'Đã trả kết quả',
    statusNotAccepted: 'Không tiếp nhận',
    statusSupplement: 'Yêu cầu bổ sung',
    receiptTitle: 'Giấy tiếp nhận hồ sơ và hẹn trả kết quả',
    verySatisfied: 'Rất hài lòng',
    submitted: 'Nộp hồ sơ trực tuyến',
    evaluated: 'Đánh giá chất lượng',
    refusedReason: 'Lý do không tiếp nhận',
    procedureName: 'Đăng ký khai sinh',
  },
  en: {
    html: 'en',
    statusNew: 'Newly registered',
    statusAccepted: 'Accepted',
    statusReturned: 'Result returned',
    statusNotAccepted: 'Not accepted',
    statusSupplement: 'Supplement requested',
    receiptTitle: 'Receipt and appointment slip',
    verySatisfied: 'Very satisfied',
    submitted: 'Submitted online',
    evaluated: 'Service rated',
    refusedReason: 'Reason for refusal',
    procedureName: 'Birth registration',
  },
};

/** A citizen who opens a new account through the registration page. */
async function registerCitizen(page, lang, name) {
  await visit(page, '/');
  if (lang === 'vi') await screenshot(page, 'home-vi', { tour: '1-home' });
  if (lang === 'en') {
    // The language switch on every page; remembered from then on.
    await submit(page, () => page.click('a[hreflang="en"]'));
  }
  assert.equal(await page.getAttribute('html', 'lang'), TEXT[lang].html);
  await submit(page, () => page.click('main a[href="/dang-ky"]'));
  assert.equal(await page.getAttribute('html', 'lang'), TEXT[lang].html, 'language remembered');
  const username = `${name}${Date.now().toString(36)}`;
  await page.fill('#full_name', lang === 'en' ? 'Lê Văn Nam' : 'Lê Thị Ngọc Ánh');
  await page.fill('#national_id', newNationalId());
  await page.fill('#phone', '0987123456');
  await page.fill('#email', `${username}@example.vn`);
  await page.fill('#username', username);
  await page.fill('#password', 'mat-khau-rat-dai');
  await submit(page, () => page.click('form[action="/dang-ky"] button[type="submit"]'));
  assert.equal(new URL(page.url()).pathname, '/ho-so', 'signed in, on "my dossiers"');
  assert.match(await page.innerText('header'), /Lê (Thị Ngọc Ánh|Văn Nam)/);
  return username;
}

/** From the home page's search box to a submitted birth registration; returns the code. */
async function searchAndApply(page, lang, shots) {
  await visit(page, '/');
  await page.fill('#q', 'dang ky khai sinh');
  await submit(page, () => page.click('form[role="search"] button[type="submit"]'));
  const hit = page.locator(`main a[href="/thu-tuc/${BIRTH}"]`);
  assert.equal((await hit.innerText()).trim(), TEXT[lang].procedureName, 'diacritics ignored');
  if (shots) await screenshot(page, `catalogue-search-${lang}`);
  await submit(page, () => hit.click());
  if (shots) await screenshot(page, `procedure-${lang}`, lang === 'vi' ? { tour: '2-procedure' } : {});
  await submit(page, () => page.click(`main a[href="/thu-tuc/${BIRTH}/nop-ho-so"]`));
  await fillBirthForm(page);
  await page.setInputFiles('input[name="document:birth-notice"]', {
    name: 'giay-chung-sinh.pdf',
    mimeType: 'application/pdf',
    buffer: pdf('giay chung sinh'),
  });
  if (shots) await screenshot(page, `apply-form-${lang}`);
  await submit(page, () => page.click('main form button[type="submit"].big'));
  const code = await receiptCode(page);
  assert.equal((await page.textContent('h1')).trim(), TEXT[lang].receiptTitle);
  // The QR code is an inline SVG that names the tracking page.
  assert.equal(await page.locator('figure.qr svg').count(), 1, 'QR code on the receipt');
  assert.ok((await page.innerText('figure.qr')).includes(`/tra-cuu?ma=${code}`));
  assert.ok((await mainText(page)).includes('giay-chung-sinh.pdf'));
  if (shots) await screenshot(page, `receipt-${lang}`, lang === 'vi' ? { tour: '4-receipt', full: true } : {});
  return code;
}

async function fullStory({ person }, lang) {
  const citizen = await person({ locale: 'vi-VN' });
  await registerCitizen(citizen, lang, lang === 'en' ? 'nam' : 'anh');
  const code = await searchAndApply(citizen, lang, true);

  await visit(citizen, '/ho-so');
  assert.ok((await mainText(citizen)).includes(code), 'in "my dossiers"');
  assert.ok((await mainText(citizen)).includes(TEXT[lang].statusNew));
  await screenshot(citizen, `my-dossiers-${lang}`);

  // The one-stop officer receives it from the workqueue.
  const staffLocale = lang === 'en' ? 'en-GB' : 'vi-VN';
  const officer = await person({ locale: staffLocale, viewport: DESKTOP });
  await login(officer, 'officer');
  await visit(officer, '/can-bo');
  assert.ok((await mainText(officer)).includes(code), 'in the queue to receive');
  await screenshot(officer, `workqueue-${lang}`, lang === 'en' ? { tour: '5-workqueue' } : {});
  await openFromQueue(officer, code);
  assert.ok((await mainText(officer)).includes('Nguyễn Minh Khang'), "applicant's data");
  await screenshot(officer, `officer-dossier-${lang}`);
  await act(officer, 'accept', { note: '' });
  assert.ok((await mainText(officer)).includes(TEXT[lang].statusAccepted));
  await act(officer, 'forward');

  // The specialist appraises and forwards to the leader.
  const specialist = await person({ locale: staffLocale, viewport: DESKTOP });
  await login(specialist, 'specialist');
  await openFromQueue(specialist, code, '?tab=appraise');
  await act(specialist, 'forward');

  // The leader approves.
  const leader = await person({ locale: staffLocale, viewport: DESKTOP });
  await login(leader, 'leader');
  await openFromQueue(leader, code, '?tab=approve');
  await act(leader, 'approve');

  // The officer returns the result.
  await openFromQueue(officer, code, '?tab=return');
  await act(officer, 'return_result');
  assert.ok((await mainText(officer)).includes(TEXT[lang].statusReturned));

  // The citizen sees the result and rates the service.
  await visit(citizen, `/ho-so/${code}`);
  assert.ok((await mainText(citizen)).includes(TEXT[lang].statusReturned));
  await act(citizen, 'evaluate', {
    fill: async (form) => {
      await form.locator('input[name="level"][value="very_satisfied"]').check();
    },
  });
  const done = await mainText(citizen);
  assert.ok(done.includes(TEXT[lang].verySatisfied), 'evaluation shown');
  assert.ok(done.includes(TEXT[lang].submitted), 'timeline: submitted');
  assert.ok(done.includes(TEXT[lang].evaluated), 'timeline: rated');
  await screenshot(citizen, `citizen-dossier-done-${lang}`, lang === 'en' ? { tour: '6-dossier' } : {});

  // Anyone can track it by code: status, no personal data.
  const anon = await person({ locale: staffLocale });
  await visit(anon, `/tra-cuu?ma=${code}`);
  const tracked = await mainText(anon);
  assert.ok(tracked.includes(TEXT[lang].statusReturned), tracked);
  assert.ok(!tracked.includes('Nguyễn Minh Khang'));
}

test('full story in Vietnamese: register, search, apply, receive, appraise, approve, return, rate', (t) =>
  fullStory(t, 'vi'));

test('full story in English (through the language switch)', (t) => fullStory(t, 'en'));

/** A demo citizen's birth registration, applied through the pages. */
async function applied(person) {
  const citizen = await person();
  await login(citizen, 'citizen');
  const code = await searchAndApply(citizen, 'vi', false);
  const officer = await person({ viewport: DESKTOP });
  await login(officer, 'officer');
  return { citizen, officer, code };
}

test('supplement: officer asks with a reason, citizen uploads, status back', async ({ person }) => {
  const { citizen, officer, code } = await applied(person);
  await openFromQueue(officer, code, `?q=${code}`);
  await act(officer, 'request_supplement', { note: 'Thiếu văn bản ủy quyền của người đi đăng ký' });
  assert.ok((await mainText(officer)).includes(TEXT.vi.statusSupplement));

  await visit(citizen, `/ho-so/${code}`);
  const seen = await mainText(citizen);
  assert.ok(seen.includes('Thiếu văn bản ủy quyền của người đi đăng ký'), 'reason shown');
  await screenshot(citizen, 'citizen-supplement-asked-vi');
  await act(citizen, 'supplement', {
    fill: async (form) => {
      await form.locator('input[name="document:authorisation"]').setInputFiles({
        name: 'van-ban-uy-quyen.pdf',
        mimeType: 'application/pdf',
        buffer: pdf('uy quyen'),
      });
    },
  });
  const after = await mainText(citizen);
  assert.ok(after.includes('van-ban-uy-quyen.pdf'), 'supplement listed');
  assert.ok(after.includes(TEXT.vi.statusNew), 'back to where it paused');

  // The officer can now receive it.
  await visit(officer, `/ho-so/${code}`);
  await act(officer, 'accept', { note: '' });
  assert.ok((await mainText(officer)).includes(TEXT.vi.statusAccepted));
});

test('refusal: officer refuses with a reason, citizen sees the reason', async ({ person }) => {
  const { citizen, officer, code } = await applied(person);
  await openFromQueue(officer, code);
  // No reason: the browser itself asks for one (the field is required)…
  const details = officer.locator('details.action:has(input[name="action"][value="refuse"])');
  await details.locator('summary').click();
  await details.locator('button[type="submit"]').click();
  assert.ok(await details.locator('textarea[name="note"]').evaluate((t) => t.validity.valueMissing));
  assert.equal(new URL(officer.url()).pathname, `/ho-so/${code}`, 'nothing sent');
  // …and so does the server, for a browser that does not check.
  await details.locator('form').evaluate((f) => {
    f.noValidate = true;
  });
  await act(officer, 'refuse', { note: '', status: 422 });
  assert.equal(await officer.locator('details.action[open] .err').count(), 1, 'error shown');
  await act(officer, 'refuse', { note: 'Giấy chứng sinh không đọc được, đề nghị nộp bản rõ nét' });
  assert.ok((await mainText(officer)).includes(TEXT.vi.statusNotAccepted));

  await visit(citizen, `/ho-so/${code}`);
  const seen = await mainText(citizen);
  assert.ok(seen.includes(TEXT.vi.statusNotAccepted));
  assert.ok(seen.includes(TEXT.vi.refusedReason));
  assert.ok(seen.includes('Giấy chứng sinh không đọc được, đề nghị nộp bản rõ nét'));
  await screenshot(citizen, 'citizen-refused-vi');
});

test('without JavaScript: errors summarised and linked, values kept, then a receipt', async ({ person }) => {
  const page = await person({ js: false });
  await login(page, 'citizen');
  await visit(page, `/thu-tuc/${BIRTH}/nop-ho-so`);
  await fillBirthForm(page, { f_declarant_national_id: '12345', f_child_full_name: '' });
  await page.setInputFiles('input[name="document:birth-notice"]', {
    name: 'giay-chung-sinh.pdf',
    mimeType: 'application/pdf',
    buffer: pdf('khong js'),
  });
  await submit(page, () => page.click('main form button[type="submit"].big'), 422);
  const summary = page.locator('.summary');
  assert.ok(await summary.isVisible(), 'error summary');
  assert.equal(await summary.locator('a[href="#f-declarant-national-id"]').count(), 1);
  assert.equal(await summary.locator('a[href="#f-child-full-name"]').count(), 1);
  assert.equal(await page.inputValue('[name="f_declarant_national_id"]'), '12345', 'kept');
  assert.equal(await page.inputValue('[name="f_declarant_full_name"]'), 'Nguyễn Văn An', 'kept');
  assert.equal(await page.inputValue('[name="f_child_birth_place"]'), 'Bệnh viện Phụ sản Hà Nội, Hà Nội');
  assert.equal(await page.inputValue('select[name="f_declarant_relationship"]'), 'father');
  assert.ok(await page.isChecked('input[name="f_child_sex"][value="male"]'));
  assert.ok((await mainText(page)).includes('giay-chung-sinh.pdf'), 'upload kept');
  assert.equal(await page.getAttribute('#f-declarant-national-id', 'aria-invalid'), 'true');
  await screenshot(page, 'apply-errors-nojs-vi', { tour: '3-apply-errors' });

  // The summary's link goes to the field (a plain fragment link).
  await summary.locator('a[href="#f-child-full-name"]').click();
  await page.waitForURL(/#f-child-full-name$/);
  await page.fill('[name="f_declarant_national_id"]', '001090012345');
  await page.fill('[name="f_child_full_name"]', 'Nguyễn Minh Khang');
  await submit(page, () => page.click('main form button[type="submit"].big'));
  const code = await receiptCode(page);
  assert.ok((await mainText(page)).includes('giay-chung-sinh.pdf'), 'the kept file was filed');
  assert.equal(await page.locator('figure.qr svg').count(), 1);
  assert.ok(code.length > 5);
});

test('keyboard: skip link, then the first field; error summary links move focus', async ({ person }) => {
  const page = await person();
  await login(page, 'citizen');
  await visit(page, `/thu-tuc/${BIRTH}/nop-ho-so`);
  const focused = () =>
    page.evaluate(() => {
      const a = document.activeElement;
      return { tag: a.tagName.toLowerCase(), id: a.id, cls: a.className, text: (a.textContent || '').trim() };
    });
  await page.keyboard.press('Tab');
  const first = await focused();
  assert.equal(first.cls, 'skip', `first Tab lands on the skip link, not ${JSON.stringify(first)}`);
  assert.ok(await page.locator('a.skip').isVisible(), 'the skip link shows when focused');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  const field = await focused();
  assert.equal(field.id, 'unit-code', `then the first field, not ${JSON.stringify(field)}`);

  // With errors: the summary's links move focus to the fields.
  await fillBirthForm(page, { f_declarant_national_id: '12', f_child_full_name: '' });
  await submit(page, () => page.click('main form button[type="submit"].big'), 422);
  for (const id of ['f-declarant-national-id', 'f-child-full-name', 'd-birth-notice']) {
    const link = page.locator(`.summary a[href="#${id}"]`);
    assert.equal(await link.count(), 1, `summary links to #${id}`);
    await link.focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction((want) => document.activeElement && document.activeElement.id === want, id);
  }
  // Every link of the summary leads to something that takes focus.
  const hrefs = await page.locator('.summary a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  for (const href of hrefs) {
    const focusable = await page.evaluate((h) => {
      const el = document.querySelector(h);
      return !!el && el.matches('input, select, textarea, button, [tabindex]');
    }, href);
    assert.ok(focusable, `${href} can take focus`);
  }
});

// ---- accessibility: axe-core, WCAG 2.1 A and AA, zero violations ---------

test('axe is really checking: a planted unlabelled field and low contrast are found', async ({ person }) => {
  const page = await person({ axe: true });
  await visit(page, '/');
  await page.evaluate(() => {
    const p = document.createElement('p');
    p.style.color = '#bbb';
    p.textContent = 'Chữ mờ khó đọc';
    const i = document.createElement('input');
    i.type = 'text';
    document.querySelector('main').append(p, i);
  });
  const ids = (await axeViolations(page)).violations.map((v) => v.id);
  assert.ok(ids.includes('label'), ids.join(', '));
  assert.ok(ids.includes('color-contrast'), ids.join(', '));
});

test('axe: public pages (home, catalogue, procedure, tracking, login, register) in vi and en', async ({ person }) => {
  for (const locale of ['vi-VN', 'en-GB']) {
    const page = await person({ locale, axe: true });
    for (const url of ['/', '/thu-tuc', '/thu-tuc?q=dang+ky+khai+sinh', `/thu-tuc/${BIRTH}`, '/tra-cuu', '/dang-nhap', '/dang-ky']) {
      await visit(page, url);
      await expectAccessible(page, `${url} (${locale})`);
    }
    await visit(page, '/khong-co-trang-nay', 404);
    await expectAccessible(page, `404 (${locale})`);
    // The registration form with errors.
    await visit(page, '/dang-ky');
    await submit(page, () => page.click('form[action="/dang-ky"] button[type="submit"]'), 422);
    assert.ok(await page.locator('.summary').isVisible());
    await expectAccessible(page, `/dang-ky with errors (${locale})`);
  }
});

test('axe: signed-in pages (apply form with errors, receipt, my dossiers, dossier, workqueue, officer dossier, counter)', async ({ person }) => {
  const page = await person({ axe: true });
  await login(page, 'citizen');
  await visit(page, `/thu-tuc/${BIRTH}/nop-ho-so`);
  await expectAccessible(page, 'apply form');
  await fillBirthForm(page, { f_declarant_national_id: '12345', f_child_full_name: '' });
  await submit(page, () => page.click('main form button[type="submit"].big'), 422);
  await expectAccessible(page, 'apply form with errors');
  await fillBirthForm(page);
  await page.setInputFiles('input[name="document:birth-notice"]', {
    name: 'giay-chung-sinh.pdf',
    mimeType: 'application/pdf',
    buffer: pdf('axe'),
  });
  await submit(page, () => page.click('main form button[type="submit"].big'));
  const code = await receiptCode(page);
  await expectAccessible(page, 'receipt');
  await visit(page, '/ho-so');
  await expectAccessible(page, 'my dossiers');
  await visit(page, `/ho-so/${code}`);
  await expectAccessible(page, 'dossier (citizen)');
  // Open every action section, so that their forms are checked too.
  await page.locator('details.action:not([open]) summary').evaluateAll((ss) => ss.forEach((s) => s.click()));
  await expectAccessible(page, 'dossier (citizen), actions open');
  await visit(page, `/tra-cuu?ma=${code}`);
  await expectAccessible(page, 'tracking result');
  // The receipt's access code opens the timeline without signing in.
  await visit(page, `/ho-so/${code}/bien-nhan`);
  const secret = (await page.locator('dd.code').last().textContent()).trim();
  const stranger = await person({ axe: true });
  await visit(stranger, `/tra-cuu?ma=${code}&bm=${encodeURIComponent(secret)}`);
  if ((await stranger.locator('ol.timeline li').count()) < 1) throw new Error('timeline not opened by the access code');
  await expectAccessible(stranger, 'tracking with the access code');
  await screenshot(stranger, 'track-with-access-code-vi');

  // Officer: workqueue (each tab), search, dossier with its actions, counter form.
  const officer = await person({ viewport: DESKTOP, axe: true });
  await login(officer, 'officer');
  for (const q of ['', '?tab=appraise', '?tab=approve', '?tab=return', `?q=${code}`]) {
    await visit(officer, `/can-bo${q}`);
    await expectAccessible(officer, `workqueue ${q}`);
  }
  await visit(officer, `/ho-so/${code}`);
  await expectAccessible(officer, 'dossier (officer)');
  await officer.locator('details.action:not([open]) summary').evaluateAll((ss) => ss.forEach((s) => s.click()));
  await expectAccessible(officer, 'dossier (officer), actions open');
  await officer.locator('details.action:has(input[value="refuse"]) form').evaluate((f) => {
    f.noValidate = true;
  });
  await act(officer, 'refuse', { note: '', status: 422 });
  await expectAccessible(officer, 'dossier (officer), action with an error');
  await visit(officer, `/can-bo/tiep-nhan?thu_tuc=${BIRTH}`);
  await expectAccessible(officer, 'counter reception form');
  // Verifying a citizen's number at the counter, with an error, then done.
  await visit(officer, '/can-bo/xac-thuc?tai-khoan=citizen2');
  await expectAccessible(officer, 'verify a national ID');
  await officer.locator('main form[method="post"]').evaluate((f) => {
    f.noValidate = true;
  });
  await submit(officer, () => officer.click('main form[method="post"] button[type="submit"]'), 422);
  await expectAccessible(officer, 'verify a national ID, with an error');
  await screenshot(officer, 'verify-national-id-error-vi');

  // Province admin: a procedure's page with its availability in the province.
  const prov = await person({ viewport: DESKTOP, axe: true });
  await login(prov, 'province.admin');
  await visit(prov, `/quan-tri/thu-tuc/${BIRTH}`);
  await expectAccessible(prov, 'admin procedure with availability');
  await screenshot(prov, 'admin-procedure-availability-vi');
});

run().then(
  (ok) => process.exit(ok ? 0 : 1),
  (e) => {
    console.error(e);
    console.log('0 passed, 1 failed');
    process.exit(1);
  },
);
