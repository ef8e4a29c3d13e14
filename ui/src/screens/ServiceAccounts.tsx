// Service accounts (administrators): create (the token is shown once), rotate (new token; the
// old one and its connections end), revoke.
import { useState } from 'preact/hooks';
import { api, type ServiceAccount } from '../api/client';
import { Badge, CopyButton, ErrorBox, Page, Table, View, useAction } from '../components/ui';
import { fmtTime, splitList, useLoad } from '../lib/load';
import { ask } from '../components/Confirm';

export function ServiceAccounts() {
  const list = useLoad(() => api.serviceAccounts(), []);
  const [form, setForm] = useState({ name: '', kind: 'agent', groups: '', on_behalf_of: '', description: '', expires_at: '' });
  const [token, setToken] = useState<{ name: string; token: string } | null>(null);
  const create = useAction();
  const act = useAction();
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.currentTarget as HTMLInputElement).value });

  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await create.run(() =>
      api.createServiceAccount({
        name: form.name.trim(),
        kind: form.kind,
        groups: splitList(form.groups),
        on_behalf_of: form.on_behalf_of.trim() || null,
        description: form.description.trim() || null,
        expires_at: form.expires_at.trim() || null,
      }),
    );
    if (r) {
      setToken({ name: r.service_account.name, token: r.token });
      setForm({ name: '', kind: 'agent', groups: '', on_behalf_of: '', description: '', expires_at: '' });
      list.reload();
    }
  };
  const rotate = async (a: ServiceAccount) => {
    if ((await ask({ title: `Rotate ${a.name}'s token?`, message: 'The current token stops working and its connections close.', confirm: 'Rotate' })) === null) return;
    const r = await act.run(() => api.rotateServiceAccount(a.id));
    if (r) {
      setToken({ name: a.name, token: r.token });
      list.reload();
    }
  };
  const revoke = async (a: ServiceAccount) => {
    if ((await ask({ title: `Revoke ${a.name}?`, message: 'Its token stops working and its connections close.', confirm: 'Revoke' })) === null) return;
    if ((await act.run(() => api.revokeServiceAccount(a.id))) !== undefined) list.reload();
  };

  return (
    <Page title="Service accounts">
      {token && (
        <div class="card token-once" role="alert">
          <h2>Token for {token.name}</h2>
          <p>Copy it now: it is shown only this once. Use it as the password when connecting.</p>
          <div class="copyline">
            <code data-testid="new-token">{token.token}</code>
            <CopyButton text={token.token} label={`Copy the token of ${token.name}`} />
          </div>
          <button type="button" onClick={() => setToken(null)}>
            Done
          </button>
        </div>
      )}
      <form class="card form-grid" onSubmit={submit} aria-labelledby="sa-new">
        <h2 id="sa-new">New service account</h2>
        <label>
          Name
          <input value={form.name} onInput={set('name')} required placeholder="reporting-bot" />
        </label>
        <label>
          Kind
          <select value={form.kind} onChange={set('kind')}>
            <option value="agent">agent</option>
            <option value="human">human</option>
          </select>
        </label>
        <label>
          Groups
          <input value={form.groups} onInput={set('groups')} placeholder="agents, reporting" />
        </label>
        <label>
          On behalf of
          <input value={form.on_behalf_of} onInput={set('on_behalf_of')} placeholder="the person responsible" />
        </label>
        <label>
          Description
          <input value={form.description} onInput={set('description')} />
        </label>
        <label>
          Expires at
          <input value={form.expires_at} onInput={set('expires_at')} placeholder="RFC 3339, optional" />
        </label>
        <button type="submit" class="primary" disabled={create.busy}>
          Create
        </button>
        {create.error && <ErrorBox error={create.error} />}
      </form>
      {act.error && <ErrorBox error={act.error} />}
      <View load={list} what="Loading service accounts" empty="No service account yet.">
        {(items) => (
          <Table label="Service accounts" columns={['Name', 'Kind', 'Groups', 'On behalf of', 'Source', 'Created', 'Expires', 'State']} actions>
            {items.map((a) => (
              <tr key={a.id} data-service-account={a.name}>
                <td>
                  {a.name}
                  {a.description && <div class="muted small">{a.description}</div>}
                </td>
                <td>{a.kind}</td>
                <td>{a.groups.join(', ')}</td>
                <td>{a.on_behalf_of ?? '—'}</td>
                <td>{a.source}</td>
                <td>{fmtTime(a.created_at)}</td>
                <td>{fmtTime(a.expires_at)}</td>
                <td>{a.revoked_at ? <Badge kind="denied">revoked</Badge> : <Badge kind="approved">active</Badge>}</td>
                <td class="nowrap">
                  {a.source === 'api' && !a.revoked_at && (
                    <>
                      <button type="button" class="small" onClick={() => rotate(a)} aria-label={`Rotate ${a.name}`}>
                        Rotate
                      </button>{' '}
                      <button type="button" class="danger small" onClick={() => revoke(a)} aria-label={`Revoke ${a.name}`}>
                        Revoke
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </View>
    </Page>
  );
}
