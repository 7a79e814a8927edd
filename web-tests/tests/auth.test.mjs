// Basic auth (the page and its live streams work behind it; nothing without it) and the
// server without auth.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, row, waitForText, waitForState, URL_AUTH, URL_OPEN, CREDENTIALS, screenshot,
} from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('without the right credentials the page and the API are refused', async () => {
  for (const credentials of [null, { ...CREDENTIALS, password: 'wrong' }]) {
    const { page, context } = await openPage(browser, { credentials, go: false });
    // Chromium either shows the 401 answer or gives up on the challenge; either way, no page.
    const outcome = await page.goto(URL_AUTH).then(r => r.status(), e => e.message);
    assert.match(String(outcome), /^401$|ERR_INVALID_AUTH_CREDENTIALS/, `credentials ${JSON.stringify(credentials)}`);
    assert.equal(await page.locator('#program-rows').count(), 0);
    await context.close();
  }
  for (const auth of [undefined, 'Basic ' + Buffer.from(`${CREDENTIALS.username}:wrong`).toString('base64')]) {
    const res = await fetch(`${URL_AUTH}/api/programs`, { headers: auth ? { Authorization: auth } : {} });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') || '', /^Basic /, 'browsers are asked for a password');
  }
});

test('behind basic auth the page, its events and its log stream work', async () => {
  const { page, seen, response, context } = await openPage(browser);
  assert.equal(response.status(), 200);
  await page.waitForFunction(() => document.querySelector('#conn').dataset.state === 'live');
  await waitForState(page, 'seed-ticker', 'running');
  await row(page, 'seed-ticker').getByRole('button', { name: 'Logs', exact: true }).click();
  await waitForText(page, '#log', /seed \d+/);
  const n = await page.$eval('#log', b => b.querySelectorAll('.line').length);
  await page.waitForFunction(n => document.querySelectorAll('#log .line').length > n, n);
  await screenshot(page, 'overview-auth');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('without auth (loopback) the page works the same', async () => {
  const { page, seen, response, context } = await openPage(browser, { url: URL_OPEN, credentials: null });
  assert.equal(response.status(), 200);
  await page.waitForFunction(() => document.querySelector('#conn').dataset.state === 'live');
  await waitForState(page, 'seed-ticker', 'running');
  const r = row(page, 'seed-ticker');
  await r.getByRole('button', { name: 'Stop', exact: true }).click();
  await waitForState(page, 'seed-ticker', 'stopped');
  await r.getByRole('button', { name: 'Start', exact: true }).click();
  await waitForState(page, 'seed-ticker', 'running');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
  await context.close();
  assert.notEqual(URL_OPEN, URL_AUTH);
});
