// Measures the web page with thousands of programs in headless Chromium: the first render of
// the table, a burst of state events, and the idle cost of the periodic refresh. Not a test
// (run.sh does not run it): run it by hand, after `cargo build -p gosuv-bin`:
//
//   node web-tests/bench/table.mjs [--programs 5000] [--page old.html] [--page new.html] \
//     [--bin target/debug/gosuv] [--reps 3] [--real-burst]
//
// Each --page is served in place of the binary's own page (the same server for all), so two
// versions of index.html compare on one program set. Times are the page's own clock
// (performance.now()) and Chromium's main-thread counters (CDP Performance.getMetrics).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer, attachServer, sleepPrograms } from '../server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const { values: opt } = parseArgs({
  options: {
    programs: { type: 'string', default: '5000' },
    page: { type: 'string', multiple: true, default: [] },
    bin: { type: 'string', default: path.join(process.env.CARGO_TARGET_DIR || path.join(root, 'target'), 'debug/gosuv') },
    reps: { type: 'string', default: '3' },
    'real-burst': { type: 'boolean', default: false },
    // A directory for the server: one already running there (from an earlier --keep) is
    // used as it is; with --keep the server is left running at the end.
    'server-dir': { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const N = Number(opt.programs);
const REPS = Number(opt.reps);
const pages = opt.page.length ? opt.page.map(p => ({ label: path.basename(p), html: fs.readFileSync(p, 'utf8') })) : [{ label: 'built-in', html: null }];

const median = xs => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const ms = x => `${x.toFixed(0)} ms`;

async function metrics(cdp) {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return Object.fromEntries(metrics.map(m => [m.name, m.value]));
}
// The long tasks since the last call: { total, max } in ms.
const longTasks = page => page.evaluate(() => { const l = window.__long; window.__long = { total: 0, max: 0 }; return l; });

// Main-thread time spent between two metric snapshots, in ms.
const busy = (a, b) => ({
  task: (b.TaskDuration - a.TaskDuration) * 1000,
  script: (b.ScriptDuration - a.ScriptDuration) * 1000,
  layout: (b.LayoutDuration - a.LayoutDuration + b.RecalcStyleDuration - a.RecalcStyleDuration) * 1000,
});

async function openAt(browser, server, html) {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 }, httpCredentials: server.credentials });
  const page = await context.newPage();
  if (html) await page.route(`${server.url}/`, r => r.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html }));
  let requests = 0, listBytes = 0;
  page.on('request', () => { requests++; });
  // The bytes of the list's answers (GET /api/programs, whole or some fields).
  page.on('response', r => {
    if (new URL(r.url()).pathname !== '/api/programs' || r.request().method() !== 'GET') return;
    r.body().then(b => { listBytes += b.length; }, () => {});
  });
  page.on('pageerror', e => console.log(`page error: ${e.message}`));
  // Marks when every program is in the page's model and a frame has been drawn after it.
  await page.addInitScript(n => {
    window.__rendered = 0;
    // Tasks over 50 ms: the time the page could not answer a click or draw a frame.
    window.__long = { total: 0, max: 0 };
    new PerformanceObserver(l => {
      for (const e of l.getEntries()) { window.__long.total += e.duration; window.__long.max = Math.max(window.__long.max, e.duration); }
    }).observe({ type: 'longtask' });
    const poll = () => {
      // eslint-disable-next-line no-undef
      if (typeof programs !== 'undefined' && programs.size >= n) {
        requestAnimationFrame(() => setTimeout(() => { window.__rendered = performance.now(); }));
        return;
      }
      setTimeout(poll, 2);
    };
    poll();
  }, N);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  return { context, page, cdp, requests: () => requests, listBytes: () => listBytes };
}

async function firstRender(browser, server, html) {
  const o = await openAt(browser, server, html);
  await o.page.goto(server.url);
  await o.page.waitForFunction(() => window.__rendered > 0, null, { timeout: 120_000, polling: 50 });
  const r = await o.page.evaluate(() => {
    const list = performance.getEntriesByType('resource').find(e => /\/api\/programs$/.test(e.name));
    return {
      rendered: window.__rendered,
      listAnswered: list ? list.responseEnd : NaN,
      rows: document.querySelectorAll('#program-rows tr').length,
      nodes: document.getElementsByTagName('*').length,
    };
  });
  const m = await metrics(o.cdp);
  return { ...r, afterList: r.rendered - r.listAnswered, heapMiB: m.JSHeapUsedSize / 2 ** 20, long: await longTasks(o.page), o };
}

// 5,000 state events handed to the page's EventSource as the server sends them, in one go:
// the time to apply them (and draw the next frame), then the main-thread time in the next
// 3 s (the requests the page makes to complete what the events said).
async function syntheticBurst(o) {
  await longTasks(o.page);
  const before = await metrics(o.cdp);
  const req0 = o.requests();
  const t = await o.page.evaluate(async () => {
    const names = [...programs.keys()];
    const at = new Date().toISOString();
    const datas = names.map((name, i) => JSON.stringify({ program: name, from: 'stopped', to: 'starting', pid: 100000 + i, exit_code: null, exit_signal: null, at, reason: null }));
    const t0 = performance.now();
    // eslint-disable-next-line no-undef
    for (const data of datas) events.dispatchEvent(new MessageEvent('state', { data }));
    const t1 = performance.now();
    await new Promise(r => requestAnimationFrame(() => setTimeout(r)));
    return { apply: t1 - t0, toFrame: performance.now() - t0 };
  });
  await new Promise(r => setTimeout(r, 3000));
  const after = await metrics(o.cdp);
  return { ...t, next3s: busy(before, after), requests: o.requests() - req0, long: await longTasks(o.page) };
}

