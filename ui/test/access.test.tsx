// Access requests in the UI, against a real local HTTP server that keeps requests as the
// gateway's `/api/v1/access-requests` and `/api/v1/approvals` endpoints do (web transport, real
// fetch): Request access under an environment one cannot reach (the durations offered stop at
// its maximum, the body sent, the gateway's 400 shown as it words it), the request in the
// approvals inbox (what is asked, Approve/Deny for an approver, Withdraw and break-glass for the
// requester), and the break-glass banner while such access lasts.
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Approval, Requestable } from '../src/api/client';
import { BreakGlassBanner, breakGlassInForce } from '../src/components/BreakGlass';
import { durationChoices, humanDuration } from '../src/components/RequestAccess';
import { Approvals } from '../src/screens/Approvals';
import { Environments } from '../src/screens/Environments';
import { button, click, fill, label, mountScreen, setValue, submit, until, withFakeGateway } from './harness';

const NOW = Math.floor(Date.now() / 1000);
let requestable: Requestable[] = [];
let approvals: Approval[] = [];
const posted: { url: string; body: Record<string, unknown> }[] = [];

function accessRequest(over: Partial<Approval> = {}): Approval {
  return {
    id: 'apr_1',
    kind: 'access',
    state: 'pending',
    statement: '-- access request: ana to prod for 1h',
    fingerprint: 'access-request',
    identity: 'ana',
    identity_kind: 'human',
    environment: 'prod',
    database: '',
    rule: 'access-request',
    reason: 'ticket 4312',
    created_at: NOW,
    access: { environment: 'prod', role: 'app_reader', duration_seconds: 3600, pending_until: NOW + 3600, break_glass: false },
    ...over,
  };
}

withFakeGateway((req) => {
  const body = req.body ? (JSON.parse(req.body) as Record<string, unknown>) : {};
  if (req.method === 'GET' && req.url === '/api/v1/environments') return { status: 200, body: { items: [] } };
  if (req.method === 'GET' && req.url === '/api/v1/access-requests/environments')
    return { status: 200, body: { items: requestable } };
  if (req.method === 'GET' && req.url === '/api/v1/access-requests')
    return { status: 200, body: { items: approvals.filter((a) => a.identity === 'ana') } };
  if (req.method === 'GET' && req.url?.startsWith('/api/v1/approvals')) {
    const q = new URLSearchParams(req.url.split('?')[1] ?? '');
    const state = q.get('state');
    return {
      status: 200,
      body: { items: approvals.filter((a) => !state || state === 'all' || a.state === state) },
    };
  }
  if (req.method === 'POST') posted.push({ url: req.url, body });
  if (req.method === 'POST' && req.url === '/api/v1/access-requests') {
    // As the gateway does: a reason is required, and the 400 names the field.
    if (!String(body.reason ?? '').trim())
      return { status: 400, body: { error: 'bad_request', message: '`reason`: required: say why, for the approver' } };
    const a = accessRequest({
      id: `apr_${approvals.length + 1}`,
      reason: String(body.reason),
      access: {
        environment: String(body.environment),
        role: (body.role as string | null) ?? null,
        duration_seconds: Number(body.duration_seconds),
        pending_until: NOW + 3600,
        break_glass: false,
      },
    });
    approvals.push(a);
    return { status: 202, body: a };
  }
  const decided = req.url.match(/^\/api\/v1\/(approvals|access-requests)\/([^/]+)\/(approve|deny|withdraw)$/);
  if (req.method === 'POST' && decided) {
    const a = approvals.find((x) => x.id === decided[2]);
    if (!a) return { status: 404, body: { error: 'not_found', message: 'no approval' } };
    const self = a.identity === 'ana';
    a.state = decided[3] === 'approve' ? 'approved' : decided[3] === 'deny' ? 'denied' : 'withdrawn';
    a.decided_by = 'ana';
    if (a.state === 'approved') {
      a.grant_expires_at = NOW + 600;
      a.decision_reason = String(body.reason ?? '');
      if (self && a.access) a.access = { ...a.access, break_glass: true };
    }
    return { status: 200, body: a };
  }
});

beforeEach(() => {
  posted.length = 0;
  approvals = [];
  requestable = [
    {
      name: 'prod',
      tier: 'production',
      description: 'Orders',
      max_duration_seconds: 7200,
      roles: ['app_reader'],
      break_glass: false,
      break_glass_max_seconds: 600,
      reachable: false,
    },
    {
      name: 'staging',
      tier: 'staging',
      max_duration_seconds: 3600,
      roles: [],
      break_glass: false,
      break_glass_max_seconds: 600,
      reachable: true,
    },
  ];
});
afterEach(() => {
  document.body.innerHTML = '';
});

/** The "My requests" tab, once the list has loaded (its name carries a count). */
async function myRequests() {
  await until('the list', () => !document.body.textContent?.includes('Loading approvals'));
  await act(() => document.getElementById('tab-mine')!.click());
}

