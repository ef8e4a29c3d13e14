// Live updates for approvals. The web console listens to the gateway's server-sent events at
// `/events` (cookie session); the desktop app has no event stream through its shell command, so
// it polls. Either way the caller just gets "something changed".
import { useEffect, useRef, useState } from 'preact/hooks';
import { isDesktop } from '../api/transport';

export type LiveState = 'connecting' | 'live' | 'polling' | 'offline';

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
    es.addEventListener('approval.created', handle as EventListener);
    es.addEventListener('approval.decided', handle as EventListener);
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
