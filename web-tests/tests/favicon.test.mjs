// The page's icon: named by the page, served at /favicon.ico (where browsers ask for it by
// themselves, sometimes without the page's credentials), and a page load asks for nothing the
// server does not have.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage, waitForState, URL_AUTH, LOGIN_URL } from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** Loads `url` in a page, recording every answer of 400 or more and every failed request. */
async function load(url, credentials) {
  const opened = await openPage(browser, { url, credentials, go: false });
  const bad = [];
  opened.page.on('response', r => { if (r.status() >= 400) bad.push(`${r.status()} ${r.url()}`); });
  opened.page.on('requestfailed', r => {
    // The live streams are cut when the page closes; nothing else may fail.
    if (!/\/api\/events|\/log\/follow/.test(r.url())) bad.push(`failed ${r.url()}: ${r.failure()?.errorText}`);
  });
  const response = await opened.page.goto(url);
  assert.equal(response.status(), 200);
  await waitForState(opened.page, 'seed-ticker', 'running');
  await opened.page.waitForFunction(() => document.querySelector('#conn').dataset.state === 'live');
  return { ...opened, bad };
}

/** The page's icon as the browser decodes it: its URL and its size once loaded. */
function iconInPage(page) {
  return page.evaluate(() => new Promise(resolve => {
    const link = document.querySelector('link[rel="icon"]');
    if (!link) { resolve(null); return; }
    const img = new Image();
    img.onload = () => resolve({ href: link.href, type: link.type, width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => resolve({ href: link.href, type: link.type, error: 'the icon did not load as an image' });
    img.src = new URL(link.getAttribute('href'), location.origin).href;
  }));
}

test('the page names its icon, /favicon.ico serves it, and a page load has no 404', async () => {
  const { page, seen, bad, context } = await load(URL_AUTH);
  const icon = await iconInPage(page);
  assert.ok(icon, 'a <link rel="icon"> in the page');
  assert.equal(new URL(icon.href).pathname, '/favicon.ico');
  assert.equal(icon.error, undefined, JSON.stringify(icon));
  assert.ok(icon.width > 0 && icon.height > 0, `the icon has a size: ${JSON.stringify(icon)}`);
  assert.deepEqual(bad, [], 'no answer of 400 or more, no failed request');
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('/favicon.ico answers without credentials (the page does not)', async () => {
  const res = await fetch(`${URL_AUTH}/favicon.ico`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/svg+xml');
  assert.match(await res.text(), /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.equal((await fetch(`${URL_AUTH}/`)).status, 401, 'the page itself still needs the password');
  assert.equal((await fetch(`${URL_AUTH}/favicon.ico`, { method: 'POST' })).status, 401, 'only GET is open');
});

test('opened at the login URL (credentials in the URL), the icon loads and nothing fails', async () => {
  const { page, seen, bad, context } = await load(LOGIN_URL, null);
  const icon = await iconInPage(page);
  assert.equal(icon.error, undefined, JSON.stringify(icon));
  assert.ok(icon.width > 0);
  assert.deepEqual(bad, []);
  assert.deepEqual(seen.errors, []);
  await context.close();
});
