// A program's details open from its row: a click anywhere on the row but its buttons, or
// Enter on the focused row. They show its config, state, pid, uptime, restarts, last exit,
// last error and the tail of its log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, api, uniqueName, removeQuietly, row, waitForText, waitForState, screenshot,
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
  const r = await api('POST', '/api/programs', { stop_timeout: 2, start_seconds: 0, ...program });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

test('a click on a row (not on its buttons) opens its details with its state, config and log', async () => {
  const name = uniqueName('web-details');
  await add({ name, command: 'echo "hello from $WHO"; exec sleep 300', environ: ['WHO=details'], stop_signal: 'INT' });
  assert.equal((await api('POST', `/api/programs/${name}/start`)).status, 200);
  const { page, seen } = await openPage(browser);
  await waitForState(page, name, 'running');
  const pid = (await api('GET', `/api/programs/${name}`)).body.pid;
  assert.ok(pid > 0);

  // A cell that is neither the name nor a button: the restarts count.
  await row(page, name).locator('td').nth(4).click();
  await waitForText(page, '#detail-name', name);
  assert.equal(await page.locator('#detail').isVisible(), true);
  await waitForText(page, '#detail-pid', String(pid));
  await waitForText(page, '#detail-uptime', /^\d+s$/);
  await waitForText(page, '#detail-restarts', /^0$/);
  await waitForText(page, '#detail-last-exit', '—');
  await waitForText(page, '#detail-last-error', '—');
  await waitForText(page, '#detail-config', 'stop_signal: INT');
  await waitForText(page, '#detail-config', 'environ: WHO=details');
  await waitForText(page, '#log', 'hello from details');
  assert.match(await row(page, name).getAttribute('class'), /\bselected\b/);

  // The row's buttons do their own job and do not open the details.
  await page.click('#detail-close');
  assert.equal(await page.locator('#detail').isHidden(), true);
  await row(page, name).getByRole('button', { name: 'Edit', exact: true }).click();
  await page.locator('#program-dialog').waitFor({ state: 'visible' });
  await page.click('#form-cancel');
  await page.locator('#program-dialog').waitFor({ state: 'hidden' });
  assert.equal(await page.locator('#detail').isHidden(), true, 'a button click does not open the details');

  // After a stop, the last exit and what ended it show.
  await row(page, name).getByRole('button', { name: 'Stop', exact: true }).click();
  await waitForState(page, name, 'stopped');
  await row(page, name).locator('.cmd').click();
  await waitForText(page, '#detail-name', name);
  await waitForText(page, '#detail-pid', '—');
  await waitForText(page, '#detail-uptime', '—');
  const stopped = (await api('GET', `/api/programs/${name}`)).body;
  const expected = stopped.exit_signal != null ? `signal ${stopped.exit_signal}` : stopped.exit_code != null ? `exit code ${stopped.exit_code}` : '—';
  await waitForText(page, '#detail-last-exit', expected);
  await screenshot(page, 'details-row-click');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});

test('Enter on a focused row opens its details; Tab reaches the rows', async () => {
  const a = uniqueName('web-keys-a'), b = uniqueName('web-keys-b');
  await add({ name: a, command: 'exec sleep 300' });
  await add({ name: b, command: 'false', start_seconds: 1, start_retries: 0 });
  assert.equal((await api('POST', `/api/programs/${b}/start?wait=false`)).status, 200);
  const { page, seen } = await openPage(browser);
  await waitForState(page, b, 'fatal');

  // The rows are in the tab order.
  assert.equal(await row(page, a).getAttribute('tabindex'), '0');
  await row(page, a).focus();
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement.closest('tr')?.dataset.name ?? null);
  assert.equal(focused, a, 'Tab goes from the row to its own buttons');
  await row(page, a).focus();
  await page.keyboard.press('Enter');
  await waitForText(page, '#detail-name', a);

  await row(page, b).focus();
  await page.keyboard.press('Enter');
  await waitForText(page, '#detail-name', b);
  await waitForText(page, '#detail-last-exit', 'exit code 1');
  const last = (await api('GET', `/api/programs/${b}`)).body.last_error;
  assert.ok(last, 'the failed program has a last error');
  await waitForText(page, '#detail-last-error', last);

  // Enter on a row's button does the button's job only.
  await page.click('#detail-close');
  await row(page, a).getByRole('button', { name: 'Start', exact: true }).focus();
  await page.keyboard.press('Enter');
  await waitForState(page, a, 'running');
  assert.equal(await page.locator('#detail').isHidden(), true);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
