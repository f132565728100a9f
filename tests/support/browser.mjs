// Headless Chromium for the browser tests (playwright-core driving the system's Chromium),
// plus helpers to open the web client signed in as a user.
//
// Chromium is closed through its own handle (browser.close / context.close); if that hangs,
// its process is killed by pid. Nothing is killed by name.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, sleep } from './server.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const EXTENSION_DIR = path.join(ROOT, 'extension');
export const ARTIFACTS_DIR = path.join(ROOT, 'tests', 'artifacts');

// The flags every launch needs on these machines (no GPU, no sandbox in containers, no
// background traffic to Google, no first-run UI).
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-dev-shm-usage',
];

function requireChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: the browser tests need it. ` +
        'Install it with `bash scripts/setup.sh --browser` (apt-get install chromium), ' +
        'or point CHROMIUM_PATH at a Chromium binary.',
    );
  }
}

/** Kills a Chromium process by its pid when closing through Playwright did not end it. */
async function closeOrKill(close, pid) {
  const closed = await Promise.race([close().then(() => true, () => false), sleep(10_000).then(() => false)]);
  if (!closed && pid) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A headless browser → {browser, close()}. */
export async function launchBrowser() {
  requireChromium();
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  const pid = browser.process?.()?.pid;
  return { browser, close: () => closeOrKill(() => browser.close(), pid) };
}

/**
 * A persistent profile with the unpacked extension loaded (MV3 needs a persistent context)
 * → {context, extensionId, serviceWorker, close()}.
 */
export async function launchWithExtension(extensionDir = EXTENSION_DIR) {
  requireChromium();
  const profile = await mkdtemp(path.join(os.tmpdir(), 'chromium-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: ['--disable-extensions'],
    args: [
      '--headless=new',
      `--disable-extensions-except=${extensionDir}`,
      `--load-extension=${extensionDir}`,
      ...FLAGS,
    ],
    viewport: { width: 1280, height: 800 },
  });
  const pid = context.browser?.()?.process?.()?.pid;
  const close = async () => {
    await closeOrKill(() => context.close(), pid);
    await rm(profile, { recursive: true, force: true });
  };
  try {
    const serviceWorker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker', { timeout: 15_000 }));
    const extensionId = new URL(serviceWorker.url()).host;
    return { context, extensionId, serviceWorker, close };
  } catch (err) {
    await close();
    throw new Error(`the unpacked extension did not start a service worker: ${err.message}`);
  }
}

/** Makes pages of `context` on the coordinator's origin start signed in with `key`. */
export async function signInContext(context, key) {
  await context.addInitScript((k) => {
    if (!localStorage.getItem('coordinator.apiKey')) localStorage.setItem('coordinator.apiKey', k);
  }, key);
}

/** Opens the session view in a new page and waits until its socket is live. */
export async function openSession(context, server, sessionId) {
  const page = await context.newPage();
  collectPageErrors(page);
  await page.goto(`${server.url}/#/s/${sessionId}`);
  await page.locator('.conn-live').waitFor({ timeout: 20_000 });
  return page;
}

/** Keeps the page's uncaught errors and console errors in `page.errors` for assertions. */
export function collectPageErrors(page) {
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // The browser logs every 4xx answer the page asked for; those the tests provoke on purpose.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) page.errors.push(`console: ${msg.text()}`);
  });
  return page;
}

/** The seqs the timeline shows, in page order. */
export function shownSeqs(page) {
  return page.evaluate(() => [...document.querySelectorAll('.timeline [data-seq]')].map((el) => Number(el.dataset.seq)));
}

/** Saves a screenshot (the viewport, or `fullPage`) under tests/artifacts/ and returns its path. */
export async function screenshot(page, name, { fullPage = false } = {}) {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}
