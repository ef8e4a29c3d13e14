// How the UI reaches the gateway's API. Two shells, one interface:
// - web console (served by the gateway at `/`): `fetch` with the HttpOnly session cookie, and the
//   `X-CSRF-Token` header (the readable `gatehouse_csrf` cookie) on requests that change state;
// - desktop app (Tauri v2): the shell's `api_request` command, which adds the stored session
//   token itself, so the token never reaches this page.
// Components never call `fetch` or `invoke` directly: they go through `api` (client.ts).

export interface ApiResponse {
  status: number;
  body: unknown;
}

export interface Transport {
  kind: 'web' | 'desktop';
  request(method: string, path: string, body?: unknown): Promise<ApiResponse>;
}

/** The Tauri v2 global (`app.withGlobalTauri = true`), present only in the desktop shell. */
export interface TauriGlobal {
  core: { invoke<T = unknown>(cmd: string, args?: Record<string, unknown>): Promise<T> };
  /** The shell's events (e.g. `open-approval` when a notification is clicked). */
  event?: { listen<T = unknown>(name: string, cb: (e: { payload: T }) => void): Promise<() => void> };
}

export function tauri(w: Window = window): TauriGlobal | undefined {
  const t = (w as unknown as { __TAURI__?: TauriGlobal }).__TAURI__;
  return t && t.core && typeof t.core.invoke === 'function' ? t : undefined;
}

export function isDesktop(w: Window = window): boolean {
  return tauri(w) !== undefined;
}

/** The value of a cookie readable by scripts (only `gatehouse_csrf` is). */
export function readCookie(name: string, cookies: string = document.cookie): string | undefined {
  for (const part of cookies.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export class WebTransport implements Transport {
  kind = 'web' as const;
  constructor(private base = '') {}

  async request(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (!SAFE.has(method.toUpperCase())) {
      const csrf = readCookie('gatehouse_csrf');
      if (csrf) headers['x-csrf-token'] = csrf;
    }
    const res = await fetch(this.base + path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const type = res.headers.get('content-type') ?? '';
    const text = await res.text();
    let parsed: unknown = text;
    if (type.includes('json') && text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    } else if (!text) {
      parsed = null;
    }
    return { status: res.status, body: parsed };
  }
}

export class DesktopTransport implements Transport {
  kind = 'desktop' as const;
  constructor(private t: TauriGlobal) {}

  async request(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    return this.t.core.invoke<ApiResponse>('api_request', {
      method,
      path,
      body: body === undefined ? null : body,
    });
  }
}

/** The transport for the shell this page runs in. */
export function detectTransport(w: Window = window): Transport {
  const t = tauri(w);
  return t ? new DesktopTransport(t) : new WebTransport();
}
