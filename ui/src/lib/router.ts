// Hash routing (`#/approvals?state=pending`): works the same at the gateway's `/` and inside
// the desktop app, where there is no server to fall back to index.html on reload.
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  path: string;
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#/, '') || '/';
  const [path, q = ''] = h.split('?', 2);
  return { path: path || '/', params: new URLSearchParams(q) };
}

/**
 * The route a page starts on: its hash, or else a path the gateway links to without one (a held
 * statement's NOTICE names `{public_url}/approvals`; the gateway serves the console there too).
 */
export function startRoute(pathname: string, search: string, hash: string): Route {
  if (hash && hash !== '#') return parseHash(hash);
  const path = pathname.replace(/\/+$/, '');
  if (path && !path.endsWith('.html')) return parseHash(`#${path}${search}`);
  return parseHash('');
}

export function navigate(path: string, params?: Record<string, string | undefined>) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v) q.set(k, v);
  const s = q.toString();
  window.location.hash = s ? `${path}?${s}` : path;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => {
    const { pathname, search, hash } = window.location;
    const start = startRoute(pathname, search, hash);
    if (!hash && start.path !== '/') {
      // Back to the one page at `/`, with the route in the hash as everywhere else.
      const q = start.params.toString();
      window.history.replaceState(null, '', `/#${start.path}${q ? `?${q}` : ''}`);
    }
    return start;
  });
  useEffect(() => {
    const on = () => setRoute(parseHash(window.location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
