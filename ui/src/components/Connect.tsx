// Desktop only: open a local tunnel to an environment (the shell's `connect` command), then show
// its port, a connection string and a psql line to copy, and an "open" indicator until
// Disconnect.
import type { Tunnel } from '../api/desktop';
import { desktop } from '../api/desktop';
import { CopyButton, ErrorBox, useAction } from './ui';

export function Connect({
  environment,
  tunnel,
  onChange,
}: {
  environment: string;
  tunnel: Tunnel | undefined;
  onChange: (t: Tunnel | undefined) => void;
}) {
  const action = useAction();
  const connect = async () => {
    const t = await action.run(() => desktop.connect(environment));
    if (t) onChange(t);
  };
  const disconnect = async () => {
    const ok = await action.run(() => desktop.disconnect(environment).then(() => true));
    if (ok) onChange(undefined);
  };
  return (
    <div class="connect">
      {tunnel ? (
        <div class="tunnel" aria-label={`Tunnel to ${environment}`}>
          <p class="open-indicator" role="status">
            <span class="dot" aria-hidden="true" /> Open on port{' '}
            <strong data-testid="tunnel-port">{tunnel.port}</strong>
          </p>
          <div class="copyline">
            <code aria-label="Connection string">{tunnel.connection_string}</code>
            <CopyButton text={tunnel.connection_string} label={`Copy connection string for ${environment}`} />
          </div>
          <div class="copyline">
            <code data-testid="tunnel-psql" aria-label="psql command">
              {tunnel.psql}
            </code>
            <CopyButton text={tunnel.psql} label={`Copy psql command for ${environment}`} />
          </div>
          <button type="button" onClick={disconnect} disabled={action.busy}>
            {action.busy ? 'Disconnecting…' : 'Disconnect'}
          </button>
        </div>
      ) : (
        <button type="button" class="primary" onClick={connect} disabled={action.busy}>
          {action.busy ? 'Connecting…' : 'Connect'}
        </button>
      )}
      {action.error && <ErrorBox error={action.error} />}
    </div>
  );
}
