// Signing in and out in either shell. The web console holds its session in HttpOnly cookies the
// gateway sets; the desktop app's shell holds the token (keychain) and only tells the page who
// is signed in to which gateway.
import { api, ApiError, type WhoAmI } from '../api/client';
import { desktop } from '../api/desktop';
import { isDesktop } from '../api/transport';

export interface Me {
  who: WhoAmI;
  /** Desktop only: the gateway this app is signed in to. */
  gateway?: string;
}

export async function currentSession(): Promise<Me | null> {
  let gateway: string | undefined;
  if (isDesktop()) {
    const info = await desktop.sessionInfo();
    if (!info) return null;
    gateway = info.gateway;
  }
  try {
    return { who: await api.whoami(), gateway };
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function signInWithPassword(gateway: string, username: string, password: string): Promise<Me> {
  if (isDesktop()) {
    const info = await desktop.loginPassword(gateway, username, password);
    return { who: await api.whoami(), gateway: info.gateway };
  }
  await api.login(username, password);
  return { who: await api.whoami() };
}

/** Desktop: system browser + loopback in the shell. Web: the gateway's SSO start page. */
export async function signInWithSso(gateway: string): Promise<Me | null> {
  if (isDesktop()) {
    const info = await desktop.loginSso(gateway);
    return { who: await api.whoami(), gateway: info.gateway };
  }
  const back = window.location.hash ? `/${window.location.hash}` : '/';
  window.location.assign(`/auth/oidc/start?return_to=${encodeURIComponent(back)}`);
  return null;
}

export async function signOut(): Promise<void> {
  if (isDesktop()) {
    await desktop.logout();
    return;
  }
  await api.logout().catch((e) => {
    // An already-ended session is as good as signed out.
    if (!(e instanceof ApiError && e.status === 401)) throw e;
  });
}
