// Shared pieces of the browser scenarios: settings from the harness, the
// CONTROL channel, step reporting, Chromium and the sign-in.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
export const BASE = env('E2E_BASE_URL');
export const OUT = env('E2E_OUT_DIR');
export const WAIT = { timeout: 30_000 };
mkdirSync(OUT, { recursive: true });

export const steps = [];
export const consoleErrors = [];
export const state = { phase: 'clean' };

export const step = (name) => {
  steps.push(name);
  console.log(`STEP ${name}`);
};

const answers = createInterface({ input: process.stdin });
const pendingAnswers = [];
answers.on('line', (line) => pendingAnswers.shift()?.(line.trim()));

/** Ask the harness to act (`CONTROL stop-tmux`) and wait for its `DONE stop-tmux`. */
export function control(action) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`harness did not answer CONTROL ${action}`)), 60_000);
    pendingAnswers.push((line) => {
      clearTimeout(timer);
      if (line === `DONE ${action}`) resolve();
      else reject(new Error(`harness answered ${line} to ${action}`));
    });
    console.log(`CONTROL ${action}`);
  });
}

export async function terminalText(page) {
  return page.locator('[data-testid="terminal-pane"]:visible .xterm-rows').innerText();
}

export async function waitForTerminalText(page, needle) {
  await page.waitForFunction(
    (text) =>
      [...document.querySelectorAll('[data-testid="terminal-pane"]:not([hidden]) .xterm-rows')].some((rows) =>
        rows.textContent.replace(/\u00a0/g, ' ').includes(text),
      ),
    needle,
    WAIT,
  );
}

export async function signIn(page, username, password) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('username').filter({ hasText: username }).waitFor(WAIT);
}

/**
 * Run `scenario(page)` in a fresh headless Chromium profile, then print
 * `RESULT {json}` and exit non-zero on failure (a screenshot is kept).
 */
export async function runScenario(scenario, { extraArgs = [], permissions = [] } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'aiwf-dashboard-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: env('E2E_CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
      ...extraArgs,
    ],
    viewport: { width: 1280, height: 800 },
    permissions,
  });
  let failure = null;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (message) => {
      if (message.type() === 'error') {
        consoleErrors.push({ phase: state.phase, text: message.text(), url: message.location().url });
      }
    });
    page.on('pageerror', (error) => consoleErrors.push({ phase: state.phase, text: `pageerror: ${error.message}`, url: '' }));
    page.on('dialog', (dialog) => void dialog.accept());
    await scenario(page);
  } catch (error) {
    failure = error instanceof Error ? (error.stack ?? error.message) : String(error);
    try {
      const page = context.pages()[0];
      if (page) await page.screenshot({ path: join(OUT, 'failure.png'), fullPage: true });
    } catch {
      // the screenshot is a convenience
    }
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    answers.close();
  }
  console.log(`RESULT ${JSON.stringify({ ok: failure === null, steps, failure, consoleErrors })}`);
  process.exit(failure === null ? 0 : 1);
}

/** Fail when the browser console logged errors in the clean phase. */
export function assertCleanConsole() {
  const clean = consoleErrors.filter((e) => e.phase === 'clean');
  if (clean.length) throw new Error(`browser console errors: ${JSON.stringify(clean)}`);
}
