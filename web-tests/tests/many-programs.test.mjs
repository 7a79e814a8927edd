// A thousand programs (a server of this test's own): only the rows in view are in the page,
// scrolling and the keyboard bring any row in with its name and live state, and a row's
// buttons work once it has been scrolled to.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, openPage, row, waitForState, waitForText, screenshot, BIN, WORK_DIR } from './helpers.mjs';
import { startServer, sleepPrograms } from '../server.mjs';

const N = Number(process.env.GOSUV_WEB_MANY || 1000);
const MAX_ROWS = 200;
const name = i => `many-${String(i).padStart(String(N).length, '0')}`;

let browser, server;
before(async () => {
  browser = await launch();
  // Three of them running, the rest stopped.
  server = await startServer({
    bin: BIN, dir: fs.mkdtempSync(path.join(WORK_DIR, 'many-')), programsYaml: sleepPrograms('many', N, { running: [1, 2, 3] }),
  });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** How many program rows are in the page. */
const rowCount = page => page.locator('#program-rows tr[data-name]').count();

/** Whether the row of `n` is in the page and inside the table's visible box. */
async function inView(page, n) {
  return page.evaluate(n => {
    const r = document.querySelector(`#program-rows tr[data-name="${n}"]`);
    const wrap = document.querySelector('#table-wrap');
    if (!r) return false;
    const a = r.getBoundingClientRect(), b = wrap ? wrap.getBoundingClientRect() : { top: 0, bottom: innerHeight };
    return a.height > 0 && a.top >= Math.max(0, b.top) - 1 && a.bottom <= Math.min(innerHeight, b.bottom) + 1;
  }, n);
}

/** Scrolls the table's box to put the program at `i` (1-based) near its top, as a drag of the scroll bar does. */
async function scrollToProgram(page, i) {
  await page.evaluate(({ i, n }) => {
    const wrap = document.querySelector('#table-wrap');
    const head = document.querySelector('#programs thead').offsetHeight;
    wrap.scrollTop = head + (i - 1) * ((wrap.scrollHeight - head) / n) - 40;
  }, { i, n: N });
}

test(`with ${N} programs the table keeps a bounded number of rows, and scrolling, live states and actions work`, async () => {
  const { page, seen } = await openPage(browser, { url: server.url, credentials: server.credentials });
  // The whole list is in: the tab's title counts the running ones.
  await page.waitForFunction(() => /3 running/.test(document.title));
  await waitForState(page, name(1), 'running');
  const atTop = await rowCount(page);
  assert.ok(atTop < MAX_ROWS, `${atTop} rows are in the page for ${N} programs; at most ${MAX_ROWS} expected`);
  assert.ok(await inView(page, name(1)), 'the first program is in view');

  // The scroll bar is as long as the whole list: the bottom shows the last program.
  await page.evaluate(() => { const w = document.querySelector('#table-wrap'); w.scrollTop = w.scrollHeight; });
  await waitForState(page, name(N), 'stopped');
  await page.waitForFunction(n => {
    const r = document.querySelector(`#program-rows tr[data-name="${n}"]`);
    const w = document.querySelector('#table-wrap');
    return r && Math.abs(r.getBoundingClientRect().bottom - w.getBoundingClientRect().bottom) < 3;
  }, name(N));
  assert.equal(await row(page, name(N)).locator('.name-link').textContent(), name(N));
  assert.ok(await inView(page, name(N)), 'the last program is in view at the bottom');
  assert.ok(await rowCount(page) < MAX_ROWS, 'still a bounded number of rows at the bottom');
  assert.equal(await page.locator(`#program-rows tr[data-name="${name(1)}"]`).count(), 0, 'the first row left the page');
  await screenshot(page, 'many-bottom');

  // A program in the middle, not in the page, is started through the API; scrolled to, its
  // row shows it running.
  const mid = Math.floor(N / 2);
  await page.evaluate(() => { document.querySelector('#table-wrap').scrollTop = 0; });
  await page.locator(`#program-rows tr[data-name="${name(mid)}"]`).waitFor({ state: 'detached' });
  const started = await server.api('POST', `/api/programs/${name(mid)}/start`);
  assert.equal(started.status, 200, JSON.stringify(started.body));
  await page.waitForFunction(() => /4 running/.test(document.title));
  await scrollToProgram(page, mid);
  await waitForState(page, name(mid), 'running');
  assert.ok(await inView(page, name(mid)), `${name(mid)} is in view`);
  assert.match(await row(page, name(mid)).locator('td').nth(2).textContent(), /^\d+$/, 'it shows its pid');

  // The buttons of a row scrolled to work: stop the middle one, start one near the end.
  await row(page, name(mid)).getByRole('button', { name: 'Stop', exact: true }).click();
  await waitForState(page, name(mid), 'stopped');
  assert.equal((await server.api('GET', `/api/programs/${name(mid)}`)).body.state, 'stopped');
  await page.evaluate(() => { const w = document.querySelector('#table-wrap'); w.scrollTop = w.scrollHeight; });
  const late = N - 2;
  await row(page, name(late)).getByRole('button', { name: 'Start', exact: true }).click();
  await waitForState(page, name(late), 'running');
  assert.equal((await server.api('GET', `/api/programs/${name(late)}`)).body.state, 'running');
  await row(page, name(late)).getByRole('button', { name: 'Logs', exact: true }).click();
  await waitForText(page, '#detail-name', name(late));
  await waitForText(page, '#detail-state', 'running');

  // The keyboard: from the first row, End goes to the last one, the arrows to its
  // neighbours, Enter opens the focused one.
  await page.evaluate(() => { document.querySelector('#table-wrap').scrollTop = 0; });
  await row(page, name(1)).focus();
  await page.keyboard.press('End');
  await page.waitForFunction(n => document.activeElement?.dataset?.name === n, name(N));
  assert.ok(await inView(page, name(N)), 'End brings the last row into view');
  await page.keyboard.press('ArrowUp');
  await page.waitForFunction(n => document.activeElement?.dataset?.name === n, name(N - 1));
  await page.keyboard.press('Enter');
  await waitForText(page, '#detail-name', name(N - 1));
  assert.ok(await rowCount(page) < MAX_ROWS, 'still a bounded number of rows');

  // A narrow window (a card per program): the bottom still shows the last program, whole,
  // its Delete button in view. (Rows get taller at this width, and the table with them:
  // scrolled down until the end, checked in the same frame.)
  await page.setViewportSize({ width: 800, height: 900 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForFunction(n => {
    const w = document.querySelector('#table-wrap');
    w.scrollTop = w.scrollHeight;
    const r = document.querySelector(`#program-rows tr[data-name="${n}"]`);
    const del = r && r.querySelector('[data-action="remove"]');
    if (!del || w.scrollTop === 0) return false;
    const a = del.getBoundingClientRect(), b = w.getBoundingClientRect();
    return Math.abs(r.getBoundingClientRect().bottom - b.bottom) < 3 &&
      a.width > 10 && a.top >= b.top && a.bottom <= b.bottom && a.left >= 0 && a.right <= innerWidth;
  }, name(N));
  assert.ok(await rowCount(page) < MAX_ROWS, 'a bounded number of rows at 800 px');
  await screenshot(page, 'many-bottom-800');

  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
