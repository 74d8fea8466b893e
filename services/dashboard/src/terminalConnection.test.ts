import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { sessionSocketUrl, TerminalConnection, type ConnectionStatus, type SocketLike } from './terminalConnection';

/** A real WebSocket server standing in for tmux-sessions' `/ws/sessions/{id}`. */
let server: WebSocketServer;
let port: number;
let clients: { socket: WebSocket; url: string; received: string[] }[];
let connection: TerminalConnection | null;

beforeEach(async () => {
  clients = [];
  connection = null;
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  server.on('connection', (socket, request) => {
    const client = { socket, url: request.url ?? '', received: [] as string[] };
    socket.on('message', (data) => client.received.push(data.toString()));
    clients.push(client);
    socket.send(Buffer.from(`hello ${clients.length}\r\n`));
  });
  await new Promise<void>((resolve) => server.on('listening', () => resolve()));
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  connection?.close();
  for (const client of clients) client.socket.terminate();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function connect(path = '/ws/sessions/s1', checkBeforeRetry?: () => Promise<string | null>) {
  const output: string[] = [];
  const notices: string[] = [];
  const statuses: ConnectionStatus[] = [];
  const decoder = new TextDecoder();
  connection = new TerminalConnection({
    url: `ws://127.0.0.1:${port}${path}`,
    onOutput: (bytes) => output.push(decoder.decode(bytes)),
    onStatus: (status) => statuses.push(status),
    onNotice: (message) => notices.push(message),
    ...(checkBeforeRetry ? { checkBeforeRetry } : {}),
    socketFactory: (url) => new WebSocket(url) as unknown as SocketLike,
    backoff: { baseMs: 20, maxMs: 100, jitter: 0 },
  });
  connection.connect();
  return { conn: connection, output, notices, statuses };
}

describe('TerminalConnection', () => {
  it('writes binary frames to the terminal and sends input and resize as JSON', async () => {
    const { conn, output } = connect();
    await until(() => output.includes('hello 1\r\n'), 'the first screen');
    expect(conn.sendInput('ls\r')).toBe(true);
    conn.resize(120, 40);
    const client = clients[0]!;
    await until(() => client.received.length >= 2, 'two frames');
    expect(client.received.map((m) => JSON.parse(m))).toEqual([
      { type: 'input', data: 'ls\r' },
      { type: 'resize', cols: 120, rows: 40 },
    ]);
  });

  it('reconnects with backoff after a dropped connection and resends its size', async () => {
    const { conn, output, statuses } = connect();
    await until(() => conn.status.kind === 'open', 'open');
    conn.resize(100, 30);
    await until(() => clients[0]!.received.length === 1, 'the resize');
    clients[0]!.socket.terminate();
    await until(() => output.includes('hello 2\r\n'), 'the screen after reconnecting');
    await until(() => conn.status.kind === 'open', 'open again');
    const waiting = statuses.filter((s) => s.kind === 'reconnecting' && s.delayMs > 0);
    expect(waiting[0]).toEqual({ kind: 'reconnecting', attempt: 1, delayMs: 20 });
    await until(() => clients[1]!.received.length === 1, 'the resize after reconnecting');
    expect(JSON.parse(clients[1]!.received[0]!)).toEqual({ type: 'resize', cols: 100, rows: 30 });
  });

  it('keeps retrying with growing delays while the server is away', async () => {
    const { conn, statuses } = connect();
    await until(() => conn.status.kind === 'open', 'open');
    // Refuse every new connection so each retry fails.
    server.removeAllListeners('connection');
    server.on('connection', (socket) => socket.terminate());
    clients[0]!.socket.terminate();
    await until(
      () => statuses.filter((s) => s.kind === 'reconnecting' && s.delayMs > 0).length >= 4,
      'four scheduled retries',
    );
    const delays = statuses.flatMap((s) => (s.kind === 'reconnecting' && s.delayMs > 0 ? [s.delayMs] : []));
    expect(delays.slice(0, 4)).toEqual([20, 40, 80, 100]);
  });

  it('gives up when the server says the session is gone', async () => {
    const { conn, statuses } = connect();
    await until(() => conn.status.kind === 'open', 'open');
    clients[0]!.socket.close(4404, 'Session s1 does not exist.');
    await until(() => conn.status.kind === 'closed', 'closed');
    expect(conn.status).toEqual({ kind: 'closed', reason: 'Session s1 does not exist.' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(clients).toHaveLength(1);
    expect(statuses.some((s) => s.kind === 'reconnecting')).toBe(false);
  });

  it('switches to view mode on a new connection', async () => {
    const { conn } = connect();
    await until(() => conn.status.kind === 'open', 'open');
    conn.switchUrl(`ws://127.0.0.1:${port}/ws/sessions/s1?mode=view`);
    await until(() => clients.length === 2 && conn.status.kind === 'open', 'the second connection');
    expect(clients.map((c) => c.url)).toEqual(['/ws/sessions/s1', '/ws/sessions/s1?mode=view']);
    await until(() => clients[0]!.socket.readyState === WebSocket.CLOSED, 'the first socket to close');
  });

  it('shows text frames as notices, never as terminal output', async () => {
    const { output, notices } = connect();
    await until(() => output.length === 1, 'the first screen');
    clients[0]!.socket.send(JSON.stringify({ type: 'error', message: 'this viewer is read-only' }));
    await until(() => notices.length === 1, 'the notice');
    expect(notices).toEqual(['this viewer is read-only']);
    expect(output).toEqual(['hello 1\r\n']);
  });

  it('stops retrying when the check says the session has ended', async () => {
    let checks = 0;
    const { conn, statuses } = connect('/ws/sessions/s1', async () => {
      checks += 1;
      return 'The session has ended.';
    });
    await until(() => conn.status.kind === 'open', 'open');
    clients[0]!.socket.close(1000, 'session ended');
    await until(() => conn.status.kind === 'closed', 'closed');
    expect(conn.status).toEqual({ kind: 'closed', reason: 'The session has ended.' });
    expect(checks).toBe(1);
    expect(statuses.some((s) => s.kind === 'reconnecting')).toBe(false);
  });

  it('retries when the check finds the session still there', async () => {
    let checks = 0;
    const { conn, output } = connect('/ws/sessions/s1', async () => {
      checks += 1;
      return null;
    });
    await until(() => output.length === 1, 'the first screen');
    clients[0]!.socket.terminate();
    await until(() => output.includes('hello 2\r\n'), 'the second screen');
    expect(checks).toBe(1);
    expect(conn.status.kind).toBe('open');
  });

  it('does not send while disconnected', async () => {
    const { conn } = connect();
    await until(() => conn.status.kind === 'open', 'open');
    conn.close();
    expect(conn.sendInput('x')).toBe(false);
    expect(conn.status.kind).toBe('closed');
  });
});

describe('sessionSocketUrl', () => {
  it('follows the page scheme and adds view mode', () => {
    expect(sessionSocketUrl({ protocol: 'https:', host: 'ai.example' }, 'a b', false)).toBe(
      'wss://ai.example/ws/sessions/a%20b',
    );
    expect(sessionSocketUrl({ protocol: 'http:', host: '127.0.0.1:3000' }, 's1', true)).toBe(
      'ws://127.0.0.1:3000/ws/sessions/s1?mode=view',
    );
  });
});
