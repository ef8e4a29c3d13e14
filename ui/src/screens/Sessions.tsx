// Gateway sessions (administrators): who is signed in, how, until when, with how many open
// connections; revoking one ends its connections.
import { useState } from 'preact/hooks';
import { api, type SessionItem } from '../api/client';
import { Badge, ErrorBox, Page, Table, View, useAction } from '../components/ui';
import { fmtTime, useLoad } from '../lib/load';
import { ask } from '../components/Confirm';

export function Sessions() {
  const [all, setAll] = useState(false);
  const list = useLoad(() => api.sessions(all), [all]);
  const act = useAction();
  const revoke = async (s: SessionItem) => {
    if ((await ask({ title: `Revoke ${s.identity}'s session?`, message: `Its ${s.connections} open connection(s) close.`, confirm: 'Revoke' })) === null) return;
    if ((await act.run(() => api.revokeSession(s.id))) !== undefined) list.reload();
  };
  return (
    <Page
      title="Sessions"
      actions={
        <label class="inline">
          <input type="checkbox" checked={all} onChange={(e) => setAll(e.currentTarget.checked)} /> Include ended sessions
        </label>
      }
    >
      {act.error && <ErrorBox error={act.error} />}
      <View load={list} what="Loading sessions" empty="No session.">
        {(items) => (
          <Table label="Sessions" columns={['Identity', 'Kind', 'Groups', 'Method', 'Created', 'Expires', 'Connections']} actions>
            {items.map((s) => (
              <tr key={s.id} data-session={s.id}>
                <td>{s.identity}</td>
                <td>{s.kind}</td>
                <td>{s.groups.join(', ')}</td>
                <td>{s.method}</td>
                <td>{fmtTime(s.created_at)}</td>
                <td>{fmtTime(s.refresh_expires_at ?? s.expires_at)}</td>
                <td>{s.connections}</td>
                <td>
                  {s.revoked_at ? (
                    <Badge kind="denied">revoked</Badge>
                  ) : (
                    <button type="button" class="danger small" onClick={() => revoke(s)} aria-label={`Revoke session of ${s.identity}`}>
                      Revoke
                    </button>
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
