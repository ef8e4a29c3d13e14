// Desktop only: open a local tunnel to an environment (the shell's `connect` command), then show
// its port, a connection string and a psql line to copy, and an "open" indicator until
// Disconnect.
import { useEffect, useState } from 'preact/hooks';
import type { Tunnel } from '../api/desktop';
import { desktop } from '../api/desktop';
import { CopyButton, ErrorBox, useAction } from './ui';

/** Tells the header's tunnel indicator to look again now. */
export function tunnelsChanged() {
  window.dispatchEvent(new Event('gatehouse:tunnels'));
}

/** Desktop: how many tunnels are open, in the header, on every screen. */
export function TunnelIndicator() {
  const [open, setOpen] = useState<Tunnel[]>([]);
  useEffect(() => {
    let alive = true;
    const look = () =>
      desktop.tunnels().then(
        (t) => alive && setOpen(t),
        () => undefined,
      );
    look();
    // Tunnels also close from the tray menu, so look now and then too.
    const timer = setInterval(look, 5000);
    window.addEventListener('gatehouse:tunnels', look);
    return () => {
      alive = false;
      clearInterval(timer);
      window.removeEventListener('gatehouse:tunnels', look);
    };
  }, []);
  if (open.length === 0) return null;
  return (
    <a class="tunnels-open" href="#/connections" title={open.map((t) => `${t.environment} on port ${t.port}`).join(', ')}>
      <span class="dot" aria-hidden="true" /> {open.length === 1 ? '1 tunnel open' : `${open.length} tunnels open`}
    </a>
  );
}

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
    if (t) {
      onChange(t);
      tunnelsChanged();
    }
  };
  const disconnect = async () => {
    const ok = await action.run(() => desktop.disconnect(environment).then(() => true));
    if (ok) {
      onChange(undefined);
      tunnelsChanged();
    }
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
