// Approvals: statements waiting for a decision (approvers see the statement, who, where, the
// classification and the estimated rows, and approve or deny with a reason), access requests
// (who wants which environment, for how long, as which role, and why) and exemption requests in
// the same inbox, my own requests and their state (a pending access request can be withdrawn, or
// approved by myself under break-glass), and recent decisions. Updates live from the gateway's
// events.
import { useEffect, useState } from 'preact/hooks';
import { typing } from '../lib/keys';
import { api, type Approval, type Classification } from '../api/client';
import { humanDuration } from '../components/RequestAccess';
import { Badge, ErrorBox, Page, Sql, View, useAction } from '../components/ui';
import { useLiveEvents } from '../lib/events';
import { fmtTime, useLoad } from '../lib/load';

function flags(c: Classification | null): string[] {
  if (!c) return [];
  const out: string[] = [];
  if (c.analysable === false) out.push('not analysable');
  if (c.writes) out.push('writes');
  if (c.destructive) out.push('destructive');
  // The statement is shown next to it, so the write itself need not be repeated.
  if (c.unbounded_writes?.length) out.push('unbounded write');
  if (c.dangerous_functions?.length) out.push(`functions: ${c.dangerous_functions.join(', ')}`);
  return out;
}

export function ClassificationView({ c }: { c: Classification | null }) {
  if (!c) return <span class="muted">not classified</span>;
  const tables = [...new Set([...(c.tables_written ?? []), ...(c.tables_read ?? [])])];
  return (
    <span class="classification">
      {(c.kinds ?? []).map((k) => (
        <Badge key={k} kind="kind">
          {k}
        </Badge>
      ))}
      {tables.length > 0 && <span class="on-tables">on {tables.join(', ')}</span>}
      {flags(c).map((f) => (
        <Badge key={f} kind="flag">
          {f}
        </Badge>
      ))}
    </span>
  );
}

/** The requester's own pending access request: withdraw it, or (break-glass) approve it. */
function OwnAccessRequest({ a, breakGlass, onDone }: { a: Approval; breakGlass: boolean; onDone: () => void }) {
  const [reason, setReason] = useState('');
  const action = useAction();
  const id = `glass-${a.id}`;
  return (
    <div class="decide">
      <p class="muted">Waiting for an approver. Nobody decides their own request.</p>
      <div class="row">
        <button type="button" onClick={async () => (await action.run(() => api.withdraw(a.id))) && onDone()} disabled={action.busy}>
          Withdraw
        </button>
      </div>
      {breakGlass && (
        <>
          <label for={id}>Break-glass reason</label>
          <textarea
            id={id}
            rows={2}
            value={reason}
            placeholder="The incident that cannot wait; announced to everyone watching and reviewed"
            onInput={(e) => setReason(e.currentTarget.value)}
          />
          <button
            type="button"
            class="danger"
            disabled={action.busy || !reason.trim()}
            onClick={async () => (await action.run(() => api.approve(a.id, reason))) && onDone()}
          >
            Break glass: approve it myself
          </button>
        </>
      )}
      {action.error && <ErrorBox error={action.error} />}
    </div>
  );
}

/** What an access request asks for, in words. */
function AccessSummary({ a }: { a: Approval }) {
  const d = a.access;
  if (!d) return null;
  return (
    <p class="access-summary">
      Access to <strong>{d.environment}</strong> for <strong>{humanDuration(d.duration_seconds)}</strong>
      {d.role ? (
        <>
          {' '}
          as role <code>{d.role}</code>
        </>
      ) : (
        " as the environment's own user"
      )}
      {a.state === 'pending' && <span class="muted"> · expires unanswered at {fmtTime(d.pending_until)}</span>}
    </p>
  );
}

function Decide({ a, onDone }: { a: Approval; onDone: () => void }) {
  const [reason, setReason] = useState('');
  const [needReason, setNeedReason] = useState(false);
  const action = useAction();
  const id = `reason-${a.id}`;
  const approve = async () => {
    if (await action.run(() => api.approve(a.id, reason))) onDone();
  };
  const deny = async () => {
    if (!reason.trim()) {
      setNeedReason(true);
      document.getElementById(id)?.focus();
      return;
    }
    if (await action.run(() => api.deny(a.id, reason))) onDone();
  };
  return (
    <div class="decide">
      <label for={id}>Reason</label>
      <textarea
        id={id}
        rows={2}
        value={reason}
        placeholder="Shown to the requester; required to deny"
        aria-invalid={needReason}
        aria-describedby={needReason ? `${id}-err` : undefined}
        onInput={(e) => (setReason(e.currentTarget.value), setNeedReason(false))}
      />
      {needReason && (
        <p id={`${id}-err`} class="field-error" role="alert">
          Give a reason to deny: the requester sees it.
        </p>
      )}
      <div class="row">
        <button type="button" class="primary" data-action="approve" onClick={approve} disabled={action.busy}>
          Approve
        </button>
        <button type="button" class="danger" data-action="deny" onClick={deny} disabled={action.busy}>
          Deny
        </button>
      </div>
      {action.error && <ErrorBox error={action.error} />}
    </div>
  );
}

