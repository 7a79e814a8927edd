// The program table at the widths of a laptop and of a narrow window: every action of every
// row is inside the viewport (no sideways scrolling, nothing cut off) and a click on it works.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, api, uniqueName, removeQuietly, screenshot, row, waitForState, waitForText,
} from './helpers.mjs';

let browser;
const created = [];
before(async () => { browser = await launch(); });
after(async () => {
  for (const name of created) await removeQuietly(name);
  await browser?.close();
});

async function add(program) {
  created.push(program.name);
  const r = await api('POST', '/api/programs', { stop_timeout: 2, ...program });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

/**
 * The actions of every row and of the header whose box is not wholly inside the viewport's
 * width, and whether the table or the page scrolls sideways; each row is scrolled into view
 * first (the page scrolls down).
 */
async function cutOff(page) {
  const width = page.viewportSize().width;
  const out = [];
  for (const tr of await page.locator('#program-rows tr').all()) {
    await tr.scrollIntoViewIfNeeded();
    const name = await tr.getAttribute('data-name');
    for (const b of await tr.locator('.actions button').all()) {
      const label = await b.textContent();
      const box = await b.boundingBox();
      if (!box || box.width < 10 || box.x < 0 || box.x + box.width > width) {
        out.push(`${name}: ${label} at ${JSON.stringify(box)}`);
      }
    }
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  for (const b of await page.locator('header.top button').all()) {
    const box = await b.boundingBox();
    if (!box || box.width < 10 || box.x < 0 || box.x + box.width > width) {
      out.push(`header: ${await b.textContent()} at ${JSON.stringify(box)}`);
    }
  }
  const scroll = await page.evaluate(() => {
    const w = document.querySelector('.table-wrap');
    return { table: w.scrollWidth - w.clientWidth, page: document.documentElement.scrollWidth - innerWidth };
  });
  return { out, scroll };
}

test('at 800 and 1280 px wide every action of every row is in view and works', async () => {
  // The widest a row gets: the longest name, a long command and a long last error.
  const long = `web-layout-${'w'.repeat(40)}-${process.pid}`.slice(0, 64);
  const other = uniqueName('web-layout');
  await add({ name: long, command: `exec sleep 300 # ${'padding '.repeat(20)}`, start_seconds: 0 });
  await add({ name: other, command: ['/nonexistent/gosuv-layout-test/' + 'x'.repeat(60)], start_retries: 0 });
  await api('POST', `/api/programs/${other}/start?wait=false`);

  const { page, seen } = await openPage(browser);
  await waitForState(page, other, 'fatal');
  await waitForText(page, `#program-rows tr[data-name="${other}"] td.error-cell`, 'nonexistent');

  for (const width of [800, 1280]) {
    await page.setViewportSize({ width, height: 900 });
    const { out, scroll } = await cutOff(page);
    assert.deepEqual(out, [], `at ${width} px every action is inside the viewport`);
    assert.deepEqual(scroll, { table: 0, page: 0 }, `at ${width} px nothing scrolls sideways`);
    await screenshot(page, `layout-${width}`);

    // The buttons work at this width: start and stop the long-named one, and the last
    // button of the row (Delete) opens its question.
    const r = row(page, long);
    await r.getByRole('button', { name: 'Start', exact: true }).click();
    await waitForState(page, long, 'running');
    await r.getByRole('button', { name: 'Stop', exact: true }).click();
    await waitForState(page, long, 'stopped');
    await r.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
    await waitForText(page, '#confirm-text', long);
    await page.click('#confirm-cancel');
    await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
    await row(page, other).getByRole('button', { name: 'Edit', exact: true }).click();
    await page.locator('#program-dialog').waitFor({ state: 'visible' });
    assert.equal(await page.inputValue('#f-name'), other);
    await page.click('#form-cancel');
    await page.locator('#program-dialog').waitFor({ state: 'hidden' });
  }

  // Between and around those widths too: no width cuts an action off.
  for (const width of [700, 1000, 1100, 1101, 1200, 1366, 1440, 1441, 1600, 1920]) {
    await page.setViewportSize({ width, height: 900 });
    const { out, scroll } = await cutOff(page);
    assert.deepEqual(out, [], `at ${width} px every action is inside the viewport`);
    assert.deepEqual(scroll, { table: 0, page: 0 }, `at ${width} px nothing scrolls sideways`);
  }
  assert.equal((await api('GET', `/api/programs/${long}`)).status, 200, 'Cancel kept it');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
