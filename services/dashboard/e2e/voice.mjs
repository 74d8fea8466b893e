// Voice input in a real Chromium: the fake microphone plays a spoken WAV file,
// the real whisper service transcribes the recording, and the text reaches the
// terminal only after the user confirms it.
//
// Started by tests/services/dashboard/test_dashboard_e2e.py with E2E_BASE_URL,
// E2E_USERNAME, E2E_PASSWORD, E2E_OUT_DIR, E2E_SPEECH_WAV and E2E_EXPECT_WORD
// (a word the recording says). Prints `STEP`s and a final `RESULT {json}`.
import { join } from 'node:path';
import {
  assertCleanConsole,
  BASE,
  env,
  OUT,
  runScenario,
  signIn,
  step,
  terminalText,
  WAIT,
  waitForTerminalText,
} from './lib.mjs';

const USERNAME = env('E2E_USERNAME');
const PASSWORD = env('E2E_PASSWORD');
const SPEECH_WAV = env('E2E_SPEECH_WAV');
const EXPECT_WORD = env('E2E_EXPECT_WORD').toLowerCase();
const RECORD_MS = Number(env('E2E_RECORD_MS', '3500'));

await runScenario(
  async (page) => {
    await page.goto(`${BASE}/terminals`);
    await signIn(page, USERNAME, PASSWORD);
    await page.getByRole('link', { name: 'Terminals' }).click();
    await page.getByLabel('Session name').fill('e2e-voice');
    await page.getByRole('button', { name: 'New session' }).click();
    await page.getByRole('tab', { name: 'e2e-voice' }).waitFor(WAIT);
    await page.getByTestId('connection-status').locator('visible=true').filter({ hasText: 'Connected' }).waitFor(WAIT);
    await page.locator('[data-testid="terminal-pane"]:visible .xterm').click();
    await page.keyboard.type('clear\n');
    step('opened a terminal');

    const voice = page.getByRole('button', { name: /Voice/ });
    await voice.waitFor(WAIT);
    step('voice input offered because speech-to-text answers its health probe');

    await voice.click();
    const stop = page.getByRole('button', { name: /Stop recording/ });
    await stop.waitFor(WAIT);
    // Let the fake microphone play the phrase into the recorder.
    await page.waitForTimeout(RECORD_MS);
    await stop.click();
    const review = page.getByRole('dialog', { name: 'Voice input' }).locator('textarea');
    await review.waitFor({ timeout: 120_000 });
    const text = await review.inputValue();
    if (!text.toLowerCase().includes(EXPECT_WORD)) {
      throw new Error(`transcription ${JSON.stringify(text)} lacks ${JSON.stringify(EXPECT_WORD)}`);
    }
    await page.screenshot({ path: join(OUT, 'voice-01-review.png') });
    if ((await terminalText(page)).toLowerCase().includes(EXPECT_WORD)) {
      throw new Error('the transcription reached the terminal before it was confirmed');
    }
    step(`recorded and transcribed: ${text}`);

    await page.getByRole('button', { name: 'Insert into terminal' }).click();
    await page.getByRole('dialog', { name: 'Voice input' }).waitFor({ state: 'detached', ...WAIT });
    await page.waitForFunction(
      (word) =>
        [...document.querySelectorAll('[data-testid="terminal-pane"]:not([hidden]) .xterm-rows')].some((rows) =>
          rows.textContent.toLowerCase().includes(word),
        ),
      EXPECT_WORD,
      WAIT,
    );
    await page.screenshot({ path: join(OUT, 'voice-02-inserted.png') });
    step('confirmed text typed into the terminal');

    // Discarding sends nothing: record again, discard, then prove the shell
    // line holds only what was confirmed before by running a marker command.
    await page.locator('[data-testid="terminal-pane"]:visible .xterm').click();
    await page.keyboard.press('Control+U');
    await voice.click();
    await stop.waitFor(WAIT);
    await page.waitForTimeout(RECORD_MS);
    await stop.click();
    await review.waitFor({ timeout: 120_000 });
    await page.getByRole('button', { name: 'Discard' }).click();
    await page.locator('[data-testid="terminal-pane"]:visible .xterm').click();
    await page.keyboard.type('echo marker-$((7*6))\n');
    await waitForTerminalText(page, 'marker-42');
    const rows = (await terminalText(page)).split('\n');
    const markerLine = rows.find((row) => row.includes('echo marker-'));
    if (!markerLine || markerLine.toLowerCase().includes(EXPECT_WORD)) {
      throw new Error(`discarded text reached the shell: ${JSON.stringify(markerLine)}`);
    }
    step('discarded text never reached the terminal');

    assertCleanConsole();
    step('no console errors');
  },
  {
    extraArgs: [
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${SPEECH_WAV}`,
    ],
    permissions: ['microphone'],
  },
);