/** The approval keeps only the statement's kinds; a dry run of the same text gives the whole
 * classification (tables, unbounded writes, functions). It does not depend on who asks. */
function useFullClassification(a: Approval): Classification | null {
  const full = useLoad(
    () =>
      a.state === 'pending' && a.kind === 'statement'
        ? api
            .dryRun({ sql: a.statement, environment: a.environment })
            .then((r) => r.classification)
            .catch(() => null)
        : Promise.resolve(null),
    [a.id, a.state],
  );
  return (full.state === 'ready' && full.data) || (a.classification ?? null);
}

function ApprovalCard({
  a,
  me,
  breakGlass,
  onDone,
}: {
  a: Approval;
  me: string;
  breakGlass: (environment: string) => boolean;
  onDone: () => void;
}) {
  const mine = a.identity === me;
  const access = a.kind === 'access';
  const classification = useFullClassification(a);
  const what = access ? 'access request' : a.kind === 'masking_exemption' ? 'exemption request' : 'request';
  return (
    <li
      class={`card approval state-${a.state} kind-${a.kind}`}
      data-approval={a.id}
      data-kind={a.kind}
      tabIndex={-1}
      aria-label={`${a.state} ${what} from ${a.identity} on ${a.environment}`}
    >
      <div class="approval-head">
        <Badge kind={a.state}>{a.state}</Badge>
        {access && <Badge kind="kind">access</Badge>}
        {a.access?.break_glass && <Badge kind="denied">break-glass</Badge>}
        <span>
          <strong>{a.identity}</strong> ({a.identity_kind}
          {a.on_behalf_of ? ` for ${a.on_behalf_of}` : ''}) on <strong>{a.environment}</strong>
          {a.database && a.database !== a.environment ? ` / ${a.database}` : ''}
        </span>
        <span class="muted">{fmtTime(a.created_at)}</span>
      </div>
      {access ? <AccessSummary a={a} /> : <Sql text={a.statement} label={`Statement from ${a.identity}`} />}
      <dl class="facts">
        {access ? (
          <>
            <dt>Requester's reason</dt>
            <dd>{a.reason}</dd>
          </>
        ) : (
          <>
            <dt>Classification</dt>
            <dd>
              <ClassificationView c={classification} />
            </dd>
            <dt>Estimated rows</dt>
            <dd>{a.estimated_rows ?? 'unknown'}</dd>
            <dt>Rule</dt>
            <dd>
              <code>{a.rule}</code> — {a.reason.replace(`rule ${a.rule}: `, '')}
            </dd>
          </>
        )}
        {a.decided_by && (
          <>
            <dt>Decided</dt>
            <dd>
              by {a.decided_by} at {fmtTime(a.decided_at)}
              {a.decision_reason ? `: ${a.decision_reason}` : ''}
            </dd>
          </>
        )}
        {a.state === 'approved' && a.grant_expires_at && (
          <>
            <dt>{access ? 'Access until' : 'Re-run until'}</dt>
            <dd>{fmtTime(a.grant_expires_at)}</dd>
          </>
        )}
      </dl>
      {a.state === 'pending' && !mine && <Decide a={a} onDone={onDone} />}
      {a.state === 'pending' && mine && access && (
        <OwnAccessRequest a={a} breakGlass={breakGlass(a.environment)} onDone={onDone} />
      )}
      {a.state === 'pending' && mine && !access && (
        <p class="muted">Waiting for an approver. Nobody decides their own request.</p>
      )}
    </li>
  );
}

