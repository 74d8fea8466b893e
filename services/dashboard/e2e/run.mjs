// End-to-end run of the dashboard in a real Chromium against the real services.
//
// Started by tests/services/dashboard/test_dashboard_e2e.py, which serves the
// app and the services on one loopback origin and passes:
//   E2E_BASE_URL, E2E_USERNAME, E2E_PASSWORD, E2E_OUT_DIR,
//   E2E_APPROVE_ID, E2E_REJECT_ID, E2E_RETRY_ID, E2E_CHROMIUM (default /usr/bin/chromium)
// Steps that need the harness (restarting tmux-sessions, stopping the
// orchestrator) are asked for on stdout as `CONTROL <action>`; the harness
// answers `DONE <action>` on stdin. Every passed step prints `STEP <name>`;
// the last line is `RESULT {json}`. Any failure exits non-zero.
import { join } from 'node:path';
import {
  assertCleanConsole,
  BASE,
  control,
  env,
  OUT,
  runScenario,
  signIn,
  state,
  step,
  terminalText,
  WAIT,
  waitForTerminalText,
} from './lib.mjs';

const USERNAME = env('E2E_USERNAME');
const PASSWORD = env('E2E_PASSWORD');
const APPROVE_ID = env('E2E_APPROVE_ID');
const REJECT_ID = env('E2E_REJECT_ID');
const RETRY_ID = env('E2E_RETRY_ID');

/** The column count the shell in the visible terminal sees (`stty size`). */
async function shellColumns(page, label) {
  await page.locator('[data-testid="terminal-pane"]:visible .xterm').click();
  await page.keyboard.type(`clear; echo ${label}-cols-$(stty size | cut -d' ' -f2)-end\n`);
  const pattern = new RegExp(`${label}-cols-(\\d+)-end`);
  await page.waitForFunction(
    (source) => new RegExp(source).test(document.querySelector('[data-testid="terminal-pane"]:not([hidden]) .xterm-rows')?.textContent ?? ''),
    pattern.source,
    WAIT,
  );
  return Number(pattern.exec(await terminalText(page))[1]);
}

/** Ask the shell for its width until it is below `limit` (the resize travels to tmux asynchronously). */
async function shellColumnsBelow(page, limit) {
  let cols = limit;
  for (let attempt = 1; attempt <= 20 && cols >= limit; attempt += 1) {
    if (attempt > 1) await page.waitForTimeout(250);
    cols = await shellColumns(page, `narrow${attempt}`);
  }
  return cols;
}

