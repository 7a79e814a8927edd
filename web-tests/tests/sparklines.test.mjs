// The sparklines of the virtual table (a server of this test's own, with enough programs that
// only the rows in view are in the page): a row taken from the pool for another program, a
// row made new, and a row shown again at the widest layout each show the memory line of the
// program they now stand for, at once (not at the next list read, 2 s later).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, openPage, screenshot, BIN, WORK_DIR } from './helpers.mjs';
import { startServer, sleepPrograms } from '../server.mjs';

const N = 400;
// One in five runs (`sleep`: a memory line well above the bottom of its chart); the others
// are stopped (memory 0: a line along the bottom).
const RUNNING = Array.from({ length: N }, (_, i) => i + 1).filter(i => i % 5 === 1);

let browser, server;
before(async () => {
  browser = await launch();
  server = await startServer({
    bin: BIN, dir: fs.mkdtempSync(path.join(WORK_DIR, 'spark-')), programsYaml: sleepPrograms('spark', N, { running: RUNNING }),
  });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * Each row inside the table's visible box: its program, its state and where the memory
 * sparkline's pixels are ({ top: the highest row of pixels drawn, or -1 when none, h }).
 * Read in the frame after the scroll's one, before the page reads the list again.
 */
function visibleSparks(page) {
  return page.evaluate(() => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(() => {
    const b = document.querySelector('#table-wrap').getBoundingClientRect();
    const out = [];
    for (const r of document.querySelectorAll('#program-rows tr[data-name]')) {
      const a = r.getBoundingClientRect();
      if (a.bottom <= b.top || a.top >= b.bottom) continue;
      const c = r.querySelectorAll('.metric canvas')[1];
      const { width: w, height: h } = c;
      let top = -1;
      if (c.clientWidth && w && h) {
        const px = c.getContext('2d').getImageData(0, 0, w, h).data;
        for (let y = 0; y < h && top < 0; y++) {
          for (let x = 0; x < w; x++) if (px[(y * w + x) * 4 + 3] > 0) { top = y; break; }
        }
      }
      out.push({ name: r.dataset.name, state: r.dataset.state, top, h, visible: c.clientWidth > 0 });
    }
    resolve({ rows: out, at: performance.now() });
  }))));
}

/** What is wrong with the sparklines in view: one line a row that shows another program's. */
function wrongSparks(rows) {
  const bad = [];
  for (const r of rows) {
    if (!r.visible) bad.push(`${r.name}: its sparkline is not shown`);
    else if (r.top < 0) bad.push(`${r.name} (${r.state}): its memory sparkline is blank`);
    else if (r.state === 'running' && r.top > r.h / 2) bad.push(`${r.name} (running): a memory line along the bottom (top pixel at ${r.top} of ${r.h}), as a stopped program's`);
    else if (r.state === 'stopped' && r.top < r.h - 5) bad.push(`${r.name} (stopped): a memory line up to ${r.top} of ${r.h}, as a running program's`);
  }
  return bad;
}

/** Scrolls the table's box to put the program at `i` (0-based) at its top. */
async function scrollTo(page, i) {
  await page.evaluate(({ i, n }) => {
    const wrap = document.querySelector('#table-wrap');
    const head = document.querySelector('#programs thead').offsetHeight;
    wrap.scrollTop = head + i * ((wrap.scrollHeight - head) / n);
  }, { i, n: N });
}

test(`sparklines of rows reused, made or shown again in a ${N}-program table are their own program's`, async () => {
  // Narrower than the widest layout at first: no sparkline is shown.
  const { page, seen } = await openPage(browser, { url: server.url, credentials: server.credentials, go: false });
  let reads = 0;
  page.on('response', r => { if (new URL(r.url()).pathname === '/api/programs') reads++; });
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.goto(server.url);
  await page.waitForFunction(n => new RegExp(`${n} running`).test(document.title), RUNNING.length, { timeout: 60_000 });
  // Memory read for the running ones, then two more list reads (each a sample of every
  // program: a line needs two).
  await page.waitForFunction(() => {
    const r = document.querySelector('#program-rows tr[data-name="spark-001"]');
    return r && /B$/.test(r.querySelectorAll('.metric')[1].textContent.trim());
  }, null, { timeout: 30_000 });
  const seenAt = reads, deadline = Date.now() + 20_000;
  while (reads < seenAt + 2) {
    assert.ok(Date.now() < deadline, `the page read the list ${reads - seenAt} time(s) in 20 s; 2 expected`);
    await new Promise(r => setTimeout(r, 50));
  }
  // Scrolled at this width, rows are taken from the pool while their canvases are hidden.
  await scrollTo(page, 137);
  await visibleSparks(page);

  const problems = [];
  const check = async what => {
    const { rows } = await visibleSparks(page);
    assert.ok(rows.length > 5, `${what}: ${rows.length} rows in view`);
    assert.ok(rows.some(r => r.state === 'running') && rows.some(r => r.state === 'stopped'), `${what}: running and stopped rows in view`);
    for (const p of wrongSparks(rows)) problems.push(`${what}: ${p}`);
  };

  // Widened to the widest layout: the rows in the page show their sparklines.
  await page.setViewportSize({ width: 1700, height: 900 });
  await check('widened to 1700 px');
  // Every row in view drawn (by the next list read if not before), so that rows go back to
  // the pool with a drawing on them.
  await page.waitForFunction(() => {
    const b = document.querySelector('#table-wrap').getBoundingClientRect();
    return [...document.querySelectorAll('#program-rows tr[data-name]')].every(r => {
      const a = r.getBoundingClientRect();
      if (a.bottom <= b.top || a.top >= b.bottom) return true;
      const c = r.querySelectorAll('.metric canvas')[1];
      return c.width > 0 && c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0);
    });
  }, null, { timeout: 10_000 });

  // Jumps that put other programs in the rows of the pool: one in five runs, so most rows
  // go from a running program to a stopped one or back. (Offsets of 1 to 4 rows, so that the
  // row a program gets is not one of the same kind by chance.)
  for (const i of [1, 203, 52, 389, 0, 274, 118]) {
    await scrollTo(page, i);
    await check(`scrolled to row ${i}`);
  }

  // A taller window: rows made new for the programs now in view.
  await page.setViewportSize({ width: 1700, height: 1400 });
  await check('made taller');
  await scrollTo(page, 311);
  await check('taller, scrolled to row 311');
  await screenshot(page, 'sparklines-1700');

  assert.deepEqual(problems, [], `rows show another program's sparkline, or none:\n${problems.slice(0, 30).join('\n')}`);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
