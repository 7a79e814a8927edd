// The add/edit form covers every key of a program: the common ones in view, the others folded
// away; probes and dependencies as JSON checked before sending; an edit sends back every key
// it did not change as the server gave it; the keys left empty send nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openPage, api, uniqueName, removeQuietly, row, fillForm, waitForText, waitForState,
  screenshot,
} from './helpers.mjs';

let browser;
const created = [];
before(async () => { browser = await launch(); });
after(async () => {
  for (const name of created.reverse()) await removeQuietly(name);
  await browser?.close();
});

const COMMON = ['name', 'command', 'directory', 'environ', 'user', 'start_retries', 'autorestart', 'start_auto'];
const ADVANCED = ['start_seconds', 'exit_codes', 'stop_signal', 'stop_timeout', 'start_limit',
  'umask', 'memory_max', 'cgroup', 'env_file', 'redirect_stderr', 'log_disable', 'log_timestamps',
  'log_max_bytes', 'log_backups', 'stdout_logfile', 'stderr_logfile', 'ready', 'health', 'depends_on'];
// Keys a server of this version may not know yet: left empty, the form must not send them.
const NEWER = ['env_file', 'stdout_logfile', 'stderr_logfile', 'log_timestamps', 'start_limit'];
const STATUS = ['state', 'pid', 'started_at', 'uptime_secs', 'exit_code', 'exit_signal', 'restarts', 'last_error',
  'log_errors', 'cpu_percent', 'rss_bytes', 'ownership', 'ready_at', 'status_text', 'health_status', 'waiting_for'];

/** The JSON bodies the page sends to the programs API, as they go out. */
function recordBodies(page) {
  const sent = [];
  page.on('request', r => {
    if (/\/api\/programs(\/[^/]+)?$/.test(new URL(r.url()).pathname) && ['POST', 'PUT'].includes(r.method())) {
      sent.push({ method: r.method(), body: r.postDataJSON() });
    }
  });
  return sent;
}

function configOf(program) {
  const c = structuredClone(program);
  for (const k of STATUS) delete c[k];
  return c;
}

test('every key of a program has a field: the common ones in view, the rest folded away', async () => {
  const { page, seen } = await openPage(browser);
  await page.click('#add-btn');
  await page.locator('#program-dialog').waitFor({ state: 'visible' });
  for (const key of [...COMMON, ...ADVANCED]) {
    assert.equal(await page.locator(`#program-form .field[data-key="${key}"]`).count(), 1, `a field for ${key}`);
  }
  // Instances are a programs.yml setting (the API refuses numprocs above 1): no field for it.
  assert.equal(await page.locator('#program-form [name="numprocs"]').count(), 0, 'no numprocs field');
  for (const key of COMMON) {
    assert.equal(await page.locator(`#program-form .field[data-key="${key}"]`).isVisible(), true, `${key} is in view`);
  }
  assert.equal(await page.locator('#form-advanced').evaluate(d => d.open), false);
  for (const key of ADVANCED) {
    assert.equal(await page.locator(`#program-form .field[data-key="${key}"]`).isVisible(), false, `${key} is folded`);
  }
  await page.click('#form-advanced summary');
  for (const key of ADVANCED) {
    assert.equal(await page.locator(`#program-form .field[data-key="${key}"]`).isVisible(), true, `${key} unfolds`);
  }
  await screenshot(page, 'form-advanced');
  await page.click('#form-cancel');

  // Editing a program that leaves the advanced keys at their defaults: still folded.
  const plain = uniqueName('web-form-plain');
  created.push(plain);
  assert.equal((await api('POST', '/api/programs', { name: plain, command: 'exec sleep 300' })).status, 201);
  await waitForState(page, plain, 'stopped');
  await row(page, plain).getByRole('button', { name: 'Edit', exact: true }).click();
  await page.locator('#program-dialog').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#form-advanced').evaluate(d => d.open), false, 'defaults only: folded');
  assert.equal(await page.inputValue('#f-stop_signal'), 'TERM', 'the folded fields hold the values all the same');
  await page.click('#form-cancel');
  assert.deepEqual(seen.errors, []);
});

