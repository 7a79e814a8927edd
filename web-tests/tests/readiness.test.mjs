// Readiness, health and dependencies on the page: the `waiting` badge (a colour of its own),
// what a waiting program waits for, and in a program's details its ready time, health
// record, status text, dependencies with their conditions and the reason of its last change.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  launch, openPage, api, uniqueName, removeQuietly, screenshot, row, waitForText, waitForState,
} from './helpers.mjs';

let browser;
const created = [];
before(async () => { browser = await launch(); });
after(async () => {
  // Dependents first: a program others depend on is removed last.
  for (const name of created.reverse()) await removeQuietly(name);
  await browser?.close();
});

/** A loopback port nothing listens on. */
function closedPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function add(program) {
  created.push(program.name);
  const r = await api('POST', '/api/programs', { stop_timeout: 2, ...program });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

async function openDetails(page, name) {
  await row(page, name).locator('.name-link').click();
  await waitForText(page, '#detail-name', name);
}

/** Whether the details' fact `fact` (its title and value) is shown. */
function factShown(page, fact) {
  return page.evaluate(f => [...document.querySelectorAll(`#detail-facts [data-fact="${f}"]`)]
    .every(e => !e.hidden && e.offsetParent !== null), fact);
}

test('a waiting program has its own badge and its details say what it waits for', async () => {
  const port = await closedPort();
  const db = uniqueName('web-db'), cache = uniqueName('web-cache'), app = uniqueName('web-app');
  // db is never ready (nothing listens on its port) within the test.
  await add({ name: db, command: 'exec sleep 300', ready: { tcp: `127.0.0.1:${port}`, interval: '50ms', timeout: '60s' } });
  await add({ name: cache, command: 'exec sleep 300', start_seconds: 0 });
  await add({ name: app, command: 'exec sleep 300', depends_on: [db, { name: cache, condition: 'started' }] });
  const { page, seen } = await openPage(browser);
  await waitForState(page, app, 'stopped');

  const start = await api('POST', `/api/programs/${app}/start?wait=false`);
  assert.equal(start.status, 200, JSON.stringify(start.body));
  await waitForState(page, app, 'waiting');
  await waitForText(page, `#program-rows tr[data-name="${app}"] .sub`, `for ${db}`);
  await waitForState(page, db, 'starting');

  // The badge's colour is its own: not the default, and not that of any other state.
  const colours = await page.evaluate(() => {
    const probe = document.createElement('span');
    probe.className = 'badge';
    document.body.append(probe);
    const out = {};
    for (const s of ['stopped', 'waiting', 'starting', 'running', 'backoff', 'stopping', 'exited', 'fatal', 'unknown']) {
      probe.dataset.state = s;
      out[s] = getComputedStyle(probe).backgroundColor;
    }
    probe.remove();
    return out;
  });
  const waitingBadge = await row(page, app).locator('.badge').evaluate(b => getComputedStyle(b).backgroundColor);
  assert.equal(waitingBadge, colours.waiting);
  for (const [state, colour] of Object.entries(colours)) {
    if (state !== 'waiting') assert.notEqual(colour, colours.waiting, `waiting looks like ${state}`);
  }
  // Stop is offered while it waits; start is not.
  assert.equal(await row(page, app).getByRole('button', { name: 'Stop', exact: true }).isEnabled(), true);
  assert.equal(await row(page, app).getByRole('button', { name: 'Start', exact: true }).isDisabled(), true);

  await openDetails(page, app);
  await waitForText(page, '#detail-state', /^waiting$/);
  await waitForText(page, '#detail-waiting', db);
  assert.equal(await factShown(page, 'waiting'), true);
  assert.equal((await page.textContent('#detail-waiting')).includes(cache), false, 'cache, started, is satisfied');
  // Its dependencies, each with its condition.
  assert.equal(await factShown(page, 'deps'), true);
  const deps = await page.$$eval('#detail-deps code', codes => codes.map(c => [c.dataset.name, c.dataset.condition]));
  assert.deepEqual(deps, [[db, 'ready'], [cache, 'started']]);
  await waitForText(page, '#detail-deps', `${cache} (started)`);
  await waitForText(page, '#detail-ready', 'not yet (no ready probe');
  assert.equal(await factShown(page, 'health'), false, 'no health probe, no health line');
  assert.equal(await factShown(page, 'status-text'), false);
  await screenshot(page, 'waiting-details');

  // Its dependency is stopped: it goes fatal, says why, and waits for nothing any more.
  const stop = await api('POST', `/api/programs/${db}/stop`);
  assert.equal(stop.status, 200, JSON.stringify(stop.body));
  await waitForState(page, app, 'fatal');
  await waitForText(page, '#detail-state', /^fatal$/);
  await waitForText(page, `#program-rows tr[data-name="${app}"] td.error-cell`, `dependency '${db}' was stopped`);
  await waitForText(page, '#detail-event', `waiting → fatal: dependency '${db}' was stopped`);
  assert.equal(await factShown(page, 'waiting'), false);
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});

test('the details show the ready time, the health record and the status text', async () => {
  const port = await closedPort();
  const name = uniqueName('web-told');
  // Ready by sd_notify with a status text; its health check never passes (nothing listens).
  const script = [
    'import os, socket, time',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    "s.sendto(b'READY=1\\nSTATUS=serving <b>3</b> clients', os.environ['NOTIFY_SOCKET'])",
    'time.sleep(300)',
  ].join('\n');
  await add({
    name, command: ['python3', '-c', script],
    ready: { notify: true, timeout: '30s' },
    health: { tcp: `127.0.0.1:${port}`, interval: '100ms', failures: 1000 },
  });
  const { page, seen } = await openPage(browser);
  await waitForState(page, name, 'stopped');
  await openDetails(page, name);
  await waitForText(page, '#detail-ready', 'not running');

  const start = await api('POST', `/api/programs/${name}/start`);
  assert.equal(start.status, 200, JSON.stringify(start.body));
  await waitForState(page, name, 'running');
  // Ready: its time, how long after the start, and by what.
  await waitForText(page, '#detail-ready', /^at \d\d:\d\d:\d\d, \d+\.\d\d s after its start \(notify/);
  const readyAt = await page.getAttribute('#detail-ready', 'data-ready-at');
  assert.equal(readyAt, start.body.ready_at);
  await waitForText(page, '#detail-event', 'ready: its notify probe passed after');
  // Status text, as text.
  assert.equal(await factShown(page, 'status-text'), true);
  await waitForText(page, '#detail-status-text', 'serving <b>3</b> clients');
  assert.equal(await page.locator('#detail-status-text b').count(), 0);
  // Health: failures in a row of those that restart it, in all, and the last error.
  assert.equal(await factShown(page, 'health'), true);
  await waitForText(page, '#detail-health', /^[2-9]\d* of 1000 failed in a row, \d+ failed in all \(tcp 127\.0\.0\.1:/);
  await waitForText(page, '#detail-health', 'last error: ');
  await waitForText(page, `#program-rows tr[data-name="${name}"] .sub`, /^health failing \d+\/1000$/);
  const h = await page.$eval('#detail-health', e => [Number(e.dataset.failing), Number(e.dataset.failures)]);
  assert.ok(h[0] >= 2 && h[1] >= h[0], `failing ${h[0]}, failures ${h[1]}`);
  const api1 = await api('GET', `/api/programs/${name}`);
  assert.ok(api1.body.health_status.failures >= h[1], JSON.stringify(api1.body.health_status));
  assert.equal(await factShown(page, 'deps'), false, 'no dependencies, no line');
  await screenshot(page, 'ready-and-health-details');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
