// The Groups screen against a real local HTTP server that keeps memberships as the gateway's
// `/api/v1/groups` endpoints do (web transport, real fetch): the list with config members
// read-only, adding a member (new or already there), removing an API member after the
// confirmation, and the empty and error states.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { getTransport, setTransport, type Group } from '../src/api/client';
import { WebTransport, type Transport } from '../src/api/transport';
import { ConfirmHost } from '../src/components/Confirm';
import { Groups } from '../src/screens/Groups';

let groups: Group[] = [];
let refuse = false;
const seen: { method: string; url: string; body: string }[] = [];
let server: Server;
let previous: Transport;

function answer(res: import('node:http').ServerResponse, status: number, body?: unknown) {
  res.statusCode = status;
  if (body !== undefined) res.setHeader('content-type', 'application/json');
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      // The page and this server are different origins under happy-dom.
      res.setHeader('access-control-allow-origin', '*');
      res.setHeader('access-control-allow-headers', '*');
      res.setHeader('access-control-allow-methods', '*');
      if (req.method === 'OPTIONS') return res.end();
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      if (refuse) return answer(res, 403, { error: 'forbidden', message: 'administrators only' });
      const url = req.url ?? '';
      if (req.method === 'GET' && url === '/api/v1/groups') return answer(res, 200, { items: groups });
      const add = url.match(/^\/api\/v1\/groups\/([^/]+)\/members$/);
      if (req.method === 'POST' && add) {
        const name = decodeURIComponent(add[1]);
        const { member } = JSON.parse(body) as { member: string };
        let g = groups.find((x) => x.name === name);
        if (!g) groups.push((g = { id: name, name, members: [] }));
        const added = !g.members.some((m) => m.member === member);
        if (added) g.members.push({ member, source: 'api', added_at: '2026-01-02T03:04:05Z', added_by: 'root' });
        return answer(res, added ? 201 : 200, { group: name, member, added });
      }
      const del = url.match(/^\/api\/v1\/groups\/([^/]+)\/members\/([^/]+)$/);
      if (req.method === 'DELETE' && del) {
        const g = groups.find((x) => x.name === decodeURIComponent(del[1]));
        const before = g?.members.length ?? 0;
        if (g) g.members = g.members.filter((m) => m.source !== 'api' || m.member !== decodeURIComponent(del[2]));
        return g && g.members.length < before ? answer(res, 204) : answer(res, 404, { error: 'not_found', message: 'no such member' });
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
  refuse = false;
  seen.length = 0;
  groups = [{ id: 'admins', name: 'admins', members: [{ member: 'root', source: 'config', added_at: null, added_by: null }] }];
});
afterEach(() => {
  document.body.innerHTML = '';
});

/** Waits (under act) until the page shows what the test expects. */
async function until(what: string, ok: () => boolean) {
  for (let i = 0; i < 200; i++) {
    if (ok()) return;
    await act(() => new Promise((r) => setTimeout(r, 10)));
  }
  throw new Error(`timed out waiting for ${what}; page: ${document.body.textContent}`);
}

const rows = () =>
  [...document.querySelectorAll('table[aria-label="Group members"] tbody tr')].map((r) =>
    [...r.querySelectorAll('td')].map((c) => c.textContent),
  );
const field = (label: string) =>
  [...document.querySelectorAll('label')].find((l) => l.textContent?.trim().startsWith(label))!.querySelector('input')!;
const button = (name: string) =>
  [...document.querySelectorAll('button')].find((b) => (b.getAttribute('aria-label') ?? b.textContent) === name)!;

async function type(label: string, value: string) {
  const input = field(label);
  await act(() => {
    input.value = value;
    input.dispatchEvent(new Event('input', { bubbles: true }));
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
        <Groups />
        <ConfirmHost />
      </>,
      root,
    ),
  );
}

describe('Groups screen', () => {
  it('lists members, config ones read-only, and adds one through the API', async () => {
    await mount();
    await until('the list', () => rows().length === 1);
    expect(rows()).toEqual([['admins', 'root', 'config', '—', 'in the config file']]);
    expect(document.querySelectorAll('table[aria-label="Group members"] button')).toHaveLength(0);

    await type('Group', 'analysts');
    await type('Member', 'dana');
    await submit();
    await until('the new member', () => rows().length === 2);
    expect(seen.find((s) => s.method === 'POST')).toEqual({
      method: 'POST',
      url: '/api/v1/groups/analysts/members',
      body: JSON.stringify({ member: 'dana' }),
    });
    expect(rows()[1]).toEqual(['analysts', 'dana', 'api', '2026-01-02 03:04:05Z by root', 'Remove']);
    expect(document.querySelector('tr[data-group="analysts"][data-member="dana"]')).not.toBeNull();
    expect(field('Member').value).toBe('');

    // The same member again: not an error, and the page says so.
    await type('Member', 'dana');
    await submit();
    await until('the notice', () => document.body.textContent!.includes('dana already belongs to analysts.'));
    expect(rows()).toHaveLength(2);
  });

  it('removes an API member after the confirmation', async () => {
    groups.push({ id: 'analysts', name: 'analysts', members: [{ member: 'dana', source: 'api', added_at: null, added_by: 'root' }] });
    await mount();
    await until('the list', () => rows().length === 2);
    await act(() => button('Remove dana from analysts').click());
    const dialog = document.querySelector('[role="alertdialog"]')!;
    expect(dialog.textContent).toContain('Remove dana from analysts?');
    await act(() => (dialog.querySelector('button.primary') as HTMLButtonElement).click());
    await until('the row to go', () => rows().length === 1);
    expect(seen.filter((s) => s.method === 'DELETE').map((s) => s.url)).toEqual(['/api/v1/groups/analysts/members/dana']);
  });

  it('shows the empty state and the error with its advice', async () => {
    groups = [];
    await mount();
    await until('the empty state', () => document.body.textContent!.includes('No group has a member yet'));
    expect(document.querySelector('table')).toBeNull();
    document.body.innerHTML = '';

    refuse = true;
    await mount();
    await until('the error', () => document.querySelector('[role="alert"]') !== null);
    const alert = document.querySelector('[role="alert"]')!;
    expect(alert.textContent).toContain('administrators only');
    expect(alert.textContent).toContain('ask an administrator');
  });
});