test('a program added with the advanced keys has them all, and the empty ones are not sent', async () => {
  const dep = uniqueName('web-form-dep');
  created.push(dep);
  assert.equal((await api('POST', '/api/programs', { name: dep, command: 'exec sleep 300' })).status, 201);
  const { page, seen } = await openPage(browser);
  const sent = recordBodies(page);
  const name = uniqueName('web-form-all');
  created.push(name);
  await page.click('#add-btn');
  await page.click('#form-advanced summary');
  await page.fill('#f-start_seconds', '0');
  await page.fill('#f-exit_codes', '0, 3');
  await page.fill('#f-stop_signal', 'INT');
  await page.fill('#f-stop_timeout', '3');
  await page.fill('#f-umask', '027');
  await page.fill('#f-memory_max', '512MB');
  await page.selectOption('#f-cgroup', 'off');
  await page.setChecked('#f-redirect_stderr', true);
  await page.fill('#f-log_max_bytes', '1MB');
  await page.fill('#f-log_backups', '2');
  await page.fill('#f-ready', '{"tcp": "127.0.0.1:9", "timeout": "5s"}');
  await page.fill('#f-health', '{"exec": "true", "interval": "30s", "failures": 2}');
  await page.fill('#f-depends_on', dep);
  await page.selectOption('#f-autorestart', 'unexpected');
  await fillForm(page, { name, command: 'exec sleep 300', environ: 'A=1', retries: 4 });
  await page.locator('#program-dialog').waitFor({ state: 'hidden' });
  await waitForState(page, name, 'stopped');

  assert.equal(sent.length, 1);
  for (const key of NEWER) assert.equal(key in sent[0].body, false, `${key}, left empty, is not sent`);
  const p = (await api('GET', `/api/programs/${name}`)).body;
  assert.equal(p.start_seconds, 0);
  assert.deepEqual(p.exit_codes, [0, 3]);
  assert.equal(p.stop_signal, 'INT');
  assert.equal(p.stop_timeout, 3);
  assert.equal(p.umask, '027');
  assert.equal(p.memory_max, '512MB');
  assert.equal(p.cgroup, 'off');
  assert.equal(p.redirect_stderr, true);
  assert.equal(p.log_disable, false);
  assert.equal(p.log_max_bytes, 1 << 20);
  assert.equal(p.log_backups, 2);
  assert.equal(p.ready.tcp, '127.0.0.1:9');
  assert.equal(p.health.exec, 'true');
  assert.equal(p.health.failures, 2);
  assert.deepEqual(p.depends_on, [dep]);
  assert.equal(p.autorestart, 'unexpected');
  assert.deepEqual(p.environ, ['A=1']);
  assert.equal(p.start_retries, 4);

  // Opened again, the form shows what it has, advanced part unfolded.
  await row(page, name).getByRole('button', { name: 'Edit', exact: true }).click();
  assert.equal(await page.locator('#form-advanced').evaluate(d => d.open), true);
  await waitForText(page, '#advanced-set', 'stop_signal');
  await waitForText(page, '#advanced-set', 'memory_max');
  assert.equal(await page.inputValue('#f-exit_codes'), '0, 3');
  assert.equal(await page.inputValue('#f-memory_max'), '512MB');
  assert.equal(await page.inputValue('#f-cgroup'), 'off');
  assert.equal(await page.inputValue('#f-depends_on'), dep);
  assert.equal(JSON.parse(await page.inputValue('#f-ready')).tcp, '127.0.0.1:9');
  assert.equal(await page.isChecked('#f-redirect_stderr'), true);
  await page.click('#form-cancel');
  assert.deepEqual(seen.errors, []);
});

