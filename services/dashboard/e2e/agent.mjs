// The real agent in the browser: approve a ticket on a real stack and watch
// the real Claude Code's TUI in its terminal.
//
// Started by tests/e2e/test_agent_browser.py against the nginx of a running
// `aiwf up` stack (TLS with a self-signed certificate), which passes:
//   E2E_BASE_URL (the origin the stack accepts, https://localhost:<port>),
//   E2E_USERNAME, E2E_PASSWORD, E2E_TICKET_ID, E2E_OUT_DIR,
//   E2E_EXPECT_VERSION (the pinned Claude Code release, e.g. 2.1.328),
//   E2E_CHROMIUM (default /usr/bin/chromium)
// Every passed step prints `STEP <name>`; the last line is
// `RESULT {json}` with what the terminal showed (`screen`) and the
// screenshot's path. Any failure exits non-zero (a failure.png is kept).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { BASE, consoleErrors, env, OUT, signIn, state, step, steps, WAIT } from './lib.mjs';

const USERNAME = env('E2E_USERNAME');
const PASSWORD = env('E2E_PASSWORD');
const TICKET_ID = env('E2E_TICKET_ID');
const VERSION = env('E2E_EXPECT_VERSION', '2.1.328');
/** How long Claude Code may take to start and draw its TUI in the sandbox. */
const TUI_TIMEOUT_MS = 120_000;
const SCREENSHOT = join(OUT, 'agent-terminal.png');

const PANE = '[data-testid="terminal-pane"]:not([hidden])';

/** The visible terminal's rows as text, one line a row (xterm's DOM renderer). */
async function screenText(page) {
  return page.evaluate((pane) => {
    const rows = document.querySelector(`${pane} .xterm-rows`);
    if (!rows) return '';
    return [...rows.children].map((row) => row.textContent.replace(/\u00a0/g, ' ').trimEnd()).join('\n');
  }, PANE);
}

async function scenario(page, seen) {
  await page.goto(`${BASE}/tickets`);
  await page.getByRole('form', { name: 'Sign in' }).waitFor(WAIT);
  await signIn(page, USERNAME, PASSWORD);
  step('signed in');

  // The ticket file becomes a pending card once the orchestrator has polled the folder.
  const card = page.locator(`[data-testid="pending-ticket"][data-ticket-id="${TICKET_ID}"]`);
  await card.waitFor({ timeout: 90_000 });
  const approve = card.getByRole('button', { name: 'Approve' }).and(page.locator(':enabled'));
  await approve.waitFor(WAIT);
  await approve.click();
  await page.getByTestId('ticket-feedback').filter({ hasText: `Approved ${TICKET_ID}` }).waitFor(WAIT);
  step('approved the ticket');

  // The agent's terminal: from its active row, or, when the agent already
  // completed the ticket (its session lives on, idle at the prompt), from the
  // session list.
  const activeOpen = page
    .locator(`[data-testid="active-ticket"][data-ticket-id="${TICKET_ID}"]`)
    .getByRole('button', { name: 'Open terminal' })
    .and(page.locator(':enabled'));
  const completedRow = page.locator(`[data-testid="completed-ticket"][data-ticket-id="${TICKET_ID}"]`);
  await activeOpen.or(completedRow).first().waitFor({ timeout: 60_000 });
  if (await activeOpen.isVisible()) {
    await activeOpen.click();
    seen.openedFrom = 'active ticket';
  } else {
    await page.getByRole('link', { name: 'Terminals' }).click();
    const session = page.getByTestId('session-item').filter({ hasText: `claude-${TICKET_ID}-` });
    await session.waitFor(WAIT);
    await session.locator('.session-open').click();
    seen.openedFrom = 'session list';
  }
  await page.waitForURL(`${BASE}/terminals`, WAIT);
  await page.getByTestId('connection-status').locator('visible=true').filter({ hasText: 'Connected' }).waitFor(WAIT);
  seen.tab = await page.getByRole('tab', { selected: true }).innerText();
  step(`opened the agent's terminal (${seen.openedFrom})`);

  // Claude Code draws its TUI: the banner with its name and version.
  await page.waitForFunction(
    ({ pane, version }) => {
      const text = document.querySelector(`${pane} .xterm-rows`)?.textContent.replace(/\u00a0/g, ' ') ?? '';
      return text.includes('Claude Code') && text.includes(`v${version}`);
    },
    { pane: PANE, version: VERSION },
    { timeout: TUI_TIMEOUT_MS },
  );
  seen.screen = await screenText(page);
  await page.screenshot({ path: SCREENSHOT });
  seen.screenshot = SCREENSHOT;
  step('the terminal shows the Claude Code TUI');
}

const profile = mkdtempSync(join(tmpdir(), 'aiwf-agent-e2e-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: env('E2E_CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  ignoreHTTPSErrors: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    '--disable-sync',
    '--ignore-certificate-errors',
  ],
  viewport: { width: 1280, height: 800 },
});
const seen = { openedFrom: null, tab: null, screen: null, screenshot: null };
let failure = null;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (message) => {
    if (message.type() === 'error') {
      consoleErrors.push({ phase: state.phase, text: message.text(), url: message.location().url });
    }
  });
  page.on('pageerror', (error) => consoleErrors.push({ phase: state.phase, text: `pageerror: ${error.message}`, url: '' }));
  await scenario(page, seen);
} catch (error) {
  failure = error instanceof Error ? (error.stack ?? error.message) : String(error);
  try {
    const page = context.pages()[0];
    if (page) {
      seen.screen ??= await screenText(page);
      await page.screenshot({ path: join(OUT, 'failure.png'), fullPage: true });
    }
  } catch {
    // the screenshot is a convenience
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`RESULT ${JSON.stringify({ ok: failure === null, steps, failure, ...seen, consoleErrors })}`);
process.exit(failure === null ? 0 : 1);
