// Live updates for approvals and access requests. The web console listens to the gateway's server-sent events at
// `/events` (cookie session); the desktop app has no event stream through its shell command, so
// it polls. Either way the caller just gets "something changed".
import { useEffect, useRef, useState } from 'preact/hooks';
import { isDesktop } from '../api/transport';

export type LiveState = 'connecting' | 'live' | 'polling' | 'offline';

/** The gateway's event names (`/events`): statements and exemption requests, access requests. */
export const LIVE_EVENTS = [
  'approval.created',
  'approval.decided',
  'access_request.created',
  'access_request.decided',
  'access_request.break_glass',
  'access_request.withdrawn',
  'access_request.expired',
] as const;

export function useLiveEvents(onChange: (event: string, data: unknown) => void): LiveState {
  const [state, setState] = useState<LiveState>('connecting');
  const cb = useRef(onChange);
  cb.current = onChange;
  useEffect(() => {
    if (isDesktop() || typeof EventSource === 'undefined') {
      setState('polling');
      const t = setInterval(() => cb.current('poll', null), 4000);
      return () => clearInterval(t);
    }
    const es = new EventSource('/events', { withCredentials: true });
    const handle = (e: MessageEvent) => {
      let data: unknown = e.data;
      try {
        data = JSON.parse(e.data);
      } catch {
        /* keep the text */
      }
      cb.current(e.type, data);
    };
    for (const name of LIVE_EVENTS) es.addEventListener(name, handle as EventListener);
    es.onopen = () => {
      setState('live');
      // Anything that happened while we were not listening.
      cb.current('reconnected', null);
    };
    es.onerror = () => setState(es.readyState === EventSource.CLOSED ? 'offline' : 'connecting');
    return () => es.close();
  }, []);
  return state;
}
