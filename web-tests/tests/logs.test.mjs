// The live log view (output shown as text, ANSI colours, stdout/stderr, follow mode, a flood of
// output) and the CPU/memory charts with the process tree.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, api, uniqueName, removeQuietly, screenshot, row, waitForText, waitForState,
} from './helpers.mjs';

let browser;
const created = [];
before(async () => { browser = await launch(); });
after(async () => {
  for (const name of created) await removeQuietly(name);
  await browser?.close();
});

/** Adds a program through the API and starts it; returns its name. */
async function runProgram(prefix, command, extra = {}) {
  const name = uniqueName(prefix);
  created.push(name);
  const add = await api('POST', '/api/programs', { name, command, start_seconds: 0, stop_timeout: 2, ...extra });
  assert.equal(add.status, 201, JSON.stringify(add.body));
  const start = await api('POST', `/api/programs/${name}/start`);
  assert.equal(start.status, 200, JSON.stringify(start.body));
  return name;
}

async function openLog(page, name) {
  await row(page, name).getByRole('button', { name: 'Logs', exact: true }).click();
  await waitForText(page, '#detail-name', name);
}

test('program output that looks like HTML is shown as text, never run', async () => {
  const name = await runProgram('web-xss',
    "echo '<img src=x onerror=alert(1)>'; echo '<script>alert(2)</script>'; "
    + "printf '\\033[31m<b onmouseover=alert(3)>red</b>\\033[0m\\n'; exec sleep 300");
  const { page, seen } = await openPage(browser);
  await waitForState(page, name, 'running');
  // The command, which holds the same text, is shown as text in the table too.
  await waitForText(page, `#program-rows tr[data-name="${name}"] .cmd`, '<img src=x onerror=alert(1)>');
  await openLog(page, name);
  await waitForText(page, '#log', '<img src=x onerror=alert(1)>');
  await waitForText(page, '#log', '<script>alert(2)</script>');
  await waitForText(page, '#log', '<b onmouseover=alert(3)>red</b>');
  assert.equal(await page.locator('img').count(), 0, 'no <img> element anywhere in the page');
  assert.equal(await page.locator('#log script, #log b, #program-rows script').count(), 0);
  await page.hover('#log');
  const visible = await page.getByText('<img src=x onerror=alert(1)>', { exact: true }).first().isVisible();
  assert.equal(visible, true, 'the text is visible literally');
  await screenshot(page, 'xss-as-text');
  assert.deepEqual(seen.dialogs, [], 'no alert() ran');
  assert.deepEqual(seen.errors, []);
});

