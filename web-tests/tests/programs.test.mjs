// The program table and its actions: add through the form, live state, log, stop, edit,
// delete with confirmation, validation errors next to their fields, a failing start, reload.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  launch, openPage, api, uniqueName, removeQuietly, screenshot, row, fillForm,
  waitForText, waitForState, SERVER_DIR,
} from './helpers.mjs';

let browser;
const created = [];
before(async () => { browser = await launch(); });
after(async () => {
  for (const name of created) await removeQuietly(name);
  await browser?.close();
});

test('add, start, follow the log, stop, edit and delete a program without reloading the page', async () => {
  const { page, seen } = await openPage(browser);
  const name = uniqueName('web-life');
  created.push(name);
  await page.evaluate(() => { window.__samePage = true; });

  // Add through the form.
  await page.click('#add-btn');
  await fillForm(page, {
    name,
    command: 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.2; done',
    environ: 'GREETING=hello',
    retries: 2,
  });
  await page.locator('#program-dialog').waitFor({ state: 'hidden' });
  await waitForState(page, name, 'stopped');
  const r = row(page, name);
  assert.equal(await r.getByRole('button', { name: 'Start', exact: true }).isEnabled(), true);
  assert.equal(await r.getByRole('button', { name: 'Stop', exact: true }).isDisabled(), true);
  const saved = await api('GET', `/api/programs/${name}`);
  assert.equal(saved.status, 200);
  assert.deepEqual(saved.body.environ, ['GREETING=hello']);
  assert.equal(saved.body.start_retries, 2);

  // Start: the row reaches running through the live events.
  await r.getByRole('button', { name: 'Start', exact: true }).click();
  await waitForState(page, name, 'running');
  assert.match(await r.locator('td').nth(2).textContent(), /^\d+$/, 'a running program shows its pid');
  assert.equal(await r.getByRole('button', { name: 'Start', exact: true }).isDisabled(), true);
  assert.equal(await r.getByRole('button', { name: 'Stop', exact: true }).isEnabled(), true);

  // Its live log: lines keep arriving.
  await r.getByRole('button', { name: 'Logs', exact: true }).click();
  await waitForText(page, '#detail-name', name);
  await waitForText(page, '#log', /line \d+/);
  const lastLine = () => page.evaluate(() => {
    const lines = [...document.querySelectorAll('#log .line')].map(l => l.textContent);
    const m = /line (\d+)/.exec(lines.at(-1) || '');
    return m ? Number(m[1]) : 0;
  });
  const first = await lastLine();
  await page.waitForFunction(n => {
    const lines = [...document.querySelectorAll('#log .line')].map(l => l.textContent);
    return lines.some(l => l === `line ${n + 3}`);
  }, first);
  await screenshot(page, 'program-running-log');

  // Stop.
  await r.getByRole('button', { name: 'Stop', exact: true }).click();
  await waitForState(page, name, 'stopped');
  assert.equal(await r.getByRole('button', { name: 'Start', exact: true }).isEnabled(), true);
  assert.equal(await r.getByRole('button', { name: 'Stop', exact: true }).isDisabled(), true);

  // Edit: the form is filled with the program, the name cannot change.
  await r.getByRole('button', { name: 'Edit', exact: true }).click();
  assert.equal(await page.inputValue('#f-name'), name);
  assert.equal(await page.locator('#f-name').getAttribute('readonly'), '');
  assert.match(await page.inputValue('#f-command'), /echo "line \$i"/);
  assert.equal(await page.inputValue('#f-environ'), 'GREETING=hello');
  await fillForm(page, { command: 'echo "edited $GREETING"; exec sleep 300', environ: 'GREETING=hello\nOTHER=2' });
  await page.locator('#program-dialog').waitFor({ state: 'hidden' });
  await waitForText(page, `#program-rows tr[data-name="${name}"] .cmd`, 'edited');
  const edited = await api('GET', `/api/programs/${name}`);
  assert.deepEqual(edited.body.environ, ['GREETING=hello', 'OTHER=2']);
  assert.equal(edited.body.start_retries, 2, 'keys the form does not show are kept');
  await r.getByRole('button', { name: 'Start', exact: true }).click();
  await waitForState(page, name, 'running');
  await waitForText(page, '#log', 'edited hello');

  // Delete asks first; Cancel keeps it.
  await r.getByRole('button', { name: 'Delete', exact: true }).click();
  await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
  await waitForText(page, '#confirm-text', name);
  await page.click('#confirm-cancel');
  await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
  assert.equal((await api('GET', `/api/programs/${name}`)).status, 200);
  await r.getByRole('button', { name: 'Delete', exact: true }).click();
  await page.click('#confirm-ok');
  await r.waitFor({ state: 'detached' });
  assert.equal((await api('GET', `/api/programs/${name}`)).status, 404);
  assert.equal(await page.locator('#detail').isHidden(), true, 'the deleted program\'s log closes');

  assert.equal(await page.evaluate(() => window.__samePage), true, 'the page was never reloaded');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});