test('an edit sends back every key it did not change as the server gave it; an emptied key goes back to its default', async () => {
  const name = uniqueName('web-form-keep');
  created.push(name);
  const program = {
    name, command: ['sleep', '300'], environ: ['X=1'], start_seconds: 0, exit_codes: [0, 2], stop_signal: 'HUP',
    memory_max: '64MB', umask: '022', log_max_bytes: '2MB', ready: { log: 'listening on .*', timeout: '30s' },
    health: { tcp: '127.0.0.1:9', interval: '1m', failures: 5 },
  };
  assert.equal((await api('POST', '/api/programs', program)).status, 201);
  const before = (await api('GET', `/api/programs/${name}`)).body;
  const { page, seen } = await openPage(browser);
  const sent = recordBodies(page);
  await waitForState(page, name, 'stopped');

  await row(page, name).getByRole('button', { name: 'Edit', exact: true }).click();
  await page.fill('#f-stop_timeout', '4');
  await page.fill('#f-memory_max', '');
  await page.click('#form-submit');
  await page.locator('#program-dialog').waitFor({ state: 'hidden' });

  assert.equal(sent.length, 1);
  assert.equal(sent[0].method, 'PUT');
  const expected = configOf(before);
  expected.stop_timeout = 4;
  delete expected.memory_max;
  assert.deepEqual(sent[0].body, expected, 'what the server gave, with the two changes only');
  const after = (await api('GET', `/api/programs/${name}`)).body;
  assert.equal(after.stop_timeout, 4);
  assert.equal(after.memory_max, undefined, 'an emptied field takes the default (no limit)');
  assert.deepEqual(after.command, ['sleep', '300']);
  assert.deepEqual(after.ready, before.ready);
  assert.deepEqual(after.health, before.health);
  assert.equal(after.log_max_bytes, before.log_max_bytes);
  assert.deepEqual(seen.errors, []);
});

test('probes, dependencies and exit codes that do not parse are shown at their field, and nothing is sent', async () => {
  const { page, seen } = await openPage(browser);
  const sent = recordBodies(page);
  const name = uniqueName('web-form-bad');
  created.push(name);
  await page.click('#add-btn');
  await page.click('#form-advanced summary');
  await page.fill('#f-ready', '{"tcp": 127.0.0.1:9}');
  await page.fill('#f-name', name);
  await page.fill('#f-command', 'true');
  // Folded again: the error opens the advanced part to show it.
  await page.click('#form-advanced summary');
  await page.click('#form-submit');
  await waitForText(page, '#err-ready', 'not valid JSON');
  assert.equal(await page.locator('#form-advanced').evaluate(d => d.open), true);
  assert.equal(await page.locator('#err-ready').isVisible(), true);

  await page.fill('#f-ready', '["tcp"]');
  await page.click('#form-submit');
  await waitForText(page, '#err-ready', 'write a JSON object');
  await page.fill('#f-ready', '');
  await page.fill('#f-exit_codes', '0, two');
  await page.click('#form-submit');
  await waitForText(page, '#err-exit_codes', 'whole numbers');
  assert.equal(await page.textContent('#err-ready'), '', 'the fixed field has no error any more');
  await page.fill('#f-exit_codes', '');
  // A number field with what is not a number in it: said, not sent as the default.
  await page.locator('#f-log_backups').pressSequentially('1e');
  await page.click('#form-submit');
  await waitForText(page, '#err-log_backups', 'whole number');
  await page.fill('#f-log_backups', '');
  await page.fill('#f-depends_on', '[{"name": ');
  await page.click('#form-submit');
  await waitForText(page, '#err-depends_on', 'not valid JSON');
  assert.deepEqual(sent, [], 'nothing was sent');

  // An error of the server on an advanced key lands at its field too.
  await page.fill('#f-depends_on', '');
  await page.fill('#f-stop_signal', 'NOSUCHSIGNAL');
  await page.click('#form-submit');
  await waitForText(page, '#err-stop_signal', 'NOSUCHSIGNAL');
  assert.equal(sent.length, 1);
  await page.click('#form-cancel');
  assert.equal((await api('GET', `/api/programs/${name}`)).status, 404, 'nothing was added');
  assert.deepEqual(seen.dialogs, []);
  assert.deepEqual(seen.errors, []);
});