test('stdout and stderr switch, with ANSI colours rendered as classes', async () => {
  const name = await runProgram('web-streams',
    'i=0; while true; do i=$((i+1)); echo "out $i"; '
    + 'printf \'\\033[1;31merr %s\\033[0m plain\\n\' "$i" >&2; sleep 0.2; done');
  const { page, seen } = await openPage(browser);
  await waitForState(page, name, 'running');
  await openLog(page, name);
  await waitForText(page, '#log', /out \d+/);
  assert.equal(await page.getAttribute('#stream-stdout', 'aria-pressed'), 'true');
  assert.doesNotMatch(await page.textContent('#log'), /err \d/);

  await page.click('#stream-stderr');
  assert.equal(await page.getAttribute('#stream-stderr', 'aria-pressed'), 'true');
  await waitForText(page, '#log', /err \d+ plain/);
  const text = await page.textContent('#log');
  assert.doesNotMatch(text, /out \d/, 'the view shows one stream');
  assert.doesNotMatch(text, /\x1b|\[1;31m|\[0m/, 'no escape sequence is shown raw');
  const red = page.locator('#log span.f1.a-b').first();
  assert.match(await red.textContent(), /^err \d+$/);
  const color = await red.evaluate(e => getComputedStyle(e).color);
  assert.notEqual(color, await page.locator('#log').evaluate(e => getComputedStyle(e).color), 'red is a colour of its own');

  await page.click('#stream-stdout');
  await waitForText(page, '#log', /out \d+/);
  assert.doesNotMatch(await page.textContent('#log'), /err \d/);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});

test('follow mode turns off when the reader scrolls up, and back on', async () => {
  const name = await runProgram('web-follow',
    'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.05; done');
  const { page, seen } = await openPage(browser);
  await waitForState(page, name, 'running');
  await openLog(page, name);
  await page.waitForFunction(() => Number(document.querySelector('#log').dataset.lines) >= 60);
  const atEnd = () => page.$eval('#log', b => b.scrollHeight - b.scrollTop - b.clientHeight < 5);
  assert.equal(await atEnd(), true, 'following: the view shows the end');
  assert.equal(await page.isChecked('#follow'), true);

  await page.hover('#log');
  await page.mouse.wheel(0, -600);
  await page.waitForFunction(() => !document.querySelector('#follow').checked);
  await waitForText(page, '#log-status', 'follow is off');
  const top = await page.$eval('#log', b => b.scrollTop);
  const lines = await page.$eval('#log', b => b.querySelectorAll('.line').length);
  await page.waitForFunction(n => document.querySelectorAll('#log .line').length >= n + 10, lines);
  const top2 = await page.$eval('#log', b => b.scrollTop);
  assert.ok(Math.abs(top2 - top) < 2, `the view stays where the reader put it (${top} then ${top2})`);
  assert.equal(await atEnd(), false);

  await page.check('#follow');
  assert.equal(await atEnd(), true, 'ticking Follow jumps to the end');
  const n = await page.$eval('#log', b => b.querySelectorAll('.line').length);
  await page.waitForFunction(n => document.querySelectorAll('#log .line').length >= n + 10, n);
  assert.equal(await atEnd(), true, 'and keeps to it');
  assert.equal(await page.isChecked('#follow'), true);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});

test('a program printing about 10 MB/s does not freeze the page, and the DOM keeps at most 5000 lines', async () => {
  const line = 'flood 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 ....';
  const name = await runProgram('web-flood',
    `while true; do yes '${line}' | head -c 1048576; sleep 0.1; done`, { log_disable: true });
  const { page, seen } = await openPage(browser);
  await waitForState(page, name, 'running');
  await openLog(page, name);
  await page.waitForFunction(() => Number(document.querySelector('#log').dataset.received) > 2e6);

  // For three seconds of flood: the longest gap between two frames, and the DOM's size.
  const probe = await page.evaluate(() => new Promise(resolve => {
    const box = document.querySelector('#log');
    const start = performance.now();
    const received = Number(box.dataset.received);
    let last = start, maxGap = 0, maxLines = 0;
    function frame(t) {
      maxGap = Math.max(maxGap, t - last);
      last = t;
      maxLines = Math.max(maxLines, box.children.length);
      if (t - start < 3000) requestAnimationFrame(frame);
      else resolve({ maxGap, maxLines, bytes: Number(box.dataset.received) - received, secs: (t - start) / 1000 });
    }
    requestAnimationFrame(frame);
  }));
  const t0 = Date.now();
  await page.evaluate(() => document.title);
  const roundTrip = Date.now() - t0;
  console.log(`flood: ${(probe.bytes / probe.secs / 1e6).toFixed(1)} MB/s reached the page; longest frame gap ${probe.maxGap.toFixed(0)} ms; at most ${probe.maxLines} lines in the DOM; evaluate round trip ${roundTrip} ms`);
  assert.ok(probe.maxLines <= 5001, `lines in the DOM: ${probe.maxLines}`);
  assert.ok(probe.maxGap < 1000, `the page kept drawing (longest gap ${probe.maxGap} ms)`);
  assert.ok(roundTrip < 1000, `the page answers (${roundTrip} ms)`);
  assert.ok(probe.bytes > 3e6, `output kept arriving (${probe.bytes} bytes in ${probe.secs} s)`);
  assert.equal(await page.isChecked('#follow'), true, 'the flood alone does not turn follow off');
  assert.equal(await page.$eval('#log', b => b.scrollHeight - b.scrollTop - b.clientHeight < 5), true, 'the view shows the end');
  // The last whole line is a flood line (or a skip marker). An unfinished line may follow it, drawn
  // as far as it has arrived: a prefix of a flood line, or of the line where one 1 MiB burst's cut
  // end (1048576 % 87 = 52 bytes) meets the next burst's first line.
  const tail = await page.$eval('#log', b => ({
    whole: [...b.querySelectorAll('.line:not(.partial)')].pop()?.textContent ?? '',
    partial: b.querySelector('.line.partial')?.textContent ?? '',
  }));
  assert.match(tail.whole, /^flood .*\.\.\.\.$|^…/);
  assert.ok(line.startsWith(tail.partial) || (line.slice(0, 52) + line).startsWith(tail.partial),
    `the unfinished last line is a piece of a flood line: ${JSON.stringify(tail.partial)}`);
  await screenshot(page, 'flood');

  // The buttons still work during the flood.
  await row(page, name).getByRole('button', { name: 'Stop', exact: true }).click();
  await waitForState(page, name, 'stopped');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});

test('output that piles up while the page draws nothing keeps the newest part and says what was skipped', async () => {
  const { page, seen } = await openPage(browser);
  await waitForState(page, 'seed-ticker', 'running');
  await row(page, 'seed-ticker').getByRole('button', { name: 'Logs', exact: true }).click();
  await waitForText(page, '#log', /seed \d+/);
  // As in a hidden tab (no animation frames): 6.6 MB arrives before the next frame.
  await page.evaluate(() => {
    logView.push('burst line\n'.repeat(600_000));
    logView.push('last burst line\n');
  });
  await waitForText(page, '#log .marker', /of output skipped/);
  await waitForText(page, '#log', 'last burst line');
  // The marker stays while the program goes on: the burst replaced every line, so the next
  // tick is a line drawn after it (the marker was the first line that one trimmed).
  await page.waitForFunction(() => [...document.querySelectorAll('#log .line')]
    .some(l => /^seed \d+$/.test(l.textContent)), null, { timeout: 10_000 });
  assert.equal(await page.$$eval('#log .marker', ms => ms.length), 1, 'the marker of skipped output is still shown');
  const lines = await page.$eval('#log', b => b.querySelectorAll('.line').length);
  assert.ok(lines <= 5000, `lines in the DOM: ${lines}`);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});

test('CPU and memory charts fill over time, with the process tree\'s pids', async () => {
  const name = await runProgram('web-tree', 'sleep 300 & sleep 301 & wait');
  const { page, seen } = await openPage(browser);
  await waitForState(page, name, 'running');
  await openLog(page, name);
  const pid = Number(await row(page, name).locator('td').nth(2).textContent());
  await page.waitForFunction(() => (document.querySelector('#pids').dataset.pids || '').split(' ').length >= 3);
  const pids = (await page.getAttribute('#pids', 'data-pids')).split(' ').map(Number);
  assert.equal(pids[0], pid, 'the leader first');
  await waitForText(page, '#pids', `${pid} (leader)`);
  await page.waitForFunction(() => Number(document.querySelector('#cpu-chart').dataset.samples) >= 3
    && Number(document.querySelector('#mem-chart').dataset.samples) >= 3, null, { timeout: 15_000 });
  await waitForText(page, '#mem-now', /\d+(\.\d)? (KiB|MiB)/);
  await waitForText(page, '#cpu-now', /\d+\.\d %/);
  // Something was drawn: the memory chart has pixels of the line's colour.
  const drawn = await page.$eval('#mem-chart', c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  assert.ok(drawn > 100, `the memory chart is drawn (${drawn} pixels)`);
  await screenshot(page, 'charts');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