test('the form shows the API\'s validation errors next to the fields they name, as text', async () => {
  const { page, seen } = await openPage(browser);
  await page.click('#add-btn');
  await fillForm(page, { name: '../etc', command: 'true' });
  await waitForText(page, '#err-name', 'invalid name');
  assert.equal(await page.locator('#program-dialog').isVisible(), true);
  // The error quotes what was typed; it is shown as text, not markup.
  await fillForm(page, { name: '<img src=x onerror=alert(3)>', command: 'true' });
  await waitForText(page, '#err-name', '<img src=x onerror=alert(3)>');
  assert.equal(await page.locator('#program-dialog img').count(), 0);

  // (A directory that does not exist is not an error of the program: its start fails.)
  const name = uniqueName('web-invalid');
  created.push(name);
  await fillForm(page, { name, command: '', environ: 'NO_EQUALS_SIGN', retries: -1 });
  await waitForText(page, '#err-command', 'empty');
  assert.equal(await page.textContent('#err-name'), '', 'the fixed name has no error any more');
  await waitForText(page, '#err-environ', 'KEY=VALUE');
  await waitForText(page, '#err-start_retries', 'negative');
  await screenshot(page, 'form-validation-errors');

  await page.click('#form-cancel');
  await page.locator('#program-dialog').waitFor({ state: 'hidden' });
  assert.equal((await api('GET', `/api/programs/${name}`)).status, 404, 'nothing was added');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});

test('a program that cannot start shows its error in the row and in the page', async () => {
  const { page, seen } = await openPage(browser);
  const name = uniqueName('web-broken');
  created.push(name);
  await page.click('#add-btn');
  await fillForm(page, { name, command: '["/nonexistent/gosuv-web-test-binary", "--flag"]', retries: 0 });
  await page.locator('#program-dialog').waitFor({ state: 'hidden' });
  const saved = await api('GET', `/api/programs/${name}`);
  assert.deepEqual(saved.body.command, ['/nonexistent/gosuv-web-test-binary', '--flag'], 'a JSON list is sent as argv');

  await row(page, name).getByRole('button', { name: 'Start', exact: true }).click();
  await waitForState(page, name, 'fatal');
  await waitForText(page, `#program-rows tr[data-name="${name}"] td.error-cell`, 'cannot run');
  await waitForText(page, '#messages .msg.error', 'could not start');
  assert.equal(await row(page, name).getByRole('button', { name: 'Start', exact: true }).isEnabled(), true, 'it may be started again');
  await screenshot(page, 'failed-start');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});

test('reload picks up a program added to programs.yml by hand', async () => {
  const { page, seen } = await openPage(browser);
  const name = uniqueName('web-reloaded');
  created.push(name);
  const file = path.join(SERVER_DIR, 'programs.yml');
  let text = fs.readFileSync(file, 'utf8');
  if (!text.trim() || text.trim() === '[]') text = '';
  if (text && !text.endsWith('\n')) text += '\n';
  fs.writeFileSync(file, `${text}- name: ${name}\n  command: exec sleep 300\n`);

  await page.click('#reload-btn');
  await waitForText(page, '#messages', `added: ${name}`);
  await waitForState(page, name, 'stopped');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