/** `j`/`k` select the next/previous request, `a`/`d` approve/deny the selected one. */
function useApprovalKeys() {
  useEffect(() => {
    const on = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
      const cards = [...document.querySelectorAll<HTMLElement>('[data-approval]')];
      const current = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>('[data-approval]') ?? null;
      if (e.key === 'j' || e.key === 'k') {
        if (!cards.length) return;
        e.preventDefault();
        const i = current ? cards.indexOf(current) : -1;
        const next = e.key === 'j' ? Math.min(i + 1, cards.length - 1) : Math.max(i - 1, 0);
        cards[next].focus();
      } else if ((e.key === 'a' || e.key === 'd') && current) {
        const button = current.querySelector<HTMLButtonElement>(`[data-action="${e.key === 'a' ? 'approve' : 'deny'}"]`);
        if (button) {
          e.preventDefault();
          button.click();
        }
      }
    };
    window.addEventListener('keydown', on);
    return () => window.removeEventListener('keydown', on);
  }, []);
}

/** Focuses the card of `id` once it is shown (the console links events to `#/approvals?id=`). */
function useFocusApproval(id: string | null, shown: boolean) {
  useEffect(() => {
    if (!id || !shown) return;
    document.querySelector<HTMLElement>(`[data-approval="${CSS.escape(id)}"]`)?.focus();
  }, [id, shown]);
}

export function Approvals({ me, focus = null }: { me: string; focus?: string | null }) {
  useApprovalKeys();
  const list = useLoad(() => api.approvals('all'), []);
  // Where the caller may break glass: their own pending access requests there get the button.
  const requestable = useLoad(() => api.requestable().catch(() => []), []);
  const live = useLiveEvents(() => list.reload());
  const breakGlass = (env: string) => (requestable.data ?? []).some((e) => e.name === env && e.break_glass);
  const [tab, setTab] = useState<'pending' | 'mine' | 'decided'>('pending');
  const all = list.data ?? [];
  const counts = {
    pending: all.filter((a) => a.state === 'pending' && a.identity !== me).length,
    mine: all.filter((a) => a.identity === me).length,
    decided: all.filter((a) => a.state !== 'pending').length,
  };
  const shown = all.filter((a) =>
    tab === 'pending' ? a.state === 'pending' && a.identity !== me : tab === 'mine' ? a.identity === me : a.state !== 'pending',
  );
  // A linked approval that is not on the current tab: show the tab it is on.
  useEffect(() => {
    const target = focus ? all.find((a) => a.id === focus) : undefined;
    if (!target || shown.includes(target)) return;
    setTab(target.identity === me ? 'mine' : target.state === 'pending' ? 'pending' : 'decided');
  }, [focus, list.data]);
  useFocusApproval(focus, shown.some((a) => a.id === focus));
  return (
    <Page
      title="Approvals"
      actions={
        <span class={`live live-${live}`} role="status" aria-live="polite">
          {live === 'live' ? 'Live' : live === 'polling' ? 'Refreshing every few seconds' : live === 'offline' ? 'Offline: reload the page' : 'Connecting…'}
        </span>
      }
    >
      <div class="tabs" role="tablist" aria-label="Which approvals">
        {(
          [
            ['pending', 'Waiting for a decision'],
            ['mine', 'My requests'],
            ['decided', 'Decided'],
          ] as const
        ).map(([k, label]) => (
          <button
            key={k}
            type="button"
            role="tab"
            id={`tab-${k}`}
            aria-selected={tab === k}
            aria-controls="approvals-panel"
            tabIndex={tab === k ? 0 : -1}
            onClick={() => setTab(k)}
            onKeyDown={(e) => {
              // Arrow keys move between tabs, as in any tab list.
              const order = ['pending', 'mine', 'decided'] as const;
              const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
              if (!step) return;
              const next = order[(order.indexOf(k) + step + order.length) % order.length];
              setTab(next);
              document.getElementById(`tab-${next}`)?.focus();
            }}
          >
            {label} <span class="count">{counts[k]}</span>
          </button>
        ))}
      </div>
      <div id="approvals-panel" role="tabpanel" aria-labelledby={`tab-${tab}`}>
      <View load={list} what="Loading approvals">
        {() =>
          shown.length === 0 ? (
            <p class="state empty">
              {tab === 'pending'
                ? 'Nothing is waiting for a decision. New requests appear here as they arrive.'
                : tab === 'mine'
                  ? 'You have not asked for any approval.'
                  : 'No decision yet.'}
            </p>
          ) : (
            <ul class="cards approvals" aria-label="Approvals">
              {shown.map((a) => (
                <ApprovalCard key={a.id} a={a} me={me} breakGlass={breakGlass} onDone={list.reload} />
              ))}
            </ul>
          )
        }
      </View>
      </div>
    </Page>
  );
}
