// The Grants screen against a real local HTTP server that keeps grants as the gateway's
// `/api/v1/grants` endpoints do (web transport, real fetch): the list with each grant's expiry
// (or "never"), and a new grant that lasts a chosen time (`expires_in_seconds`) or forever (no
// expiry field sent at all).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Grant } from '../src/api/client';
import { Grants } from '../src/screens/Grants';
import { fill, label, mountScreen, submit, tableRows, until, withFakeGateway } from './harness';

const NOW = Date.parse('2026-01-02T03:00:00Z');
let grants: Grant[] = [];
const posted: Record<string, unknown>[] = [];

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

withFakeGateway((req) => {
  if (req.method === 'GET' && req.url === '/api/v1/grants') return { status: 200, body: { items: grants } };
  if (req.method === 'GET' && req.url === '/api/v1/environments') return { status: 200, body: { items: [] } };
  if (req.method === 'POST' && req.url === '/api/v1/grants') {
    const sent = JSON.parse(req.body) as Record<string, unknown>;
    posted.push(sent);
    // As the gateway does: one of the two fields, a positive number of seconds.
    const secs = sent.expires_in_seconds as number | undefined;
    if (secs !== undefined && secs <= 0) {
      return { status: 400, body: { error: 'bad_request', message: '`expires_in_seconds` must be positive' } };
    }
    const g: Grant = {
      id: `g${grants.length}`,
      groups: sent.groups as string[],
      environments: sent.environments as string[],
      upstream_role: (sent.upstream_role as string | null) ?? null,
      source: 'api',
      created_by: 'root',
      created_at: iso(NOW),
      expires_at: secs === undefined ? null : iso(NOW + secs * 1000),
      break_glass: false,
    };
    grants.push(g);
    return { status: 201, body: g };
  }
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
      break_glass: false,
    },
  ];
});
afterEach(() => {
  document.body.innerHTML = '';
});

const rows = () => tableRows('Grants');

describe('Grants screen', () => {
  it('creates a grant that lasts 8 hours and shows when it expires', async () => {
    await mountScreen(<Grants />);
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
    await mountScreen(<Grants />);
    await until('the list', () => rows().length === 1);
    await fill('Groups', 'eng');
    await fill('Environments', 'staging');
    await submit();
    await until('the new grant', () => rows().length === 2);
    expect(posted).toEqual([{ groups: ['eng'], environments: ['staging'], upstream_role: null }]);
    expect(rows()[1][5]).toBe('never');
  });
});
