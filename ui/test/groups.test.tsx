// The Groups screen against a real local HTTP server that keeps memberships as the gateway's
// `/api/v1/groups` endpoints do (web transport, real fetch): the list with config members
// read-only, adding a member (new or already there), removing an API member after the
// confirmation, and the empty and error states.
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Group } from '../src/api/client';
import { Groups } from '../src/screens/Groups';
import { click, field, fill, mountScreen, submit, tableRows, until, withFakeGateway } from './harness';

let groups: Group[] = [];
let refuse = false;
const seen: { method: string; url: string; body: string }[] = [];

withFakeGateway(({ method, url, body }) => {
  seen.push({ method, url, body });
  if (refuse) return { status: 403, body: { error: 'forbidden', message: 'administrators only' } };
  if (method === 'GET' && url === '/api/v1/groups') return { status: 200, body: { items: groups } };
  const add = url.match(/^\/api\/v1\/groups\/([^/]+)\/members$/);
  if (method === 'POST' && add) {
    const name = decodeURIComponent(add[1]);
    const { member } = JSON.parse(body) as { member: string };
    let g = groups.find((x) => x.name === name);
    if (!g) groups.push((g = { id: name, name, members: [] }));
    const added = !g.members.some((m) => m.member === member);
    if (added) g.members.push({ member, source: 'api', added_at: '2026-01-02T03:04:05Z', added_by: 'root' });
    return { status: added ? 201 : 200, body: { group: name, member, added } };
  }
  const del = url.match(/^\/api\/v1\/groups\/([^/]+)\/members\/([^/]+)$/);
  if (method === 'DELETE' && del) {
    const g = groups.find((x) => x.name === decodeURIComponent(del[1]));
    const before = g?.members.length ?? 0;
    if (g) g.members = g.members.filter((m) => m.source !== 'api' || m.member !== decodeURIComponent(del[2]));
    return g && g.members.length < before ? { status: 204 } : { status: 404, body: { error: 'not_found', message: 'no such member' } };
  }
});
beforeEach(() => {
  refuse = false;
  seen.length = 0;
  groups = [{ id: 'admins', name: 'admins', members: [{ member: 'root', source: 'config', added_at: null, added_by: null }] }];
});
afterEach(() => {
  document.body.innerHTML = '';
});

const rows = () => tableRows('Group members');

describe('Groups screen', () => {
  it('lists members, config ones read-only, and adds one through the API', async () => {
    await mountScreen(<Groups />);
    await until('the list', () => rows().length === 1);
    expect(rows()).toEqual([['admins', 'root', 'config', '—', 'in the config file']]);
    expect(document.querySelectorAll('table[aria-label="Group members"] button')).toHaveLength(0);

    await fill('Group', 'analysts');
    await fill('Member', 'dana');
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
    await fill('Member', 'dana');
    await submit();
    await until('the notice', () => document.body.textContent!.includes('dana already belongs to analysts.'));
    expect(rows()).toHaveLength(2);
  });

  it('removes an API member after the confirmation', async () => {
    groups.push({ id: 'analysts', name: 'analysts', members: [{ member: 'dana', source: 'api', added_at: null, added_by: 'root' }] });
    await mountScreen(<Groups />);
    await until('the list', () => rows().length === 2);
    await click('Remove dana from analysts');
    const dialog = document.querySelector('[role="alertdialog"]')!;
    expect(dialog.textContent).toContain('Remove dana from analysts?');
    await act(() => (dialog.querySelector('button.primary') as HTMLButtonElement).click());
    await until('the row to go', () => rows().length === 1);
    expect(seen.filter((s) => s.method === 'DELETE').map((s) => s.url)).toEqual(['/api/v1/groups/analysts/members/dana']);
  });

  it('shows the empty state and the error with its advice', async () => {
    groups = [];
    await mountScreen(<Groups />);
    await until('the empty state', () => document.body.textContent!.includes('No group has a member yet'));
    expect(document.querySelector('table')).toBeNull();
    document.body.innerHTML = '';

    refuse = true;
    await mountScreen(<Groups />);
    await until('the error', () => document.querySelector('[role="alert"]') !== null);
    const alert = document.querySelector('[role="alert"]')!;
    expect(alert.textContent).toContain('administrators only');
    expect(alert.textContent).toContain('ask an administrator');
  });
});