async function idle(o, seconds) {
  await longTasks(o.page);
  const before = await metrics(o.cdp);
  const req0 = o.requests(), bytes0 = o.listBytes();
  await new Promise(r => setTimeout(r, seconds * 1000));
  const after = await metrics(o.cdp);
  const b = busy(before, after);
  return { perSecond: b.task / seconds, requests: o.requests() - req0, listBytes: o.listBytes() - bytes0, long: await longTasks(o.page) };
}

// The real thing: start all, and wait until the page shows every program running.
async function realBurst(server, o) {
  await longTasks(o.page);
  const before = await metrics(o.cdp);
  const req0 = o.requests();
  const t0 = Date.now();
  const r = await server.api('POST', '/api/all/start?wait=false');
  if (r.status !== 200) throw new Error(`start all: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  let serverDone = 0;
  for (;;) {
    const list = (await server.api('GET', '/api/programs?stats=false')).body;
    if (list.every(p => p.state === 'running')) { serverDone = Date.now() - t0; break; }
    await new Promise(r => setTimeout(r, 200));
  }
  await o.page.waitForFunction(n => { let k = 0; for (const p of programs.values()) if (p.data.state === 'running') k++; return k === n; }, N, { timeout: 120_000, polling: 100 });
  const pageDone = Date.now() - t0;
  const after = await metrics(o.cdp);
  const out = { serverDone, pageDone, busy: busy(before, after), requests: o.requests() - req0, long: await longTasks(o.page) };
  await server.api('POST', '/api/all/stop?wait=false');
  for (;;) {
    const list = (await server.api('GET', '/api/programs?stats=false')).body;
    if (list.every(p => p.state === 'stopped')) break;
    await new Promise(r => setTimeout(r, 200));
  }
  return out;
}

const dir = opt['server-dir'] || fs.mkdtempSync(path.join(os.tmpdir(), 'gosuv-web-bench-'));
const t0 = Date.now();
const server = await attachServer({ bin: opt.bin, dir }) ||
  await startServer({ bin: opt.bin, dir, programsYaml: sleepPrograms('p', N), timeout: 900_000 });
console.log(`server with ${N} programs answering after ${Date.now() - t0} ms (${dir})`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  for (const { label, html } of pages) {
    const runs = [];
    for (let i = 0; i < REPS; i++) {
      const f = await firstRender(browser, server, html);
      const s = await syntheticBurst(f.o);
      const id = await idle(f.o, 10);
      runs.push({ f, s, id });
      if (i === REPS - 1 && opt['real-burst']) {
        const rb = await realBurst(server, f.o);
        console.log(`[${label}] real burst (start all ${N}): server all running after ${rb.serverDone} ms, page after ${rb.pageDone} ms; main thread busy ${ms(rb.busy.task)} (script ${ms(rb.busy.script)}, style+layout ${ms(rb.busy.layout)}); long tasks ${ms(rb.long.total)} in all, longest ${ms(rb.long.max)}; ${rb.requests} requests`);
      }
      await f.o.context.close();
    }
    const med = g => median(runs.map(g));
    console.log(`[${label}] ${N} programs, median of ${REPS}:`);
    console.log(`  first render: list answered at ${ms(med(r => r.f.listAnswered))}, table drawn ${ms(med(r => r.f.afterList))} later (${ms(med(r => r.f.rendered))} from navigation); ${med(r => r.f.rows)} rows, ${med(r => r.f.nodes)} elements, JS heap ${med(r => r.f.heapMiB).toFixed(1)} MiB; longest task ${ms(med(r => r.f.long.max))}`);
    console.log(`  ${N} state events: applied in ${ms(med(r => r.s.apply))}, next frame at ${ms(med(r => r.s.toFrame))}; main thread busy ${ms(med(r => r.s.next3s.task))} in the next 3 s (script ${ms(med(r => r.s.next3s.script))}), longest task ${ms(med(r => r.s.long.max))}; ${med(r => r.s.requests)} requests`);
    console.log(`  idle (periodic refresh): main thread busy ${ms(med(r => r.id.perSecond))} per second, long tasks ${ms(med(r => r.id.long.total))} in 10 s (longest ${ms(med(r => r.id.long.max))}); ${med(r => r.id.requests)} requests in 10 s, ${(med(r => r.id.listBytes) / 1e6).toFixed(2)} MB of list answers`);
  }
} finally {
  await browser.close();
  if (opt.keep) {
    server.unref();
  } else {
    const t1 = Date.now();
    await server.stop();
    console.log(`server stopped in ${Date.now() - t1} ms`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
