// Small shared pieces: the loading / empty / error states every screen uses, the data table,
// highlighted SQL, a copy button, badges.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { tokenize } from '../lib/sql';
import type { Load } from '../lib/load';

/** What to do about an error, by its HTTP status (0: the gateway could not be reached). */
export function advice(status: number | undefined): string {
  switch (status) {
    case 0:
      return 'Check that the gateway is running and reachable, then retry.';
    case 401:
      return 'Your session has ended: sign in again.';
    case 403:
      return 'Your identity may not do this; ask an administrator for access.';
    case 404:
      return 'It may have been removed; reload the list.';
    case 409:
      return 'Someone else changed it first; reload and try again.';
    case 429:
      return 'Too many attempts; wait a little and try again.';
    default:
      return status && status >= 500 ? 'Retry; if it keeps failing, look at the gateway log.' : 'Correct the input and try again.';
  }
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p class="state loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {what}…
    </p>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="state empty">{children}</p>;
}

export function ErrorBox({ error, retry }: { error: Error & { status?: number }; retry?: () => void }) {
  return (
    <div class="state error" role="alert">
      <strong>{error.message}</strong>
      <p>{advice(error.status)}</p>
      {retry && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** Shows a load's state; `children` renders the data once there is some. */
export function View<T>({
  load,
  what,
  empty,
  isEmpty,
  children,
}: {
  load: Load<T>;
  what?: string;
  empty?: ComponentChildren;
  isEmpty?: (d: T) => boolean;
  children: (d: T) => ComponentChildren;
}) {
  return (
    <>
      {load.state === 'error' && <ErrorBox error={load.error} retry={load.reload} />}
      {load.state === 'loading' && load.data === undefined && <Loading what={what} />}
      {load.data !== undefined &&
        (empty !== undefined && (isEmpty ? isEmpty(load.data) : Array.isArray(load.data) && load.data.length === 0) ? (
          <Empty>{empty}</Empty>
        ) : (
          children(load.data)
        ))}
    </>
  );
}

export function Sql({ text, label }: { text: string; label?: string }) {
  return (
    <pre class="sql" aria-label={label ?? 'SQL statement'} tabIndex={0}>
      <code>
        {tokenize(text).map((t, i) =>
          t.kind === 'space' || t.kind === 'punct' ? t.text : (
            <span key={i} class={`tok-${t.kind}`}>
              {t.text}
            </span>
          ),
        )}
      </code>
    </pre>
  );
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState<'idle' | 'copied' | 'failed'>('idle');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('copied');
    } catch {
      setDone('failed');
    }
    setTimeout(() => setDone('idle'), 2000);
  };
  return (
    <button type="button" class="small" onClick={copy} aria-label={label}>
      {done === 'copied' ? 'Copied' : done === 'failed' ? 'Select and copy' : 'Copy'}
    </button>
  );
}

export function Badge({ kind, children }: { kind: string; children: ComponentChildren }) {
  return <span class={`badge badge-${kind.replace(/[^a-z0-9_-]/gi, '')}`}>{children}</span>;
}

export function Page({ title, actions, children }: { title: string; actions?: ComponentChildren; children: ComponentChildren }) {
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          {title}
        </h1>
        {actions && <div class="actions">{actions}</div>}
      </header>
      {children}
    </section>
  );
}

/** A form's submit state: busy while it runs, its error after. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<(Error & { status?: number }) | null>(null);
  const run = async <T,>(f: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await f();
    } catch (e) {
      setError(e as Error);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(null) };
}

/**
 * A data table: one header cell per column name (`scope="col"`, so screen readers announce the
 * column with every cell), then an actions column named for screen readers only when `actions`
 * is set, and the rows given as children (each screen keeps its own `<tr>`s and their hooks).
 */
export function Table({
  label,
  columns,
  actions = false,
  class: className,
  children,
}: {
  label?: string;
  columns: string[];
  actions?: boolean;
  class?: string;
  children: ComponentChildren;
}) {
  return (
    <table class={className} aria-label={label}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th key={c} scope="col">
              {c}
            </th>
          ))}
          {actions && (
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          )}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}

/**
 * The action for an entry that comes either from the config file or from the API (a grant, a
 * group member): only the API's can be removed here; the config file's are edited there.
 */
export function RemoveIfApi({ source, label, onRemove }: { source: string; label: string; onRemove: () => void }) {
  return source === 'api' ? (
    <button type="button" class="danger small" onClick={onRemove} aria-label={label}>
      Remove
    </button>
  ) : (
    <span class="muted small">in the config file</span>
  );
}
