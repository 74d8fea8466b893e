/**
 * Build-time switches (Vite env). VITE_WHISPER: `auto` (default) probes
 * `/api/whisper/health`; `on` shows voice input without probing; `off` hides
 * it and sends no probe (use when the stack runs without speech-to-text).
 */
export type WhisperMode = 'auto' | 'on' | 'off';

export function parseWhisperMode(value: string | undefined): WhisperMode {
  const normalised = (value ?? '').trim().toLowerCase();
  if (normalised === 'on' || normalised === 'true' || normalised === '1') return 'on';
  if (normalised === 'off' || normalised === 'false' || normalised === '0') return 'off';
  return 'auto';
}

export const whisperMode: WhisperMode = parseWhisperMode(import.meta.env.VITE_WHISPER as string | undefined);

const SIGNED_IN_HINT = 'aiwf.signedIn';

/**
 * Whether this browser signed in before. Only a hint (the cookie is HttpOnly
 * and is the truth); it spares a fresh visitor a 401 probe of `/api/auth/me`.
 */
export const signedInHint = {
  get(): boolean {
    try {
      return window.localStorage.getItem(SIGNED_IN_HINT) === '1';
    } catch {
      return true;
    }
  },
  set(value: boolean): void {
    try {
      if (value) window.localStorage.setItem(SIGNED_IN_HINT, '1');
      else window.localStorage.removeItem(SIGNED_IN_HINT);
    } catch {
      // storage disabled: the probe simply always runs
    }
  },
};
