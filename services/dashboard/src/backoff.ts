/**
 * Delay before reconnect attempt `attempt` (1-based): exponential from `baseMs`,
 * capped at `maxMs`, with up to `jitter` (a fraction) taken off at random so
 * many tabs do not reconnect in lockstep.
 *
 *   backoffDelay(1) // ~500 ms
 *   backoffDelay(6) // ~10 s (the cap)
 */
export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
  factor?: number;
  jitter?: number;
  random?: () => number;
}

export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { baseMs = 500, maxMs = 10_000, factor = 2, jitter = 0.2, random = Math.random } = options;
  const step = Math.max(1, Math.floor(attempt)) - 1;
  const raw = Math.min(maxMs, baseMs * factor ** step);
  return Math.round(raw * (1 - jitter * random()));
}
