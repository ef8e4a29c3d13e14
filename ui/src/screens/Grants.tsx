// Grants (administrators): which groups may reach which environments, as which upstream role.
// Grants from the config file are shown but only the API's can be removed here.
import { useState } from 'preact/hooks';
import { api } from '../api/client';
import { ErrorBox, Page, RemoveIfApi, Table, View, useAction } from '../components/ui';
import { fmtTime, splitList, useLoad } from '../lib/load';
import { ask } from '../components/Confirm';

export function Grants() {
  const grants = useLoad(() => api.grants(), []);
  const envs = useLoad(() => api.environments(), []);
  const [groups, setGroups] = useState('');
  const [environments, setEnvironments] = useState('');
  const [role, setRole] = useState('');
  const add = useAction();
  const remove = useAction();

  const submit = async (e: Event) => {
    e.preventDefault();
    const g = await add.run(() =>
      api.createGrant({ groups: splitList(groups), environments: splitList(environments), upstream_role: role.trim() || null }),
    );
    if (g) {
      setGroups('');
      setEnvironments('');
      setRole('');
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
        <button type="submit" class="primary" disabled={add.busy}>
          Add grant
        </button>
        {add.error && <ErrorBox error={add.error} />}
      </form>
      {remove.error && <ErrorBox error={remove.error} />}
      <View load={grants} what="Loading grants" empty="No grant yet: nobody but administrators can reach an environment.">
        {(list) => (
          <Table label="Grants" columns={['Groups', 'Environments', 'Upstream role', 'Source', 'Created']} actions>
            {list.map((g) => (
              <tr key={g.id} data-grant={g.id}>
                <td>{g.groups.join(', ')}</td>
                <td>{g.environments.join(', ')}</td>
                <td>{g.upstream_role ?? <span class="muted">the environment's</span>}</td>
                <td>{g.source}</td>
                <td>
                  {fmtTime(g.created_at)}
                  {g.created_by ? ` by ${g.created_by}` : ''}
                </td>
                <td>
                  <RemoveIfApi
                    source={g.source}
                    onRemove={() => del(g.id)}
                    label={`Remove grant ${g.groups.join(', ')} → ${g.environments.join(', ')}`}
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
