import { backoffDelay, type BackoffOptions } from './backoff';

/**
 * A terminal's WebSocket to tmux-sessions that comes back by itself.
 *
 * Output arrives as binary frames (raw bytes); input and resizes leave as JSON
 * text frames. When the socket drops, it waits `backoffDelay(attempt)` and
 * tries again (the attempt count starts over once output flows again), reporting each step through `onStatus`, and sends the last
 * known size again once reconnected. A close code in `FINAL_CLOSE_CODES`
 * (session gone, not allowed) ends the connection for good.
 *
 *   const conn = new TerminalConnection({ url, onOutput: (b) => term.write(b), onStatus: show });
 *   conn.connect();
 *   conn.sendInput('ls\r');
 */
export type ConnectionStatus =
  | { kind: 'connecting' }
  | { kind: 'open' }
  | { kind: 'reconnecting'; attempt: number; delayMs: number }
  | { kind: 'closed'; reason: string };

export interface SocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string) => SocketLike;

export interface TerminalConnectionOptions {
  url: string;
  onOutput: (bytes: Uint8Array) => void;
  onStatus?: (status: ConnectionStatus) => void;
  /** Text frames from the server are notices (`{"type":"error","message"}`), not output. */
  onNotice?: (message: string) => void;
  /**
   * Asked after every unexpected close: a reason to stop (e.g. "the session
   * no longer exists"), or null to retry. A refused handshake (401, 404) reaches
   * the browser only as close code 1006, so this is how the app finds out.
   */
  checkBeforeRetry?: () => Promise<string | null>;
  socketFactory?: SocketFactory;
  backoff?: BackoffOptions;
}

const OPEN = 1;

/** Close codes after which reconnecting cannot help. */
export const FINAL_CLOSE_CODES: ReadonlyMap<number, string> = new Map([
  [1008, 'The server refused this terminal (policy).'],
  [4401, 'Not logged in.'],
  [4403, 'Not allowed to open this terminal.'],
  [4404, 'The session no longer exists.'],
]);

export class TerminalConnection {
  private url: string;
  private readonly onOutput: (bytes: Uint8Array) => void;
  private readonly onStatus: (status: ConnectionStatus) => void;
  private readonly onNotice: (message: string) => void;
  private readonly checkBeforeRetry: () => Promise<string | null>;
  private readonly socketFactory: SocketFactory;
  private readonly backoff: BackoffOptions;
  private socket: SocketLike | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private attempt = 0;
  private stopped = false;
  private size: { cols: number; rows: number } | null = null;
  status: ConnectionStatus = { kind: 'connecting' };

  constructor(options: TerminalConnectionOptions) {
    this.url = options.url;
    this.onOutput = options.onOutput;
    this.onStatus = options.onStatus ?? (() => undefined);
    this.onNotice = options.onNotice ?? (() => undefined);
    this.checkBeforeRetry = options.checkBeforeRetry ?? (() => Promise.resolve(null));
    this.socketFactory = options.socketFactory ?? ((url) => new WebSocket(url) as SocketLike);
    this.backoff = options.backoff ?? {};
  }

  connect(): void {
    this.stopped = false;
    this.clearRetry();
    this.open();
  }

  /** Point at a new URL (e.g. switching to `?mode=view`) and reconnect now. */
  switchUrl(url: string): void {
    this.url = url;
    this.attempt = 0;
    this.dropSocket();
    if (!this.stopped) this.connect();
  }

  sendInput(data: string): boolean {
    return this.send({ type: 'input', data });
  }

  resize(cols: number, rows: number): void {
    this.size = { cols, rows };
    this.send({ type: 'resize', cols, rows });
  }

  close(): void {
    this.stopped = true;
    this.clearRetry();
    this.dropSocket();
    this.setStatus({ kind: 'closed', reason: 'Closed.' });
  }

  private send(message: object): boolean {
    if (!this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  private open(): void {
    this.setStatus(
      this.attempt === 0
        ? { kind: 'connecting' }
        : { kind: 'reconnecting', attempt: this.attempt, delayMs: 0 },
    );
    const socket = this.socketFactory(this.url);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.setStatus({ kind: 'open' });
      if (this.size) this.send({ type: 'resize', ...this.size });
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      if (typeof event.data === 'string') {
        this.onNotice(noticeText(event.data));
        return;
      }
      // Output proves the attach worked; only then does the backoff start over,
      // so a server that accepts and drops at once still gets growing delays.
      this.attempt = 0;
      const bytes = toBytes(event.data);
      if (bytes) this.onOutput(bytes);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      const final = FINAL_CLOSE_CODES.get(event.code);
      if (final) {
        this.stopped = true;
        this.setStatus({ kind: 'closed', reason: event.reason || final });
        return;
      }
      void this.retryUnlessStopped();
    };
    socket.onerror = () => {
      // Always followed by a close event, which decides what happens next.
    };
  }

  private async retryUnlessStopped(): Promise<void> {
    const reason = await this.checkBeforeRetry().catch(() => null);
    if (this.stopped || this.socket) return;
    if (reason) {
      this.stopped = true;
      this.setStatus({ kind: 'closed', reason });
      return;
    }
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    this.attempt += 1;
    const delayMs = backoffDelay(this.attempt, this.backoff);
    this.setStatus({ kind: 'reconnecting', attempt: this.attempt, delayMs });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) this.open();
    }, delayMs);
  }

  private dropSocket(): void {
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      socket.close(1000, 'client closed');
    }
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private setStatus(status: ConnectionStatus): void {
    this.status = status;
    this.onStatus(status);
  }
}

function toBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function noticeText(text: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && 'message' in parsed) {
      return String((parsed as { message: unknown }).message);
    }
  } catch {
    // plain text notice
  }
  return text;
}

/** `ws://host/ws/sessions/ID` (or wss:), with `?mode=view` when read-only. */
export function sessionSocketUrl(location: Pick<Location, 'protocol' | 'host'>, id: string, readOnly: boolean): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = readOnly ? '?mode=view' : '';
  return `${scheme}//${location.host}/ws/sessions/${encodeURIComponent(id)}${query}`;
}
