// Start all and stop all from the page's header: every program's state changes (read back
// from the API); stop all asks first, and Cancel stops nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, api, uniqueName, removeQuietly, waitForState, waitForText, WAIT,
} from './helpers.mjs';

let browser;
const created = [];
before(async () => { browser = await launch(); });
after(async () => {
  for (const name of created) await removeQuietly(name);
  // The other tests expect the seed program running, as run.sh started it.
  await api('POST', '/api/programs/seed-ticker/start');
  await browser?.close();
});

/** Polls the API until every program is in one of `states`; fails with what they are. */
async function untilAll(states, what) {
  const deadline = Date.now() + WAIT;
  let list = [];
  while (Date.now() < deadline) {
    list = (await api('GET', '/api/programs')).body;
    if (list.every(p => states.includes(p.state))) return list;
    await new Promise(r => setTimeout(r, 100));
  }
  assert.fail(`${what}: ${JSON.stringify(list.map(p => [p.name, p.state]))}`);
}

test('start all starts every program; stop all, once confirmed, stops every one', async () => {
  const a = uniqueName('web-all-a'), b = uniqueName('web-all-b');
  for (const name of [a, b]) {
    created.push(name);
    const r = await api('POST', '/api/programs', { name, command: 'exec sleep 300', start_seconds: 0, stop_timeout: 2 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  const { page, seen } = await openPage(browser);
  await waitForState(page, a, 'stopped');

  await page.getByRole('button', { name: 'Start all', exact: true }).click();
  const started = await untilAll(['running'], 'every program runs after start all');
  assert.ok(started.some(p => p.name === a) && started.some(p => p.name === b));
  await waitForState(page, a, 'running');
  await waitForState(page, b, 'running');

  // Stop all asks first; Cancel stops nothing.
  await page.getByRole('button', { name: 'Stop all', exact: true }).click();
  await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
  await waitForText(page, '#confirm-title', 'Stop every program?');
  await page.click('#confirm-cancel');
  await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
  const still = (await api('GET', '/api/programs')).body;
  assert.deepEqual(still.filter(p => p.state !== 'running').map(p => p.name), [], 'Cancel stopped nothing');

  await page.getByRole('button', { name: 'Stop all', exact: true }).click();
  await page.getByRole('button', { name: 'Stop all', exact: true }).and(page.locator('#confirm-ok')).click();
  await untilAll(['stopped'], 'every program is stopped after stop all');
  await waitForState(page, a, 'stopped');
  await waitForState(page, b, 'stopped');
  await waitForState(page, 'seed-ticker', 'stopped');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
