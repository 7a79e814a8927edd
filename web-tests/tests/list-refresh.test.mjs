// The page's periodic read of the list asks for what changes without an event (CPU, memory,
// uptime and the like), not for every program's config: at thousands of programs the whole
// list is MBs every 2 s. Configs changed elsewhere (another client, no state event) still
// show: the server says when the set of configs changed, and the page reads them again.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage, api, uniqueName, removeQuietly, row, waitForText, URL_AUTH, WAIT } from './helpers.mjs';

let browser;
const created = [];
before(async () => { browser = await launch(); });
after(async () => {
  for (const name of created) await removeQuietly(name);
  await browser?.close();
});

/** Waits until `cond()` is true, polling; fails with `what` after WAIT ms. */
async function until(cond, what) {
  const deadline = Date.now() + WAIT;
  while (!cond()) {
    assert.ok(Date.now() < deadline, `waited ${WAIT} ms for ${what}`);
    await new Promise(r => setTimeout(r, 50));
  }
}

test('the periodic list read leaves the configs out, and config changes made elsewhere still show', async () => {
  const name = uniqueName('web-lean');
  created.push(name);
  const add = await api('POST', '/api/programs', { name, command: 'exec sleep 301', start_auto: false, stop_timeout: 2 });
  assert.equal(add.status, 201, JSON.stringify(add.body));

  const { page, seen } = await openPage(browser, { go: false });
  // Every list answer: its query and whether it holds configs (a `command` key).
  const reads = [];
  page.on('response', async r => {
    const url = new URL(r.url());
    if (url.pathname !== '/api/programs' || r.request().method() !== 'GET') return;
    const entry = { query: url.search, configs: null, bytes: 0 };
    reads.push(entry);
    const body = await r.body().catch(() => null);
    if (!body) return;
    entry.bytes = body.length;
    const list = JSON.parse(body.toString('utf8'));
    entry.configs = list.some(p => 'command' in p);
  });
  const wholeReads = () => reads.filter(r => r.configs === true).length;
  await page.goto(URL_AUTH);
  await waitForText(page, `#program-rows tr[data-name="${name}"] .cmd`, 'sleep 301');
  assert.ok(reads.length >= 1 && reads[0].configs, `the first read is of the whole list: ${JSON.stringify(reads)}`);

  // Idle: three periodic reads, none of a config.
  const at = reads.length;
  await until(() => reads.length >= at + 3 && reads.slice(at, at + 3).every(r => r.configs !== null), 'three periodic list reads');
  const idle = reads.slice(at, at + 3);
  for (const r of idle) {
    assert.match(r.query, /[?&]fields=/, `a periodic read asks for some fields: ${JSON.stringify(idle)}`);
    assert.equal(r.configs, false, `a periodic read holds no config: ${JSON.stringify(idle)}`);
    assert.ok(r.bytes < reads[0].bytes / 2, `a periodic read (${r.bytes} bytes) is under half the whole list (${reads[0].bytes}): ${JSON.stringify(idle)}`);
  }

  // Details open; the program's command changed by another client: no state event (it is
  // stopped), yet the row and the details show the new command.
  await row(page, name).getByRole('button', { name: 'Logs', exact: true }).click();
  await waitForText(page, '#detail-config', 'sleep 301');
  const before = wholeReads();
  const edit = await api('PUT', `/api/programs/${name}`, { name, command: 'exec sleep 302', start_auto: false, stop_timeout: 2 });
  assert.equal(edit.status, 200, JSON.stringify(edit.body));
  await waitForText(page, `#program-rows tr[data-name="${name}"] .cmd`, 'sleep 302');
  await waitForText(page, '#detail-config', 'sleep 302');
  assert.ok(wholeReads() > before, 'the configs were read again');

  // A program added elsewhere, stopped (no event): its row comes, with its command; deleted,
  // it goes.
  const other = uniqueName('web-lean-added');
  created.push(other);
  assert.equal((await api('POST', '/api/programs', { name: other, command: 'exec sleep 303', start_auto: false })).status, 201);
  await waitForText(page, `#program-rows tr[data-name="${other}"] .cmd`, 'sleep 303');
  assert.equal((await api('DELETE', `/api/programs/${other}`)).status, 200);
  await page.locator(`#program-rows tr[data-name="${other}"]`).waitFor({ state: 'detached' });

  // Idle again: after the one read of the configs the delete calls for (it may come after
  // the row went), none while nothing changes.
  const at2 = reads.length;
  await until(() => reads.length >= at2 + 3 && reads.slice(at2, at2 + 3).every(r => r.configs !== null), 'three more list reads');
  assert.deepEqual(reads.slice(at2 + 1, at2 + 3).map(r => r.configs), [false, false],
    `no whole read while nothing changed: ${JSON.stringify(reads.slice(at2))}`);

  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
