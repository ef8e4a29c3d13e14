// Which transport each shell gets, and what each sends: the desktop one goes through the Tauri
// shell's `api_request` command (stubbed here: there is no Tauri in a browser), the web one
// talks to a real local HTTP server with the session cookie's CSRF companion on changes.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DesktopTransport, WebTransport, detectTransport, isDesktop, readCookie } from '../src/api/transport';
import { fakeGateway, removeTauri, stubTauri, type GatewayRequest } from './harness';

describe('transport selection', () => {
  afterEach(() => {
    removeTauri();
  });

  it('uses fetch in the browser', () => {
    expect(isDesktop()).toBe(false);
    expect(detectTransport()).toBeInstanceOf(WebTransport);
  });

  it('uses the shell command when window.__TAURI__ is there', async () => {
    const calls: [string, unknown][] = [];
    stubTauri(async (cmd, args) => {
      calls.push([cmd, args]);
      return { status: 200, body: { items: [] } };
    });
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
  let server: Awaited<ReturnType<typeof fakeGateway>>;
  const seen: GatewayRequest[] = [];
  beforeAll(async () => {
    server = await fakeGateway((req) => {
      seen.push(req);
      if (req.url === '/missing') return { status: 404, body: { error: 'not_found', message: 'no such thing' } };
      if (req.url === '/empty') return { status: 204 };
      return { status: 200, body: { ok: true } };
    });
  });
  afterAll(() => server.close());

  it('reads the CSRF cookie', () => {
    expect(readCookie('gatehouse_csrf', 'a=1; gatehouse_csrf=abc%3D; b=2')).toBe('abc=');
    expect(readCookie('gatehouse_csrf', 'a=1')).toBeUndefined();
  });

  it('sends the CSRF header on changes only, and parses answers', async () => {
    document.cookie = 'gatehouse_csrf=tok123';
    const t = new WebTransport(server.url);
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
