// Grants (administrators): which groups may reach which environments, as which upstream role;
// grants made by approving an access request are for one person, shown by name.
// Grants from the config file are shown but only the API's can be removed here. A new grant may
// last a fixed time (just-in-time access): the gateway ends it, and the connections it alone let
// in, when it expires.
import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { ErrorBox, Page, RemoveIfApi, Table, View, useAction } from '../components/ui';
import { fmtTime, splitList, useLoad } from '../lib/load';
import { ask } from '../components/Confirm';

/** How long a new grant lasts; `0` means until removed. */
export const DURATIONS: { label: string; seconds: number }[] = [
  { label: 'Never expires', seconds: 0 },
  { label: '1 hour', seconds: 3600 },
  { label: '8 hours', seconds: 8 * 3600 },
  { label: '24 hours', seconds: 24 * 3600 },
  { label: '7 days', seconds: 7 * 24 * 3600 },
];

export function Grants() {
  const grants = useLoad(() => api.grants(), []);
  const envs = useLoad(() => api.environments(), []);
  const [groups, setGroups] = useState('');
  const [environments, setEnvironments] = useState('');
  const [role, setRole] = useState('');
  const [lasts, setLasts] = useState('0');
  const add = useAction();
  const remove = useAction();

  const submit = async (e: Event) => {
    e.preventDefault();
    const g = await add.run(() =>
      api.createGrant({
        groups: splitList(groups),
        environments: splitList(environments),
        upstream_role: role.trim() || null,
        ...(Number(lasts) > 0 ? { expires_in_seconds: Number(lasts) } : {}),
      }),
    );
    if (g) {
      setGroups('');
      setEnvironments('');
      setRole('');
      setLasts('0');
      grants.reload();
    }
  };
  const del = async (id: string) => {
    if ((await ask({ title: 'Remove this grant?', message: 'Its groups lose access now: open connections that no other grant covers are ended, and new ones are refused.', confirm: 'Remove' })) === null) return;
    if ((await remove.run(() => api.deleteGrant(id).then(() => true))) !== undefined) grants.reload();
  };

  return (
    <Page title="Grants">
      <form class="card form-grid" onSubmit={submit} aria-labelledby="grant-new">
        <h2 id="grant-new">New grant</h2>
        <label>
          Groups
          <input value={groups} onInput={(e) => setGroups(e.currentTarget.value)} placeholder="engineers, oncall" required />
        </label>
        <label>
          Environments
          <input
            value={environments}
            onInput={(e) => setEnvironments(e.currentTarget.value)}
            placeholder={(envs.data ?? []).map((x) => x.name).join(', ') || 'staging, * for all'}
            required
          />
        </label>
        <label>
          Upstream role
          <input value={role} onInput={(e) => setRole(e.currentTarget.value)} placeholder="optional, e.g. readonly" />
        </label>
        <label>
          Expires
          <select value={lasts} onChange={(e) => setLasts(e.currentTarget.value)}>
            {DURATIONS.map((d) => (
              <option key={d.seconds} value={String(d.seconds)}>
                {d.label}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="primary" disabled={add.busy}>
          Add grant
        </button>
        {add.error && <ErrorBox error={add.error} />}
      </form>
      {remove.error && <ErrorBox error={remove.error} />}
      <View load={grants} what="Loading grants" empty="No grant yet: nobody but administrators can reach an environment.">
        {(list) => (
          <Table label="Grants" columns={['Groups', 'Environments', 'Upstream role', 'Source', 'Created', 'Expires']} actions>
            {list.map((g) => (
              <tr key={g.id} data-grant={g.id}>
                <td>
                  {g.identity ? (
                    <>
                      {g.identity} <span class="muted">(requested{g.break_glass ? ', break-glass' : ''})</span>
                    </>
                  ) : (
                    g.groups.join(', ')
                  )}
                </td>
                <td>{g.environments.join(', ')}</td>
                <td>{g.upstream_role ?? <span class="muted">the environment's</span>}</td>
                <td>{g.source}</td>
                <td>
                  {fmtTime(g.created_at)}
                  {g.created_by ? ` by ${g.created_by}` : ''}
                </td>
                <td>{g.expires_at ? fmtTime(g.expires_at) : <span class="muted">never</span>}</td>
                <td>
                  <RemoveIfApi
                    source={g.source}
                    onRemove={() => del(g.id)}
                    label={`Remove grant ${g.identity ?? g.groups.join(', ')} → ${g.environments.join(', ')}`}
                  />
                </td>
              </tr>
            ))}
          </Table>
        )}
      </View>
    </Page>
  );
}
