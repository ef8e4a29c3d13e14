// The desktop Connect/Disconnect UI over a stubbed Tauri shell (window.__TAURI__ does not exist
// in a browser): the commands it calls with which arguments, and what it shows.
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { useState } from 'preact/hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Connect, TunnelIndicator } from '../src/components/Connect';
import type { Tunnel } from '../src/api/desktop';

let calls: [string, unknown][] = [];
let fail: string | null = null;
let open: Tunnel[] = [];
const tunnel: Tunnel = {
  environment: 'prod',
  port: 54321,
  connection_string: 'postgresql://alice@127.0.0.1:54321/prod',
  psql: 'psql "postgresql://alice@127.0.0.1:54321/prod"',
};

beforeEach(() => {
  calls = [];
  fail = null;
  open = [];
  (window as unknown as Record<string, unknown>).__TAURI__ = {
    core: {
      invoke: async (cmd: string, args: unknown) => {
        calls.push([cmd, args]);
        if (fail) throw fail;
        if (cmd === 'tunnels') return open;
        if (cmd === 'connect') {
          open = [{ ...tunnel, opened_at: '2026-01-01T00:00:00Z' }];
          return tunnel;
        }
        if (cmd === 'disconnect') open = [];
        return null;
      },
    },
  };
});
afterEach(() => {
  delete (window as unknown as Record<string, unknown>).__TAURI__;
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

const flush = () => act(() => new Promise((r) => setTimeout(r, 0)));
const button = (name: string) =>
  [...document.querySelectorAll('button')].find((b) => b.textContent?.trim() === name) as HTMLButtonElement | undefined;

describe('Connect', () => {
  it('opens a tunnel, shows port, connection string and psql line, and disconnects', async () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    await act(() => render(<Host />, root));
    expect(document.querySelector('[data-testid="tunnel-port"]')).toBeNull();
    await act(() => button('Connect')!.click());
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

    await act(() => button('Disconnect')!.click());
    await flush();
    expect(calls.filter(([c]) => c !== 'tunnels')[1]).toEqual(['disconnect', { environment: 'prod' }]);
    await flush();
    expect(document.querySelector('header')!.textContent).toBe('');
    expect(document.querySelector('[data-testid="tunnel-port"]')).toBeNull();
    expect(button('Connect')).toBeDefined();
  });

  it("shows the shell's message when connecting fails", async () => {
    fail = 'no session: sign in again';
    const root = document.createElement('div');
    document.body.appendChild(root);
    await act(() => render(<Host />, root));
    await act(() => button('Connect')!.click());
    await flush();
    expect(document.querySelector('[role="alert"]')!.textContent).toContain('no session: sign in again');
    expect(document.querySelector('[data-testid="tunnel-port"]')).toBeNull();
  });
});
