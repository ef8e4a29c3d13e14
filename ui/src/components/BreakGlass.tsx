// The break-glass banner: while any break-glass access the caller may see is in force (their
// own, or in an environment they approve for), every screen says so, who, where, until when and
// why, so it is reviewed rather than forgotten. Live from the gateway's events.
import { api, type Approval } from '../api/client';
import { useLiveEvents } from '../lib/events';
import { fmtTime, useLoad } from '../lib/load';

/** The break-glass approvals whose access has not ended at `now` (Unix seconds). */
export function breakGlassInForce(approved: Approval[], now: number): Approval[] {
  return approved.filter((a) => a.access?.break_glass && (a.grant_expires_at ?? 0) > now);
}

export function BreakGlassBanner() {
  const approved = useLoad(() => api.approvedAccess().catch(() => [] as Approval[]), []);
  useLiveEvents((event) => {
    if (event === 'poll' || event === 'reconnected' || event.startsWith('access_request.')) approved.reload();
  });
  const active = breakGlassInForce(approved.data ?? [], Date.now() / 1000);
  if (active.length === 0) return null;
  return (
    <div class="banner break-glass" role="alert" aria-label="Break-glass access in use">
      <strong>Break-glass access in use.</strong>
      <ul>
        {active.map((a) => (
          <li key={a.id}>
            <strong>{a.identity}</strong> on <strong>{a.environment}</strong> until {fmtTime(a.grant_expires_at)}:{' '}
            {a.decision_reason ?? a.reason} (<a href={`#/approvals?id=${encodeURIComponent(a.id)}`}>{a.id}</a>)
          </li>
        ))}
      </ul>
    </div>
  );
}
