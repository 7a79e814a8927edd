// Restarts and crash loops at a glance: the RESTARTS column counts up while a program that
// exits at once is retried, its `backoff` badge is not green, and a program in backoff for a
// crash loop says `crash loop` with the full reason as the badge's tooltip.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, api, uniqueName, removeQuietly, row, waitForState, screenshot, WAIT,
} from './helpers.mjs';

let browser;
const created = [];
before(async () => { browser = await launch(); });
after(async () => {
  for (const name of created) await removeQuietly(name);
  await browser?.close();
});

/** The background colour a badge of `state` has in the page's style. */
function badgeColour(page, state) {
  return page.evaluate(s => {
    const probe = document.createElement('span');
    probe.className = 'badge';
    probe.dataset.state = s;
    document.body.append(probe);
    const c = getComputedStyle(probe).backgroundColor;
    probe.remove();
    return c;
  }, state);
}

test('a program that exits at once shows a backoff badge (not green) and its restarts counting up', async () => {
  const name = uniqueName('web-backoff');
  created.push(name);
  const add = await api('POST', '/api/programs', { name, command: 'false', start_seconds: 1, start_retries: 20 });
  assert.equal(add.status, 201, JSON.stringify(add.body));
  const { page, seen } = await openPage(browser);
  await waitForState(page, name, 'stopped');
  const restartsCell = row(page, name).locator('td').nth(4);
  assert.equal(await restartsCell.textContent(), '0');
  assert.equal(await page.locator('table.programs th').nth(4).textContent(), 'Restarts');

  await row(page, name).getByRole('button', { name: 'Start', exact: true }).click();
  await waitForState(page, name, 'backoff');
  const badge = row(page, name).locator('.badge');
  const colour = await badge.evaluate(b => getComputedStyle(b).backgroundColor);
  assert.equal(colour, await badgeColour(page, 'backoff'));
  assert.notEqual(colour, await badgeColour(page, 'running'), 'backoff does not look like running');
  assert.equal(await badge.getAttribute('title'), null, 'a plain backoff has no crash-loop tooltip');

  // Each retry counts: the column follows the server's count as it goes up.
  await page.waitForFunction(sel => Number(document.querySelector(sel)?.textContent) >= 2,
    `#program-rows tr[data-name="${name}"] td:nth-child(5)`, { timeout: WAIT });
  const shown = Number(await restartsCell.textContent());
  const server = (await api('GET', `/api/programs/${name}`)).body.restarts;
  assert.ok(server >= shown && shown >= 2, `the page shows ${shown}, the server counts ${server}`);
  await screenshot(page, 'backoff-restarts');

  await row(page, name).getByRole('button', { name: 'Stop', exact: true }).click();
  await waitForState(page, name, 'stopped');
  assert.deepEqual(seen.errors, []);
});

test('a crash loop says so on the badge, with the full reason as its tooltip', async () => {
  const { page, seen } = await openPage(browser);
  // The page's own badge rendering, given programs as the API reads them back.
  const out = await page.evaluate(() => {
    const render = d => {
      const e = document.createElement('span');
      e.className = 'badge';
      document.body.append(e);
      renderBadge(e, d);
      const r = { text: e.textContent, title: e.getAttribute('title'), state: e.dataset.state,
        colour: getComputedStyle(e).backgroundColor };
      e.remove();
      return r;
    };
    return {
      loop: render({ state: 'backoff', last_error: 'crash loop: 5 exits in 60s' }),
      plain: render({ state: 'backoff', last_error: 'exited with code 1 before start_seconds (1 s)' }),
      running: render({ state: 'running', last_error: 'crash loop: 5 exits in 60s' }),
      markup: render({ state: 'backoff', last_error: 'crash loop: <img src=x onerror=alert(1)>' }),
    };
  });
  assert.deepEqual([out.loop.text, out.loop.title, out.loop.state], ['crash loop', 'crash loop: 5 exits in 60s', 'backoff']);
  assert.notEqual(out.loop.colour, await badgeColour(page, 'running'), 'a crash loop is not green');
  assert.deepEqual([out.plain.text, out.plain.title], ['backoff', null]);
  assert.deepEqual([out.running.text, out.running.title], ['running', null], 'once running again it says running');
  assert.equal(out.markup.title, 'crash loop: <img src=x onerror=alert(1)>', 'the reason is text');
  assert.equal(await page.locator('img').count(), 0);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
