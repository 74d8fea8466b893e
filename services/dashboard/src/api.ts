import type {
  NewSession,
  OrchestratorHealth,
  Session,
  Ticket,
  TicketChange,
  TicketList,
  Transcription,
} from './types';

/**
 * One small client for every service the dashboard talks to.
 *
 * All paths are relative: nginx (production) or the Vite server (development)
 * routes them. Every error becomes an `ApiError` carrying the status and the
 * service's `{"detail"}` sentence; a 401 from anything but the login call also
 * tells the `onUnauthorized` listener, so the app can return to the login page.
 *
 *   const api = new ApiClient({ onUnauthorized: () => showLogin() });
 *   const { tickets } = await api.pendingTickets();
 */
export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

export interface ApiClientOptions {
  /** Prefix for every path; '' in the browser, `http://127.0.0.1:PORT` in tests. */
  baseUrl?: string;
  onUnauthorized?: () => void;
  fetchImpl?: typeof fetch;
}

interface RequestOptions {
  method?: string;
  json?: unknown;
  body?: BodyInit;
  /** The login call answers 401 for wrong credentials; that is not a lost session. */
  allowUnauthorized?: boolean;
}

export class ApiClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;
  private onUnauthorized: (() => void) | undefined;

  constructor(options: ApiClientOptions = {}) {
    this.baseUrl = options.baseUrl ?? '';
    this.fetchImpl = options.fetchImpl ?? ((input, init) => fetch(input, init));
    this.onUnauthorized = options.onUnauthorized;
  }

  /** Who to tell when a call answers 401 (the session cookie is gone or expired). */
  setUnauthorizedHandler(handler: (() => void) | undefined): void {
    this.onUnauthorized = handler;
  }

  async request<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    let body = options.body;
    if (options.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.json);
    }
    let response: Response;
    try {
      response = await this.fetchImpl(this.baseUrl + path, {
        method: options.method ?? 'GET',
        headers,
        body,
        credentials: 'same-origin',
      });
    } catch (error) {
      throw new ApiError(0, `Cannot reach ${path}: ${describe(error)}`);
    }
    if (response.status === 401 && !options.allowUnauthorized) {
      this.onUnauthorized?.();
    }
    if (!response.ok) {
      throw new ApiError(response.status, await errorDetail(response));
    }
    if (response.status === 204) return undefined as T;
    const type = response.headers.get('content-type') ?? '';
    if (type.includes('application/json')) return (await response.json()) as T;
    return (await response.text()) as T;
  }

  // --- auth (tmux-sessions) ---
  login(username: string, password: string): Promise<void> {
    return this.request('/api/auth/login', {
      method: 'POST',
      json: { username, password },
      allowUnauthorized: true,
    });
  }

  logout(): Promise<void> {
    return this.request('/api/auth/logout', { method: 'POST', allowUnauthorized: true });
  }

  /** Ends every login of this user, on every browser (the server forgets them all). */
  logoutEverywhere(): Promise<void> {
    return this.request('/api/auth/logout-everywhere', { method: 'POST', allowUnauthorized: true });
  }

  me(): Promise<{ username: string }> {
    return this.request('/api/auth/me');
  }

  // --- tickets (orchestrator) ---
  pendingTickets(): Promise<TicketList> {
    return this.request('/api/pending-tickets');
  }

  activeTickets(): Promise<TicketList> {
    return this.request('/api/active-tickets');
  }

  completedTickets(): Promise<TicketList> {
    return this.request('/api/completed-tickets');
  }

  approve(id: string): Promise<{ ticket: Ticket }> {
    return this.request(`/api/approve/${encodeURIComponent(id)}`, { method: 'POST' });
  }

  reject(id: string): Promise<{ ticket: Ticket }> {
    return this.request(`/api/reject/${encodeURIComponent(id)}`, { method: 'POST' });
  }

  retry(id: string): Promise<{ ticket: Ticket }> {
    return this.request(`/api/retry/${encodeURIComponent(id)}`, { method: 'POST' });
  }

  /** The ticket's recorded change (branch, commits, diffstat, patch); 404 when it has none. */
  ticketChange(id: string): Promise<TicketChange> {
    return this.request(`/api/tickets/${encodeURIComponent(id)}/change`);
  }

  orchestratorHealth(): Promise<OrchestratorHealth> {
    return this.request('/api/orchestrator/health');
  }

  // --- sessions (tmux-sessions) ---
  sessions(): Promise<Session[]> {
    return this.request('/api/sessions');
  }

  createSession(spec: NewSession): Promise<Session> {
    return this.request('/api/sessions', { method: 'POST', json: spec });
  }

  killSession(id: string): Promise<void> {
    return this.request(`/api/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
  }

  // --- speech to text (whisper) ---
  /**
   * Whether speech-to-text can be used: its health answers 2xx and does not say
   * `{"status": "off"}` (the stack's nginx may answer so when it is switched off,
   * which keeps the browser console free of a failed probe).
   */
  async whisperAvailable(): Promise<boolean> {
    try {
      const health = await this.request<unknown>('/api/whisper/health');
      const status = health && typeof health === 'object' ? (health as { status?: unknown }).status : undefined;
      return status !== 'off';
    } catch {
      return false;
    }
  }

  transcribe(audio: Blob, filename = 'speech.webm'): Promise<Transcription> {
    const form = new FormData();
    form.append('file', audio, filename);
    return this.request('/api/whisper/transcribe', { method: 'POST', body: form });
  }
}

async function errorDetail(response: Response): Promise<string> {
  const fallback = `${response.status} ${response.statusText}`.trim();
  let text: string;
  try {
    text = await response.text();
  } catch {
    return fallback;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && 'detail' in parsed) {
      const detail = (parsed as { detail: unknown }).detail;
      if (typeof detail === 'string') return detail;
      return JSON.stringify(detail);
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  const trimmed = text.trim();
  return trimmed && trimmed.length < 300 && !trimmed.startsWith('<') ? trimmed : fallback;
}

export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
