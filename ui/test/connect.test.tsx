// The desktop Connect/Disconnect UI over a stubbed Tauri shell (window.__TAURI__ does not exist
// in a browser): the commands it calls with which arguments, and what it shows.
import { useState } from 'preact/hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Connect, TunnelIndicator } from '../src/components/Connect';
import type { Tunnel } from '../src/api/desktop';
import { button, click, flush, mount, removeTauri, stubTauri } from './harness';

let calls: [string, unknown][] = [];
let fail: string | null = null;
let open: Tunnel[] = [];
const tunnel: Tunnel = {
  environment: 'prod',
  database: null,
  port: 54321,
  connection_string: 'postgresql://alice@127.0.0.1:54321/prod',
  psql: 'psql "postgresql://alice@127.0.0.1:54321/prod"',
  opened_at: '2026-01-02T03:04:05Z',
  active_connections: 0,
};

beforeEach(() => {
  calls = [];
  fail = null;
  open = [];
  stubTauri(async (cmd, args) => {
    calls.push([cmd, args]);
    if (fail) throw fail;
    if (cmd === 'tunnels') return open;
    if (cmd === 'connect') {
      open = [{ ...tunnel, opened_at: '2026-01-01T00:00:00Z' }];
      return tunnel;
    }
    if (cmd === 'disconnect') open = [];
    return null;
  });
});
afterEach(() => {
  removeTauri();
  document.body.innerHTML = '';
});

function Host() {
  const [t, setT] = useState<Tunnel | undefined>(undefined);
  return (
    <>
      <header>
        <TunnelIndicator />
      </header>
      <div data-env="prod">
        <Connect environment="prod" tunnel={t} onChange={setT} />
      </div>
    </>
  );
}

describe('Connect', () => {
  it('opens a tunnel, shows port, connection string and psql line, and disconnects', async () => {
    await mount(<Host />);
    expect(document.querySelector('[data-testid="tunnel-port"]')).toBeNull();
    await click('Connect');
    await flush();
    expect(calls.filter(([c]) => c !== 'tunnels')).toEqual([['connect', { environment: 'prod', database: null, port: null }]]);
    await flush();
    expect(document.querySelector('header')!.textContent).toContain('1 tunnel open');
    const env = document.querySelector('[data-env="prod"]')!;
    expect(env.querySelector('[data-testid="tunnel-port"]')!.textContent).toBe('54321');
    expect(env.querySelector('[data-testid="tunnel-psql"]')!.textContent).toBe(tunnel.psql);
    expect(env.textContent).toContain(tunnel.connection_string);
    expect(env.querySelector('[role="status"]')!.textContent).toContain('Open on port');
    expect(button('Connect')).toBeUndefined();

    await click('Disconnect');
    await flush();
    expect(calls.filter(([c]) => c !== 'tunnels')[1]).toEqual(['disconnect', { environment: 'prod' }]);
    await flush();
    expect(document.querySelector('header')!.textContent).toBe('');
    expect(document.querySelector('[data-testid="tunnel-port"]')).toBeNull();
    expect(button('Connect')).toBeDefined();
  });

  it("shows the shell's message when connecting fails", async () => {
    fail = 'no session: sign in again';
    await mount(<Host />);
    await click('Connect');
    await flush();
    expect(document.querySelector('[role="alert"]')!.textContent).toContain('no session: sign in again');
    expect(document.querySelector('[data-testid="tunnel-port"]')).toBeNull();
  });
});
