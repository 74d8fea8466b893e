import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff';

describe('backoffDelay', () => {
  const noJitter = { jitter: 0 };

  it('doubles from the base delay', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, noJitter))).toEqual([500, 1000, 2000, 4000]);
  });

  it('never exceeds the cap', () => {
    expect(backoffDelay(6, noJitter)).toBe(10_000);
    expect(backoffDelay(50, noJitter)).toBe(10_000);
    expect(backoffDelay(3, { ...noJitter, maxMs: 1500 })).toBe(1500);
  });

  it('treats attempts below one as the first', () => {
    expect(backoffDelay(0, noJitter)).toBe(500);
    expect(backoffDelay(-3, noJitter)).toBe(500);
  });

  it('takes at most the jitter fraction off', () => {
    expect(backoffDelay(2, { jitter: 0.2, random: () => 0 })).toBe(1000);
    expect(backoffDelay(2, { jitter: 0.2, random: () => 0.999999 })).toBe(800);
    expect(backoffDelay(2, { jitter: 0.5, random: () => 0.5 })).toBe(750);
  });
});