const reason = () => label('Reason').querySelector('textarea') as unknown as HTMLInputElement;

describe('durations', () => {
  it('are offered up to the environment maximum and worded as the CLI words them', () => {
    expect(durationChoices(7200).map(humanDuration)).toEqual(['15m', '1h', '2h']);
    expect(durationChoices(3).map(humanDuration)).toEqual(['3s']);
    expect(humanDuration(5400)).toBe('1h30m');
  });
});

describe('Request access', () => {
  it('lists only environments not reachable yet and sends what was chosen', async () => {
    await mountScreen(<Environments />);
    await until('the requestable list', () => !!document.querySelector('[data-requestable="prod"]'));
    expect(document.querySelector('[data-requestable="staging"]')).toBeNull();
    await click('Request access');
    const options = [...label('For how long').querySelectorAll('option')].map((o) => o.textContent);
    expect(options).toEqual(['15m', '1h', '2h']);
    await fill('Role', 'app_reader');
    await setValue(reason(), 'ticket 4312: orders stuck');
    await submit();
    await until('the request is pending', () => !!document.querySelector('[data-pending="apr_1"]'));
    expect(posted).toEqual([
      {
        url: '/api/v1/access-requests',
        body: { environment: 'prod', duration_seconds: 3600, role: 'app_reader', reason: 'ticket 4312: orders stuck' },
      },
    ]);
    expect(document.body.textContent).toContain('waiting for an approver');
  });

  it("shows the gateway's own words when it refuses", async () => {
    await mountScreen(<Environments />);
    await until('the requestable list', () => !!button('Request access'));
    await click('Request access');
    await setValue(reason(), '   ');
    await submit();
    await until('the refusal', () => !!document.querySelector('[role="alert"]'));
    expect(document.querySelector('[role="alert"]')!.textContent).toContain('`reason`: required');
  });
});

describe('access requests in the approvals inbox', () => {
  it('shows an approver what is asked, and approves it', async () => {
    approvals = [accessRequest()];
    await mountScreen(<Approvals me="root" />);
    await until('the card', () => !!document.querySelector('[data-approval="apr_1"]'));
    const card = document.querySelector('[data-approval="apr_1"]')!;
    expect(card.getAttribute('data-kind')).toBe('access');
    expect(card.textContent).toContain('Access to prod for 1h as role app_reader');
    expect(card.textContent).toContain('ticket 4312');
    await click('Approve');
    await until('approved', () => approvals[0].state === 'approved');
    expect(posted[0].url).toBe('/api/v1/approvals/apr_1/approve');
  });

  it('lets the requester withdraw, and break glass only where allowed, with a reason', async () => {
    approvals = [accessRequest()];
    await mountScreen(<Approvals me="ana" />);
    await myRequests();
    await until('the card', () => !!button('Withdraw'));
    expect(button('Approve')).toBeUndefined();
    expect(button('Break glass: approve it myself')).toBeUndefined();
    await click('Withdraw');
    await until('withdrawn', () => approvals[0].state === 'withdrawn');
    expect(posted[0].url).toBe('/api/v1/access-requests/apr_1/withdraw');
  });

  it('offers break-glass to a member of the break-glass group, after a reason', async () => {
    requestable[0].break_glass = true;
    approvals = [accessRequest()];
    await mountScreen(<Approvals me="ana" />);
    await myRequests();
    await until('the break-glass button', () => !!button('Break glass: approve it myself'));
    expect(button('Break glass: approve it myself')!.disabled).toBe(true);
    await setValue(document.getElementById('glass-apr_1') as unknown as HTMLInputElement, 'incident 77');
    expect(button('Break glass: approve it myself')!.disabled).toBe(false);
    await click('Break glass: approve it myself');
    await until('approved', () => approvals[0].state === 'approved');
    expect(posted).toEqual([{ url: '/api/v1/approvals/apr_1/approve', body: { reason: 'incident 77' } }]);
  });
});

describe('the break-glass banner', () => {
  it('shows break-glass access while it lasts, and nothing else', async () => {
    const glass = accessRequest({
      state: 'approved',
      decided_by: 'ana',
      decision_reason: 'incident 77',
      grant_expires_at: NOW + 600,
      access: { environment: 'prod', duration_seconds: 600, pending_until: NOW, break_glass: true },
    });
    const over = { ...glass, id: 'apr_2', grant_expires_at: NOW - 1 };
    const normal = accessRequest({ id: 'apr_3', state: 'approved', grant_expires_at: NOW + 600 });
    expect(breakGlassInForce([glass, over, normal], NOW).map((a) => a.id)).toEqual(['apr_1']);

    approvals = [glass, over, normal];
    await mountScreen(<BreakGlassBanner />);
    await until('the banner', () => !!document.querySelector('[aria-label="Break-glass access in use"]'));
    const text = document.querySelector('.banner')!.textContent!;
    expect(text).toContain('ana on prod until');
    expect(text).toContain('incident 77');
    expect(text).not.toContain('apr_2');
  });
});