await runScenario(
  async (page) => {
    // 1. Every view needs the session: a fresh browser lands on the login page.
    await page.goto(`${BASE}/tickets`);
    await page.getByRole('form', { name: 'Sign in' }).waitFor(WAIT);
    if (!page.url().endsWith('/login')) throw new Error(`expected /login, got ${page.url()}`);
    await page.screenshot({ path: join(OUT, '01-login.png') });
    step('login page shown to a fresh browser');

    await signIn(page, USERNAME, PASSWORD);
    step('signed in');

    // 2. Pending tickets from the local ticket folder, rendered as text.
    const approveCard = page.locator(`[data-testid="pending-ticket"][data-ticket-id="${APPROVE_ID}"]`);
    await approveCard.waitFor(WAIT);
    const cardText = await approveCard.innerText();
    for (const expected of [APPROVE_ID, 'Echo the agent command', 'high', 'claude', 'e2e']) {
      if (!cardText.includes(expected)) throw new Error(`pending card lacks ${JSON.stringify(expected)}: ${cardText}`);
    }
    const description = await approveCard.locator('.description').innerText();
    if (!description.includes('<img src=x onerror="window.__xss=1">')) {
      throw new Error(`description markup was not shown as text: ${description}`);
    }
    if ((await approveCard.locator('img').count()) !== 0) throw new Error('ticket text produced an <img> element');
    if ((await page.evaluate(() => window.__xss)) !== undefined) throw new Error('ticket text ran script');
    await page.screenshot({ path: join(OUT, '02-pending.png'), fullPage: true });
    step('pending ticket shown with id, title, priority, labels and literal description');

    // 3. Reject one ticket.
    const rejectCard = page.locator(`[data-testid="pending-ticket"][data-ticket-id="${REJECT_ID}"]`);
    await rejectCard.waitFor(WAIT);
    await rejectCard.getByRole('button', { name: 'Reject' }).click();
    await page.getByTestId('ticket-feedback').filter({ hasText: `Rejected ${REJECT_ID}` }).waitFor(WAIT);
    await rejectCard.waitFor({ state: 'detached', ...WAIT });
    step('rejected a ticket with feedback; it left the pending list');

    // 4. Approve the other: it becomes active with a terminal.
    await approveCard.getByRole('button', { name: 'Approve' }).click();
    await page.getByTestId('ticket-feedback').filter({ hasText: `Approved ${APPROVE_ID}` }).waitFor(WAIT);
    await approveCard.waitFor({ state: 'detached', ...WAIT });
    const activeRow = page.locator(`[data-testid="active-ticket"][data-ticket-id="${APPROVE_ID}"]`);
    await activeRow.getByRole('button', { name: 'Open terminal' }).and(page.locator(':enabled')).waitFor(WAIT);
    await page.screenshot({ path: join(OUT, '03-approved.png'), fullPage: true });
    step('approved a ticket; it is active with a terminal');

    // 5. Its terminal shows the agent command's output.
    await activeRow.getByRole('button', { name: 'Open terminal' }).click();
    await page.waitForURL(`${BASE}/terminals`, WAIT);
    await page.getByTestId('connection-status').filter({ hasText: 'Connected' }).waitFor(WAIT);
    await waitForTerminalText(page, `agent working on ${APPROVE_ID}`);
    step('terminal shows the agent command output');

    // 6. Typing runs in the session (the shell computes the answer, so it is not a local echo).
    await page.locator('[data-testid="terminal-pane"]:visible .xterm').click();
    await page.keyboard.type('echo typed-$((6*7))\n');
    await waitForTerminalText(page, 'typed-42');
    await page.screenshot({ path: join(OUT, '04-terminal.png') });
    step('typed a command and saw its result');

    // 7. Read-only: keys go nowhere; after switching back, the next command runs
    // and the read-only keystrokes never reached the shell.
    await page.getByTestId('read-only-toggle').check();
    await page.getByTestId('connection-status').filter({ hasText: 'Connected' }).waitFor(WAIT);
    await page.locator('[data-testid="terminal-pane"]:visible .xterm').click();
    await page.keyboard.type('echo leaked-$((2+3))\n');
    await page.getByTestId('read-only-toggle').uncheck();
    await page.getByTestId('connection-status').filter({ hasText: 'Connected' }).waitFor(WAIT);
    await page.locator('[data-testid="terminal-pane"]:visible .xterm').click();
    await page.keyboard.type('echo after-$((1+1))\n');
    await waitForTerminalText(page, 'after-2');
    if ((await terminalText(page)).includes('leaked-5')) throw new Error('input typed in read-only mode reached the shell');
    step('read-only toggle blocks input');

    // 8. Copy a selection to the clipboard, and paste from it (bash takes a
    // paste as text, bracketed, so Enter runs it).
    const firstRow = await page.locator('[data-testid="terminal-pane"]:visible .xterm-rows > div').first().boundingBox();
    if (!firstRow) throw new Error('the terminal has no rows');
    const rowY = firstRow.y + firstRow.height / 2;
    await page.mouse.move(firstRow.x + 1, rowY);
    await page.mouse.down();
    await page.mouse.move(firstRow.x + firstRow.width * 0.6, rowY, { steps: 5 });
    await page.mouse.up();
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByText('Copied.').waitFor(WAIT);
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    if (!copied.includes('agent working on')) throw new Error(`copied ${JSON.stringify(copied)}`);
    await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((3*3))'));
    await page.getByRole('button', { name: 'Paste' }).click();
    await waitForTerminalText(page, 'echo pasted-$((3*3))');
    await page.locator('[data-testid="terminal-pane"]:visible .xterm').click();
    await page.keyboard.press('Enter');
    await waitForTerminalText(page, 'pasted-9');
    step('copied a selection and pasted into the terminal');

    // 9. Create and kill a session from the list.
    await page.getByLabel('Session name').fill('e2e-scratch');
    await page.getByRole('button', { name: 'New session' }).click();
    const scratch = page.getByTestId('session-item').filter({ hasText: 'e2e-scratch' });
    await scratch.waitFor(WAIT);
    await page.getByRole('tab', { name: 'e2e-scratch' }).waitFor(WAIT);
    await page.getByTestId('connection-status').locator('visible=true').filter({ hasText: 'Connected' }).waitFor(WAIT);
    await page.screenshot({ path: join(OUT, '05-new-session.png') });
    await scratch.getByRole('button', { name: 'Kill e2e-scratch' }).click();
    await scratch.waitFor({ state: 'detached', ...WAIT });
    await page.getByRole('tab', { name: 'e2e-scratch' }).waitFor({ state: 'detached', ...WAIT });
    step('created and killed a session');

    // 10. Phone width; the shell's terminal size follows the window.
    await page.getByRole('tab', { name: APPROVE_ID }).click();
    const wideCols = await shellColumns(page, 'wide');
    await page.setViewportSize({ width: 390, height: 844 });
    const narrowCols = await shellColumnsBelow(page, wideCols);
    if (!(narrowCols < wideCols)) throw new Error(`shell columns did not follow the window: ${wideCols} -> ${narrowCols}`);
    await page.screenshot({ path: join(OUT, '06-phone-terminals.png'), fullPage: true });
    const terminalsOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (terminalsOverflow > 0) throw new Error(`the terminals page is ${terminalsOverflow}px wider than a phone screen`);
    await page.getByRole('link', { name: 'Tickets' }).click();
    await page.locator(`[data-testid="active-ticket"][data-ticket-id="${APPROVE_ID}"]`).waitFor(WAIT);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error(`the tickets page is ${overflow}px wider than a phone screen`);
    await page.screenshot({ path: join(OUT, '07-phone-tickets.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    step('usable at phone width; the shell size follows the window');

    assertCleanConsole();
    step('no console errors while the services were up');

    // 11. Drop the terminal's connection: tmux-sessions restarts, the tab reconnects.
    state.phase = 'outage';
    await page.getByRole('link', { name: 'Terminals' }).click();
    await page.getByTestId('connection-status').locator('visible=true').filter({ hasText: 'Connected' }).waitFor(WAIT);
    await control('stop-tmux');
    await page.getByTestId('connection-status').locator('visible=true').filter({ hasText: 'Reconnecting' }).waitFor(WAIT);
    await page.screenshot({ path: join(OUT, '08-reconnecting.png') });
    await control('start-tmux');
    await page.getByTestId('connection-status').locator('visible=true').filter({ hasText: 'Connected' }).waitFor({ timeout: 60_000 });
    await page.locator('[data-testid="terminal-pane"]:visible .xterm').click();
    await page.keyboard.type('echo back-$((4*4))\n');
    await waitForTerminalText(page, 'back-16');
    step('terminal reconnected after tmux-sessions restarted');

    // 12. The agent reports completion the way /complete does: the summary goes
    // into $COMPLETION_FILE; the ticket moves to Completed with it.
    await page.keyboard.type('printf "Wrote the feature, tests pass" > "$COMPLETION_FILE"\n');
    await page.getByRole('link', { name: 'Tickets' }).click();
    const done = page.locator(`[data-testid="completed-ticket"][data-ticket-id="${APPROVE_ID}"]`);
    await done.waitFor(WAIT);
    const doneText = await done.innerText();
    if (!doneText.includes('Wrote the feature, tests pass') || !doneText.includes('just now')) {
      throw new Error(`completed ticket lacks summary or time: ${doneText}`);
    }
    await page.screenshot({ path: join(OUT, '09-completed.png'), fullPage: true });
    step('completed ticket shown with its summary and when');

    // 13. A running ticket loses its session (killed here) and the daemon restarts:
    // the ticket is interrupted, kept across the restart, and Retry starts it again.
    const retryCard = page.locator(`[data-testid="pending-ticket"][data-ticket-id="${RETRY_ID}"]`);
    await retryCard.getByRole('button', { name: 'Approve' }).click();
    const retryActive = page.locator(`[data-testid="active-ticket"][data-ticket-id="${RETRY_ID}"]`);
    await retryActive.getByRole('button', { name: 'Open terminal' }).and(page.locator(':enabled')).waitFor(WAIT);
    await page.getByRole('link', { name: 'Terminals' }).click();
    const retrySession = page.getByTestId('session-item').filter({ hasText: RETRY_ID });
    await retrySession.getByRole('button', { name: /^Kill / }).click();
    await retrySession.waitFor({ state: 'detached', ...WAIT });
    await control('restart-orchestrator');
    await page.getByRole('link', { name: 'Tickets' }).click();
    const interrupted = page.locator(`[data-testid="failed-ticket"][data-ticket-id="${RETRY_ID}"]`);
    await interrupted.waitFor(WAIT);
    const interruptedText = await interrupted.innerText();
    if (!/Interrupted/.test(interruptedText) || !/retry/i.test(interruptedText)) {
      throw new Error(`interrupted ticket lacks its status or reason: ${interruptedText}`);
    }
    await page.screenshot({ path: join(OUT, '10-interrupted.png'), fullPage: true });
    await interrupted.getByRole('button', { name: 'Retry' }).click();
    await page.getByTestId('ticket-feedback').filter({ hasText: `Retrying ${RETRY_ID}` }).waitFor(WAIT);
    await retryActive.getByRole('button', { name: 'Open terminal' }).and(page.locator(':enabled')).waitFor(WAIT);
    await retryActive.getByRole('button', { name: 'Open terminal' }).click();
    await waitForTerminalText(page, `agent working on ${RETRY_ID}`);
    await page.getByRole('link', { name: 'Tickets' }).click();
    step('interrupted ticket retried into a new session');

    // 14. The daemon stops: the banner says so and why.
    // The restart above showed the banner for a moment; it clears once the daemon answers.
    await page.getByTestId('health-banner').waitFor({ state: 'detached', ...WAIT });
    await control('stop-orchestrator');
    const banner = page.getByTestId('health-banner');
    await banner.waitFor(WAIT);
    const bannerText = await banner.innerText();
    if (!/Daemon unhealthy/.test(bannerText) || !/Health check failed/.test(bannerText)) {
      throw new Error(`unexpected banner: ${bannerText}`);
    }
    await page.screenshot({ path: join(OUT, '11-unhealthy.png') });
    step('daemon unhealthy banner shown with the reason');

    // 15. The session cookie goes away: the next API call answers 401 and the
    // app returns to the login page, saying why.
    await page.context().clearCookies();
    await page.getByRole('form', { name: 'Sign in' }).waitFor(WAIT);
    await page.getByText('Your session has ended. Please sign in again.').waitFor(WAIT);
    if (!page.url().endsWith('/login')) throw new Error(`expected /login, got ${page.url()}`);
    await page.screenshot({ path: join(OUT, '12-session-ended.png') });
    step('a 401 from the API returns to the login page');
    await signIn(page, USERNAME, PASSWORD);

    // 16. Sign out: every view needs the session again.
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByRole('form', { name: 'Sign in' }).waitFor(WAIT);
    await page.goto(`${BASE}/terminals`);
    await page.getByRole('form', { name: 'Sign in' }).waitFor(WAIT);
    step('signed out; views need the session again');
  },
  { permissions: ['clipboard-read', 'clipboard-write'] },
);
