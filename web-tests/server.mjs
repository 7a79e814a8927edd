// A gosuv server of its own for a test or a measurement that needs a program set unlike the
// shared server's (thousands of programs, say): HTTP on 127.0.0.1 with a free port behind
// basic auth, plus the unix socket, in a directory of the caller's; `stop()` shuts it down.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * Writes `dir`/config.yml and `dir`/programs.yml (the text given), starts
 * `gosuv start-server -f` there and waits until its API answers (at most `timeout` ms).
 * Returns { url, credentials, api(method, path, body), stop() }.
 */
export async function startServer({ bin, dir, programsYaml, timeout = 120_000 }) {
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const credentials = { username: 'webtest', password: `pw-${process.pid}-${Date.now()}` };
  const conf = path.join(dir, 'config.yml');
  fs.writeFileSync(conf, `server:
  httpserver:
    enabled: true
    addr: "127.0.0.1:${port}"
  unixserver:
    enabled: true
    sockfile: .gosuv.sock
  auth:
    enabled: true
    username: ${credentials.username}
    password: "${credentials.password}"
  log:
    level: warn
client:
  server_url: unix://.gosuv.sock
  username: ${credentials.username}
  password: "${credentials.password}"
`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'programs.yml'), programsYaml);
  const out = fs.openSync(path.join(dir, 'server.out'), 'w');
  const child = spawn(bin, ['-c', 'config.yml', 'start-server', '-f'], { cwd: dir, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const server = serverAt({ bin, conf, port, credentials, child });

  const deadline = Date.now() + timeout;
  for (;;) {
    if (server.exited()) {
      throw new Error(`gosuv exited (${JSON.stringify(server.exited())}): ${fs.readFileSync(path.join(dir, 'server.out'), 'utf8').slice(-2000)}`);
    }
    const r = await server.api('GET', '/api/status').catch(() => null);
    if (r && r.status === 200) break;
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`gosuv did not answer within ${timeout} ms`);
    }
    await new Promise(r => setTimeout(r, 100));
  }
  return server;
}

/**
 * The server that startServer left running in `dir` (its config.yml names its port and
 * password), or null when none answers there.
 */
export async function attachServer({ bin, dir }) {
  const conf = path.join(dir, 'config.yml');
  if (!fs.existsSync(conf)) return null;
  const text = fs.readFileSync(conf, 'utf8');
  const port = /addr: "127\.0\.0\.1:(\d+)"/.exec(text)?.[1];
  const password = /password: "([^"]*)"/.exec(text)?.[1];
  if (!port || !password) return null;
  const server = serverAt({ bin, conf, port, credentials: { username: 'webtest', password } });
  const r = await server.api('GET', '/api/status').catch(() => null);
  return r && r.status === 200 ? server : null;
}

function serverAt({ bin, conf, port, credentials, child = null }) {
  const url = `http://127.0.0.1:${port}`;
  const auth = 'Basic ' + Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
  async function api(method, apiPath, body) {
    const headers = { Authorization: auth };
    if (method !== 'GET') headers['Content-Type'] = 'application/json';
    const res = await fetch(url + apiPath, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, body: json ?? text };
  }
  let exited = null;
  if (child) child.on('exit', (code, signal) => { exited = { code, signal }; });
  async function stop() {
    if (exited) return;
    spawnSync(bin, ['-c', conf, 'shutdown'], { timeout: 60_000, stdio: 'ignore' });
    if (!child) return;
    const deadline = Date.now() + 30_000;
    while (!exited && Date.now() < deadline) await new Promise(r => setTimeout(r, 100));
    if (!exited) child.kill('SIGKILL');
  }
  // Lets this process end with the server still running (kept for a later attachServer).
  const unref = () => child?.unref();
  return { url, credentials, api, stop, unref, exited: () => exited, dir: path.dirname(conf) };
}

/** programs.yml with `n` programs named `${prefix}-00001`...: `exec sleep 3600`, not started. */
export function sleepPrograms(prefix, n, { running = [] } = {}) {
  const width = String(n).length;
  let text = '';
  for (let i = 1; i <= n; i++) {
    const name = `${prefix}-${String(i).padStart(width, '0')}`;
    text += `- name: ${name}\n  command: exec sleep 3600\n  start_auto: ${running.includes(i)}\n  start_seconds: 0\n  stop_timeout: 2\n`;
  }
  return text;
}
