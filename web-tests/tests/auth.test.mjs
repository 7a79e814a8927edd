// Basic auth (the page and its live streams work behind it; nothing without it), the login
// URL start-server prints, and the refusal to serve HTTP without auth.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  launch, openPage, row, waitForText, waitForState, URL_AUTH, LOGIN_URL, CREDENTIALS, BIN, WORK_DIR,
  screenshot,
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

test('the login URL that start-server prints opens the page: basic auth with no password prompt', async () => {
  assert.ok(LOGIN_URL.startsWith(`http://${CREDENTIALS.username}:`), LOGIN_URL);
  assert.equal(new URL(LOGIN_URL).origin, new URL(URL_AUTH).origin);
  // No credentials given to the browser but those in the URL.
  const { page, seen, response, context } = await openPage(browser, { url: LOGIN_URL, credentials: null });
  assert.equal(response.status(), 200);
  await page.waitForFunction(() => document.querySelector('#conn').dataset.state === 'live');
  await waitForState(page, 'seed-ticker', 'running');
  const r = row(page, 'seed-ticker');
  await r.getByRole('button', { name: 'Stop', exact: true }).click();
  await waitForState(page, 'seed-ticker', 'stopped');
  await r.getByRole('button', { name: 'Start', exact: true }).click();
  await waitForState(page, 'seed-ticker', 'running');
  await r.getByRole('button', { name: 'Logs', exact: true }).click();
  await waitForText(page, '#log', /seed \d+/);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('a server with HTTP and no auth does not start, loopback included', () => {
  const dir = fs.mkdtempSync(path.join(WORK_DIR, 'open-'));
  const conf = path.join(dir, 'config.yml');
  fs.writeFileSync(conf, 'server:\n  httpserver:\n    enabled: true\n    addr: "127.0.0.1:1"\n', { mode: 0o600 });
  const r = spawnSync(BIN, ['-c', conf, 'start-server'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /refusing to serve HTTP on 127\.0\.0\.1:1 without auth: any local user/);
  assert.doesNotMatch(r.stdout, /server started/);
});
