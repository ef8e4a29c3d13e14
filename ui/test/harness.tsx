// The plumbing the UI's Vitest files share, so each test file keeps only its scenario:
// - a fake gateway: a real local HTTP server (real `fetch`, real CORS) whose answers the test
//   file writes as a function of the request; `withFakeGateway` points the screens' transport
//   at it for the whole file;
// - mounting a component or a screen (with the confirmation dialog's host) into the page;
// - acting as a user would: fill a labelled field, submit the form, find a button by its name;
// - waiting until the page shows something, and reading a table's rows;
// - the Tauri shell's global, stubbed (there is no Tauri in a browser).
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { render, type ComponentChild } from 'preact';
import { act } from 'preact/test-utils';
import { afterAll, beforeAll } from 'vitest';
import { getTransport, setTransport } from '../src/api/client';
import { WebTransport, type Transport } from '../src/api/transport';
import { ConfirmHost } from '../src/components/Confirm';

/** A request as the fake gateway got it, body read in full. */
export interface GatewayRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An answer: the status and, unless there is none (204), the JSON body. */
export interface Reply {
  status: number;
  body?: unknown;
}

/** Answers a request; `undefined` means the gateway has no such endpoint (404). */
export type Handler = (req: GatewayRequest) => Reply | undefined;

/**
 * Starts a local HTTP server on a free port that answers as `handle` says. CORS preflights are
 * answered here and never reach `handle`: the page and this server are different origins under
 * happy-dom. A handler that throws gets a 500 naming the error, not a dead server.
 */
export async function fakeGateway(handle: Handler): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      res.setHeader('access-control-allow-origin', '*');
      res.setHeader('access-control-allow-headers', '*');
      res.setHeader('access-control-allow-methods', '*');
      if (req.method === 'OPTIONS') return res.end();
      let reply: Reply;
      try {
        reply = handle({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body }) ?? {
          status: 404,
          body: { error: 'not_found', message: 'no such endpoint' },
        };
      } catch (e) {
        reply = { status: 500, body: { error: 'internal', message: `fake gateway: ${String(e)}` } };
      }
      res.statusCode = reply.status;
      if (reply.body !== undefined) res.setHeader('content-type', 'application/json');
      res.end(reply.body === undefined ? undefined : JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * For the whole test file: a fake gateway answering as `handle` says, and the UI's transport
 * (`api`) talking to it over real `fetch`; the previous transport is restored afterwards.
 */
export function withFakeGateway(handle: Handler) {
  let gateway: Awaited<ReturnType<typeof fakeGateway>>;
  let previous: Transport;
  beforeAll(async () => {
    gateway = await fakeGateway(handle);
    previous = getTransport();
    setTransport(new WebTransport(gateway.url));
  });
  afterAll(async () => {
    setTransport(previous);
    await gateway.close();
  });
}

/** Renders `node` into a fresh element at the end of the page. */
export async function mount(node: ComponentChild) {
  const root = document.body.appendChild(document.createElement('div'));
  await act(() => render(node, root));
}

/** Renders a screen as the app does: with the host of the confirmation dialog it may open. */
export async function mountScreen(screen: ComponentChild) {
  await mount(
    <>
      {screen}
      <ConfirmHost />
    </>,
  );
}

/** Lets pending fetches, timers and renders run (under act). */
export const flush = (ms = 0) => act(() => new Promise<void>((r) => setTimeout(r, ms)));

/** Waits (under act) until the page shows what the test expects; fails with the page's text. */
export async function until(what: string, ok: () => boolean) {
  for (let i = 0; i < 200; i++) {
    if (ok()) return;
    await flush(10);
  }
  throw new Error(`timed out waiting for ${what}; page: ${document.body.textContent}`);
}

/** The cells' text of each body row of the table with this `aria-label`. */
export const tableRows = (ariaLabel: string) =>
  [...document.querySelectorAll(`table[aria-label="${ariaLabel}"] tbody tr`)].map((r) =>
    [...r.querySelectorAll('td')].map((c) => c.textContent),
  );

/** The `<label>` whose text starts with `name`. */
export const label = (name: string) => {
  const found = [...document.querySelectorAll('label')].find((l) => l.textContent?.trim().startsWith(name));
  if (!found) throw new Error(`no label "${name}"; page: ${document.body.textContent}`);
  return found;
};

/** The input or select inside the label whose text starts with `name`. */
export const field = (name: string) => label(name).querySelector('input, select') as HTMLInputElement | HTMLSelectElement;

/** The button named `name` (its `aria-label`, else its text), if the page has one. */
export const button = (name: string) =>
  [...document.querySelectorAll('button')].find((b) => (b.getAttribute('aria-label') ?? b.textContent?.trim()) === name);

/** Clicks the button named `name` (under act); fails if the page has none. */
export async function click(name: string) {
  const b = button(name);
  if (!b) throw new Error(`no button "${name}"; page: ${document.body.textContent}`);
  await act(() => b.click());
}

/** Sets a field's value as typing or choosing would (the event Preact listens to). */
export async function setValue(el: HTMLInputElement | HTMLSelectElement, value: string) {
  await act(() => {
    el.value = value;
    el.dispatchEvent(new Event(el.tagName === 'SELECT' ? 'change' : 'input', { bubbles: true }));
  });
}

/** Types (or chooses) `value` into the field labelled `name`. */
export const fill = (name: string, value: string) => setValue(field(name), value);

/** Submits the page's form as pressing its submit button would. */
export async function submit() {
  await act(() => {
    document.querySelector('form')!.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
  });
}

type Invoke = (cmd: string, args: unknown) => Promise<unknown>;

/** Makes this page look like the desktop shell: `window.__TAURI__` with this `invoke`. */
export function stubTauri(invoke: Invoke) {
  (window as unknown as Record<string, unknown>).__TAURI__ = { core: { invoke } };
}

/** Back to a browser page: no `window.__TAURI__`. */
export function removeTauri() {
  delete (window as unknown as Record<string, unknown>).__TAURI__;
}
