// `useLoad`: one request's life as a value (loading, ready, failed) with a reload, so every
// screen shows the same loading, empty and error states.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export type Load<T> =
  | { state: 'loading'; data?: T; reload: () => void }
  | { state: 'ready'; data: T; reload: () => void }
  | { state: 'error'; error: Error & { status?: number }; data?: T; reload: () => void };

export function useLoad<T>(fetcher: () => Promise<T>, deps: unknown[]): Load<T> {
  const [s, set] = useState<{ state: 'loading' | 'ready' | 'error'; data?: T; error?: Error }>({ state: 'loading' });
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    set((prev) => ({ state: prev.state === 'ready' ? 'ready' : 'loading', data: prev.data }));
    fetcher().then(
      (data) => mine === seq.current && set({ state: 'ready', data }),
      (error: Error) => mine === seq.current && set((prev) => ({ state: 'error', error, data: prev.data })),
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    run();
  }, [run]);
  return { ...s, reload: run } as Load<T>;
}

export function fmtTime(v: number | string | null | undefined): string {
  if (v === null || v === undefined || v === '') return '—';
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function splitList(s: string): string[] {
  return s
    .split(/[,\s]+/)
    .map((x) => x.trim())
    .filter(Boolean);
}
