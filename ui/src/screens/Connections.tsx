// My connections: open database connections through the gateway (everyone sees their own,
// administrators see all and may end one), and in the desktop app the open tunnels.
import { api, type Connection } from '../api/client';
import { desktop, type Tunnel } from '../api/desktop';
import { isDesktop } from '../api/transport';
import { tunnelsChanged } from '../components/Connect';
import { CopyButton, ErrorBox, Page, Table, View, useAction } from '../components/ui';
import { fmtTime, useLoad } from '../lib/load';
import { ask } from '../components/Confirm';

export function Connections({ admin }: { admin: boolean }) {
  const desktopShell = isDesktop();
  const conns = useLoad(() => api.connections(), []);
  const tunnels = useLoad(() => (desktopShell ? desktop.tunnels() : Promise.resolve([] as Tunnel[])), []);
  const action = useAction();

  const end = async (c: Connection) => {
    const reason = await ask({
      title: `End ${c.identity}'s connection to ${c.environment}?`,
      message: 'The client gets an error with the reason and is disconnected.',
      input: 'Reason (told to the client)',
      confirm: 'End connection',
    });
    if (reason === null) return;
    await action.run(() => api.terminate(c.id, reason));
    conns.reload();
  };
  const close = async (t: Tunnel) => {
    await action.run(() => desktop.disconnect(t.environment));
    tunnels.reload();
    tunnelsChanged();
  };

  return (
    <Page
      title="Connections"
      actions={
        <button type="button" onClick={() => (conns.reload(), tunnels.reload())}>
          Refresh
        </button>
      }
    >
      {action.error && <ErrorBox error={action.error} />}
      {desktopShell && (
        <section aria-labelledby="tunnels-title">
          <h2 id="tunnels-title">Open tunnels</h2>
          <View load={tunnels} what="Loading tunnels" empty="No tunnel is open. Connect from Environments.">
            {(list) => (
              <Table columns={['Environment', 'Port', 'psql', 'Opened']} actions>
                {list.map((t) => (
                  <tr key={t.environment}>
                    <td>{t.environment}</td>
                    <td>{t.port}</td>
                    <td>
                      <code>{t.psql}</code> <CopyButton text={t.psql} label={`Copy psql command for ${t.environment}`} />
                    </td>
                    <td>{fmtTime(t.opened_at)}</td>
                    <td>
                      <button type="button" onClick={() => close(t)}>
                        Disconnect
                      </button>
                    </td>
                  </tr>
                ))}
              </Table>
            )}
          </View>
        </section>
      )}
      <section aria-labelledby="conns-title">
        <h2 id="conns-title">{admin ? 'Open database connections' : 'My open database connections'}</h2>
        <View load={conns} what="Loading connections" empty="No open database connection.">
          {(list) => (
            <Table columns={['Identity', 'Environment', 'Database', 'Application', 'From', 'TLS', 'Since']} actions={admin}>
              {list.map((c) => (
                <tr key={c.id}>
                  <td>{c.identity}</td>
                  <td>{c.environment}</td>
                  <td>{c.database}</td>
                  <td>{c.application_name ?? '—'}</td>
                  <td>{c.client_addr}</td>
                  <td>{c.tls ? 'yes' : 'no'}</td>
                  <td>{fmtTime(c.started_at)}</td>
                  {admin && (
                    <td>
                      <a href={`#/audit?connection=${encodeURIComponent(c.id)}`}>Timeline</a>{' '}
                      <button type="button" class="danger small" onClick={() => end(c)}>
                        End
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </Table>
          )}
        </View>
      </section>
    </Page>
  );
}
