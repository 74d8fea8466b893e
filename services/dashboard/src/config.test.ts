import { describe, expect, it } from 'vitest';
import { parseWhisperMode } from './config';
import { routeFromPath } from './router';

describe('parseWhisperMode', () => {
  it('probes by default', () => {
    expect(parseWhisperMode(undefined)).toBe('auto');
    expect(parseWhisperMode('')).toBe('auto');
    expect(parseWhisperMode('auto')).toBe('auto');
  });

  it('reads on and off in their usual spellings', () => {
    expect(['on', 'ON', 'true', '1', ' on '].map(parseWhisperMode)).toEqual(['on', 'on', 'on', 'on', 'on']);
    expect(['off', 'False', '0'].map(parseWhisperMode)).toEqual(['off', 'off', 'off']);
  });
});

describe('routeFromPath', () => {
  it('maps client routes and sends anything else to the tickets', () => {
    expect(routeFromPath('/terminals')).toBe('/terminals');
    expect(routeFromPath('/terminals/abc')).toBe('/terminals');
    expect(routeFromPath('/login')).toBe('/login');
    expect(routeFromPath('/')).toBe('/tickets');
    expect(routeFromPath('/nowhere')).toBe('/tickets');
  });
});
