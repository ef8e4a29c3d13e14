// The Grants screen against a real local HTTP server that keeps grants as the gateway's
// `/api/v1/grants` endpoints do (web transport, real fetch): the list with each grant's expiry
// (or "never"), and a new grant that lasts a chosen time (`expires_in_seconds`) or forever (no
// expiry field sent at all).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { getTransport, setTransport, type Grant } from '../src/api/client';
import { WebTransport, type Transport } from '../src/api/transport';
import { ConfirmHost } from '../src/components/Confirm';
import { Grants } from '../src/screens/Grants';

const NOW = Date.parse('2026-01-02T03:00:00Z');
let grants: Grant[] = [];
const posted: Record<string, unknown>[] = [];
let server: Server;
let previous: Transport;

function answer(res: import('node:http').ServerResponse, status: number, body?: unknown) {
  res.statusCode = status;
  if (body !== undefined) res.setHeader('content-type', 'application/json');
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      res.setHeader('access-control-allow-origin', '*');
      res.setHeader('access-control-allow-headers', '*');
      res.setHeader('access-control-allow-methods', '*');
      if (req.method === 'OPTIONS') return res.end();
      const url = req.url ?? '';
      if (req.method === 'GET' && url === '/api/v1/grants') return answer(res, 200, { items: grants });
      if (req.method === 'GET' && url === '/api/v1/environments') return answer(res, 200, { items: [] });
      if (req.method === 'POST' && url === '/api/v1/grants') {
        const req = JSON.parse(body) as Record<string, unknown>;
        posted.push(req);
        // As the gateway does: one of the two fields, a positive number of seconds.
        const secs = req.expires_in_seconds as number | undefined;
        if (secs !== undefined && secs <= 0) {
          return answer(res, 400, { error: 'bad_request', message: '`expires_in_seconds` must be positive' });
        }
        const g: Grant = {
          id: `g${grants.length}`,
          groups: req.groups as string[],
          environments: req.environments as string[],
          upstream_role: (req.upstream_role as string | null) ?? null,
          source: 'api',
          created_by: 'root',
          created_at: iso(NOW),
          expires_at: secs === undefined ? null : iso(NOW + secs * 1000),
        };
        grants.push(g);
        return answer(res, 201, g);
      }
      answer(res, 404, { error: 'not_found', message: 'no such endpoint' });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  previous = getTransport();
  setTransport(new WebTransport(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
});
afterAll(async () => {
  setTransport(previous);
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  posted.length = 0;
  grants = [
    {
      id: 'config:0',
      groups: ['admins'],
      environments: ['*'],
      upstream_role: null,
      source: 'config',
      created_by: null,
      created_at: null,
      expires_at: null,
    },
  ];
});
afterEach(() => {
  document.body.innerHTML = '';
});

async function until(what: string, ok: () => boolean) {
  for (let i = 0; i < 200; i++) {
    if (ok()) return;
    await act(() => new Promise((r) => setTimeout(r, 10)));
  }
  throw new Error(`timed out waiting for ${what}; page: ${document.body.textContent}`);
}

const rows = () =>
  [...document.querySelectorAll('table[aria-label="Grants"] tbody tr')].map((r) =>
    [...r.querySelectorAll('td')].map((c) => c.textContent),
  );
const label = (name: string) => [...document.querySelectorAll('label')].find((l) => l.textContent?.trim().startsWith(name))!;

async function fill(name: string, value: string) {
  const el = label(name).querySelector('input, select') as HTMLInputElement | HTMLSelectElement;
  await act(() => {
    el.value = value;
    el.dispatchEvent(new Event(el.tagName === 'SELECT' ? 'change' : 'input', { bubbles: true }));
  });
}

async function submit() {
  await act(() => {
    document.querySelector('form')!.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
  });
}

async function mount() {
  const root = document.body.appendChild(document.createElement('div'));
  await act(() =>
    render(
      <>
        <Grants />
        <ConfirmHost />
      </>,
      root,
    ),
  );
}

describe('Grants screen', () => {
  it('creates a grant that lasts 8 hours and shows when it expires', async () => {
    await mount();
    await until('the list', () => rows().length === 1);
    expect(rows()[0][5]).toBe('never');
    const options = [...label('Expires').querySelectorAll('option')].map((o) => o.textContent);
    expect(options).toEqual(['Never expires', '1 hour', '8 hours', '24 hours', '7 days']);

    await fill('Groups', 'oncall');
    await fill('Environments', 'prod');
    await fill('Expires', String(8 * 3600));
    await submit();
    await until('the new grant', () => rows().length === 2);
    expect(posted).toEqual([{ groups: ['oncall'], environments: ['prod'], upstream_role: null, expires_in_seconds: 28800 }]);
    expect(rows()[1][5]).toBe('2026-01-02 11:00:00Z');
    // The form is back to its defaults: the next grant never expires unless chosen again.
    expect((label('Expires').querySelector('select') as HTMLSelectElement).value).toBe('0');
  });

  it('sends no expiry for a grant that never expires', async () => {
    await mount();
    await until('the list', () => rows().length === 1);
    await fill('Groups', 'eng');
    await fill('Environments', 'staging');
    await submit();
    await until('the new grant', () => rows().length === 2);
    expect(posted).toEqual([{ groups: ['eng'], environments: ['staging'], upstream_role: null }]);
    expect(rows()[1][5]).toBe('never');
  });
});
