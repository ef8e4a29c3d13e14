// The desktop shell's commands (src-tauri/), one typed function each, as the UI/desktop contract
// fixes them; their result types are generated from the shell's Rust structs. Only the desktop
// shell has these; callers check `isDesktop()` first.
import { tauri } from './transport';

import type { SessionInfo, TunnelView } from './desktop-types';

/** Who is signed in where (generated from the shell's Rust struct, desktop-types.ts). */
export type DesktopSession = SessionInfo;
/** One open tunnel (generated from the shell's Rust struct, desktop-types.ts). */
export type Tunnel = TunnelView;

function invoke<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  const t = tauri();
  if (!t) return Promise.reject(new Error('this needs the Gatehouse desktop app'));
  // The shell rejects with a human message string; make it an Error so callers show it alike.
  return t.core.invoke<T>(cmd, args).catch((e: unknown) => {
    throw e instanceof Error ? e : new Error(typeof e === 'string' ? e : JSON.stringify(e));
  });
}

export const desktop = {
  sessionInfo: () => invoke<DesktopSession | null>('session_info'),
  loginPassword: (gateway: string, username: string, password: string) =>
    invoke<DesktopSession>('login_password', { gateway, username, password }),
  loginSso: (gateway: string) => invoke<DesktopSession>('login_sso', { gateway }),
  logout: () => invoke<null>('logout'),
  connect: (environment: string, database: string | null = null, port: number | null = null) =>
    invoke<Tunnel>('connect', { environment, database, port }),
  disconnect: (environment: string) => invoke<null>('disconnect', { environment }),
  tunnels: () => invoke<Tunnel[]>('tunnels'),
  /** Whether the gateway typed has SSO; `null` when the shell could not ask it. */
  gatewayHasSso: (gateway: string) => invoke<boolean | null>('gateway_has_sso', { gateway }),
  /** Whether tunnels open at quit are reopened at the next start. */
  reopenSetting: () => invoke<boolean>('reopen_setting'),
  setReopenSetting: (on: boolean) => invoke<null>('set_reopen_setting', { on }),
  /** Calls `cb` with an approval's id when the person clicks its notification (or the tray's
   * "waiting for you", with an empty id); returns how to stop listening. */
  onOpenApproval: (cb: (id: string) => void): Promise<() => void> => {
    const events = tauri()?.event;
    if (!events) return Promise.resolve(() => undefined);
    return events.listen<string>('open-approval', (e) => cb(e.payload));
  },
};
