// Asking for an environment one cannot reach yet: for how long (up to the environment's
// maximum), optionally as a role it offers, and why. The environment's approvers decide it in
// their approvals inbox; a member of a break-glass group may approve it at once themselves.
// Used by the Environments screen in both shells.
import { useState } from 'preact/hooks';
import { api, type Approval, type Requestable } from '../api/client';
import { ErrorBox, useAction } from './ui';

/** `3600` → `1h`, `5400` → `1h30m`: durations as the gateway and the CLI word them. */
export function humanDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const out = `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`;
  return out;
}

const STEPS = [15 * 60, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 24 * 3600];

/** The durations offered for an environment: the usual steps up to its maximum, and the maximum. */
export function durationChoices(max: number): number[] {
  const out = STEPS.filter((s) => s < max);
  out.push(max);
  return out;
}

export function RequestAccess({ env, onRequested }: { env: Requestable; onRequested: (a: Approval) => void }) {
  const choices = durationChoices(env.max_duration_seconds);
  const [open, setOpen] = useState(false);
  const [seconds, setSeconds] = useState(choices.includes(3600) ? 3600 : choices[0]);
  const [role, setRole] = useState('');
  const [reason, setReason] = useState('');
  const [glass, setGlass] = useState(false);
  const action = useAction();
  const id = `request-${env.name}`;
  if (!open)
    return (
      <button type="button" class="primary" onClick={() => setOpen(true)} aria-controls={id}>
        Request access
      </button>
    );
  const send = async (e: Event) => {
    e.preventDefault();
    const made = await action.run(async () => {
      const a = await api.requestAccess({ environment: env.name, duration_seconds: seconds, role: role || null, reason });
      // Break-glass: the same request, approved by its requester with the same reason.
      return glass ? api.approve(a.id, reason) : a;
    });
    if (made) {
      setOpen(false);
      onRequested(made);
    }
  };
  return (
    <form id={id} class="request-access" onSubmit={send} aria-label={`Request access to ${env.name}`}>
      <label>
        For how long
        <select value={String(seconds)} onChange={(e) => setSeconds(Number(e.currentTarget.value))}>
          {choices.map((c) => (
            <option key={c} value={String(c)}>
              {humanDuration(c)}
            </option>
          ))}
        </select>
      </label>
      {env.roles.length > 0 && (
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            <option value="">The environment's own user</option>
            {env.roles.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
      )}
      <label>
        Reason
        <textarea
          rows={2}
          required
          value={reason}
          placeholder="What you need it for (a ticket, an incident); the approver reads it"
          onInput={(e) => setReason(e.currentTarget.value)}
        />
      </label>
      {env.break_glass && (
        <label class="inline">
          <input type="checkbox" checked={glass} onChange={(e) => setGlass(e.currentTarget.checked)} />
          Break-glass: approve it myself now (at most {humanDuration(env.break_glass_max_seconds)}; everyone watching is told)
        </label>
      )}
      <div class="row">
        <button type="submit" class={glass ? 'danger' : 'primary'} disabled={action.busy}>
          {glass ? 'Break glass' : 'Send request'}
        </button>
        <button type="button" onClick={() => (setOpen(false), action.clear())}>
          Cancel
        </button>
      </div>
      {action.error && <ErrorBox error={action.error} />}
    </form>
  );
}
