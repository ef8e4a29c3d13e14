// Which transport each shell gets, and what each sends: the desktop one goes through the Tauri
// shell's `api_request` command (stubbed here: there is no Tauri in a browser), the web one
// talks to a real local HTTP server with the session cookie's CSRF companion on changes.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DesktopTransport, WebTransport, detectTransport, isDesktop, readCookie } from '../src/api/transport';

type Seen = { method: string; url: string; headers: IncomingMessage['headers']; body: string };

describe('transport selection', () => {
  afterEach(() => {
    delete (window as unknown as Record<string, unknown>).__TAURI__;
  });

  it('uses fetch in the browser', () => {
    expect(isDesktop()).toBe(false);
    expect(detectTransport()).toBeInstanceOf(WebTransport);
  });

  it('uses the shell command when window.__TAURI__ is there', async () => {
    const calls: [string, unknown][] = [];
    (window as unknown as Record<string, unknown>).__TAURI__ = {
      core: {
        invoke: async (cmd: string, args: unknown) => {
          calls.push([cmd, args]);
          return { status: 200, body: { items: [] } };
        },
      },
    };
    expect(isDesktop()).toBe(true);
    const t = detectTransport();
    expect(t).toBeInstanceOf(DesktopTransport);
    expect(await t.request('GET', '/api/v1/environments')).toEqual({ status: 200, body: { items: [] } });
    await t.request('POST', '/api/v1/approvals/a1/approve', { reason: 'ok' });
    expect(calls).toEqual([
      ['api_request', { method: 'GET', path: '/api/v1/environments', body: null }],
      ['api_request', { method: 'POST', path: '/api/v1/approvals/a1/approve', body: { reason: 'ok' } }],
    ]);
  });

  it('ignores a __TAURI__ without an invoke function', () => {
    (window as unknown as Record<string, unknown>).__TAURI__ = { core: {} };
    expect(isDesktop()).toBe(false);
  });
});

describe('web transport against a real HTTP server', () => {
  let server: Server;
  let base = '';
  const seen: Seen[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        // The page and this server are different origins under happy-dom.
        res.setHeader('access-control-allow-origin', '*');
        res.setHeader('access-control-allow-headers', '*');
        res.setHeader('access-control-allow-methods', '*');
        if (req.method === 'OPTIONS') return res.end();
        if (req.url === '/missing') {
          res.statusCode = 404;
          res.setHeader('content-type', 'application/json');
          return res.end(JSON.stringify({ error: 'not_found', message: 'no such thing' }));
        }
        if (req.url === '/empty') {
          res.statusCode = 204;
          return res.end();
        }
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('reads the CSRF cookie', () => {
    expect(readCookie('gatehouse_csrf', 'a=1; gatehouse_csrf=abc%3D; b=2')).toBe('abc=');
    expect(readCookie('gatehouse_csrf', 'a=1')).toBeUndefined();
  });

  it('sends the CSRF header on changes only, and parses answers', async () => {
    document.cookie = 'gatehouse_csrf=tok123';
    const t = new WebTransport(base);
    expect(await t.request('GET', '/x')).toEqual({ status: 200, body: { ok: true } });
    expect(await t.request('POST', '/y', { a: 1 })).toEqual({ status: 200, body: { ok: true } });
    expect(await t.request('GET', '/missing')).toEqual({
      status: 404,
      body: { error: 'not_found', message: 'no such thing' },
    });
    expect(await t.request('DELETE', '/empty')).toEqual({ status: 204, body: null });
    const real = seen.filter((s) => s.method !== 'OPTIONS');
    const get = real.find((s) => s.url === '/x')!;
    const post = real.find((s) => s.url === '/y')!;
    expect(get.headers['x-csrf-token']).toBeUndefined();
    expect(post.headers['x-csrf-token']).toBe('tok123');
    expect(post.headers['content-type']).toBe('application/json');
    expect(JSON.parse(post.body)).toEqual({ a: 1 });
  });
});
