import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiClient, ApiError } from './api';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

type Handler = (req: Seen, res: ServerResponse) => void;

let server: Server;
let baseUrl: string;
let handler: Handler;
let seen: Seen[];

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(request);
      handler(request, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  seen = [];
  handler = (_req, res) => json(res, 404, { detail: 'Not found.' });
});

describe('ApiClient', () => {
  it('reads ticket lists as JSON', async () => {
    handler = (_req, res) => json(res, 200, { tickets: [{ id: 'a' }], count: 1 });
    const api = new ApiClient({ baseUrl });
    const list = await api.pendingTickets();
    expect(list.count).toBe(1);
    expect(seen[0]?.url).toBe('/api/pending-tickets');
    expect(seen[0]?.method).toBe('GET');
  });

  it('posts approve, reject and retry to the ticket’s escaped id', async () => {
    handler = (req, res) => json(res, 200, { ticket: { id: req.url } });
    const api = new ApiClient({ baseUrl });
    await api.approve('a/b c');
    await api.reject('T-2');
    await api.retry('T-3');
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /api/approve/a%2Fb%20c',
      'POST /api/reject/T-2',
      'POST /api/retry/T-3',
    ]);
  });

  it('reads a ticket’s change from its escaped id, and its 404 as an ApiError', async () => {
    const change = { branch: 'aiwf/T-1', commits: [{ sha: 'abc', subject: 'Fix' }], diffstat: 'd', patch: 'p' };
    handler = (req, res) => (req.url === '/api/tickets/a%2Fb/change' ? json(res, 200, change) : json(res, 404, { detail: 'No change.' }));
    const api = new ApiClient({ baseUrl });
    await expect(api.ticketChange('a/b')).resolves.toEqual(change);
    await expect(api.ticketChange('T-2')).rejects.toMatchObject({ status: 404, message: 'No change.' });
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /api/tickets/a%2Fb/change', 'GET /api/tickets/T-2/change']);
  });

  it('sends the login as JSON and accepts 204 without a body', async () => {
    handler = (_req, res) => {
      res.writeHead(204);
      res.end();
    };
    const api = new ApiClient({ baseUrl });
    await expect(api.login('alice', 's3cret')).resolves.toBeUndefined();
    expect(seen[0]?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(seen[0]!.body.toString())).toEqual({ username: 'alice', password: 's3cret' });
  });

  it('signs out here or everywhere with a POST to its own route', async () => {
    handler = (_req, res) => {
      res.writeHead(204);
      res.end();
    };
    const api = new ApiClient({ baseUrl });
    await api.logout();
    await api.logoutEverywhere();
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /api/auth/logout',
      'POST /api/auth/logout-everywhere',
    ]);
  });

  it('turns {"detail"} into the error message with the status', async () => {
    handler = (_req, res) => json(res, 409, { detail: 'Ticket T-1 is not pending.' });
    const api = new ApiClient({ baseUrl });
    const error = await api.approve('T-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(409);
    expect((error as ApiError).message).toBe('Ticket T-1 is not pending.');
  });

  it('falls back to the status line for an HTML error page', async () => {
    handler = (_req, res) => {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      res.end('<html><body>Bad Gateway</body></html>');
    };
    const error = (await new ApiClient({ baseUrl }).orchestratorHealth().catch((e: unknown) => e)) as ApiError;
    expect(error.status).toBe(502);
    expect(error.message).toBe('502 Bad Gateway');
  });

  it('tells the unauthorized handler about a 401, but not for a wrong password', async () => {
    handler = (_req, res) => json(res, 401, { detail: 'Not signed in.' });
    let told = 0;
    const api = new ApiClient({ baseUrl, onUnauthorized: () => (told += 1) });
    await expect(api.login('alice', 'wrong')).rejects.toMatchObject({ status: 401 });
    expect(told).toBe(0);
    await expect(api.sessions()).rejects.toMatchObject({ status: 401 });
    expect(told).toBe(1);
  });

  it('reports an unreachable service as status 0 naming the path', async () => {
    const api = new ApiClient({ baseUrl: 'http://127.0.0.1:1' });
    const error = (await api.orchestratorHealth().catch((e: unknown) => e)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(0);
    expect(error.message).toContain('/api/orchestrator/health');
  });

  it('creates and kills sessions', async () => {
    handler = (req, res) => {
      if (req.method === 'POST') json(res, 201, { id: 's1', name: 'work' });
      else {
        res.writeHead(204);
        res.end();
      }
    };
    const api = new ApiClient({ baseUrl });
    const session = await api.createSession({ name: 'work', command: 'bash' });
    await api.killSession(session.id);
    expect(JSON.parse(seen[0]!.body.toString())).toEqual({ name: 'work', command: 'bash' });
    expect(seen[1]?.method).toBe('DELETE');
    expect(seen[1]?.url).toBe('/api/sessions/s1');
  });

  it('uploads audio as the multipart field "file"', async () => {
    handler = (_req, res) => json(res, 200, { text: 'list files', language: 'en', duration: 1.2, segments: [] });
    const api = new ApiClient({ baseUrl });
    const result = await api.transcribe(new Blob([new Uint8Array([0x1a, 0x45, 0xdf, 0xa3])], { type: 'audio/webm' }));
    expect(result.text).toBe('list files');
    const request = seen[0]!;
    expect(request.url).toBe('/api/whisper/transcribe');
    expect(request.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    const body = request.body.toString('latin1');
    expect(body).toContain('name="file"; filename="speech.webm"');
    expect(body).toContain('Content-Type: audio/webm');
    expect(body).toContain('\x1a\x45\xdf\xa3');
  });

  it('finds speech-to-text available only when its health answers 2xx', async () => {
    const api = new ApiClient({ baseUrl });
    handler = (_req, res) => json(res, 200, { status: 'ok' });
    await expect(api.whisperAvailable()).resolves.toBe(true);
    handler = (_req, res) => json(res, 503, { detail: 'speech-to-text is off' });
    await expect(api.whisperAvailable()).resolves.toBe(false);
    handler = (_req, res) => json(res, 200, { status: 'off' });
    await expect(api.whisperAvailable()).resolves.toBe(false);
    expect(seen.map((r) => r.url)).toEqual(['/api/whisper/health', '/api/whisper/health', '/api/whisper/health']);
  });
});
