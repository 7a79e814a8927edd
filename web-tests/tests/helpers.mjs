// Shared helpers of the browser tests: Debian's Chromium through playwright-core, the servers
// that run.sh started (their addresses come in the environment), a small API client for setup
// and checks, and screenshots.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with web-tests/run.sh`);
  return v;
}

export const URL_AUTH = need('GOSUV_URL');
/** The URL with the credentials in it that `start-server` printed for the web page. */
export const LOGIN_URL = need('GOSUV_LOGIN_URL');
export const SERVER_DIR = need('GOSUV_DIR');
/** The gosuv binary, and a temp dir the tests may write in (run.sh removes it). */
export const BIN = need('GOSUV_BIN');
export const WORK_DIR = need('GOSUV_WORK');
export const CREDENTIALS = { username: need('GOSUV_USER'), password: need('GOSUV_PASS') };
const ARTIFACTS = process.env.GOSUV_ARTIFACTS || fileURLToPath(new URL('../artifacts', import.meta.url));

/** How long a condition may take to come true before a test fails. */
export const WAIT = 20_000;

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // The machine's network is closed: no background connections, no QUIC, no updates.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A new context and page on the auth server (or `url`), recording JS dialogs (which are
 * dismissed), uncaught page errors and console errors.
 */
export async function openPage(browser, { url = URL_AUTH, credentials = CREDENTIALS, go = true } = {}) {
  const context = await browser.newContext({
    viewport: { width: 1400, height: 1000 },
    httpCredentials: credentials ?? undefined,
  });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  const seen = { dialogs: [], errors: [] };
  page.on('dialog', d => { seen.dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on('pageerror', e => seen.errors.push(`pageerror: ${e.message}`));
  page.on('console', m => {
    // Chromium logs every answer with an error status ("Failed to load resource"), and the
    // page shows API errors on purpose (favicon.test.mjs checks that a plain page load has
    // no such answer).
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) {
      seen.errors.push(`console: ${m.text()}`);
    }
  });
  const response = go ? await page.goto(url) : null;
  return { context, page, seen, response };
}

/** Calls the auth server's API from node; returns { status, body }. */
export async function api(method, apiPath, body) {
  const headers = {
    Authorization: 'Basic ' + Buffer.from(`${CREDENTIALS.username}:${CREDENTIALS.password}`).toString('base64'),
  };
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  const res = await fetch(URL_AUTH + apiPath, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json ?? text };
}

/** A program name no other test uses. */
let counter = 0;
export function uniqueName(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/** Deletes a program if it exists (cleanup after a failed test). */
export async function removeQuietly(name) {
  await api('DELETE', `/api/programs/${encodeURIComponent(name)}`).catch(() => {});
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export function row(page, name) {
  return page.locator(`#program-rows tr[data-name="${name}"]`);
}

export function badge(page, name) {
  return row(page, name).locator('.badge');
}

/** Fills and submits the add/edit form; fields left undefined are not touched. */
export async function fillForm(page, f) {
  if (f.name !== undefined) await page.fill('#f-name', f.name);
  if (f.command !== undefined) await page.fill('#f-command', f.command);
  if (f.directory !== undefined) await page.fill('#f-directory', f.directory);
  if (f.environ !== undefined) await page.fill('#f-environ', f.environ);
  if (f.user !== undefined) await page.fill('#f-user', f.user);
  if (f.retries !== undefined) await page.fill('#f-retries', String(f.retries));
  if (f.autostart !== undefined) await page.setChecked('#f-autostart', f.autostart);
  await page.click('#form-submit');
}

/**
 * Waits until the text of the element at `selector` contains `text` (a string) or matches it
 * (a RegExp); fails with what the element showed instead.
 */
export async function waitForText(page, selector, text, timeout = WAIT) {
  const isRe = text instanceof RegExp;
  const arg = { selector, source: isRe ? text.source : text, isRe };
  try {
    await page.waitForFunction(({ selector, source, isRe }) => {
      const e = document.querySelector(selector);
      if (!e) return false;
      return isRe ? new RegExp(source).test(e.textContent) : e.textContent.includes(source);
    }, arg, { timeout });
  } catch (e) {
    const now = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => '(no element)');
    throw new Error(`waited ${timeout} ms for ${selector} to show ${text}; it shows: ${JSON.stringify(now?.slice(-600))}`);
  }
}

/** Waits until the program's row shows `state`. */
export async function waitForState(page, name, state, timeout = WAIT) {
  await waitForText(page, `#program-rows tr[data-name="${name}"] .badge`, new RegExp(`^${state}$`), timeout);
}
