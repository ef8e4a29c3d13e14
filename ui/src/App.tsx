// The shell around every screen: who is signed in (or the login form), the navigation (admin
// screens only for administrators), the expired-session state, and keyboard shortcuts.
import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { setUnauthorizedHandler } from './api/client';
import { desktop } from './api/desktop';
import { isDesktop } from './api/transport';
import { ConfirmHost } from './components/Confirm';
import { BreakGlassBanner } from './components/BreakGlass';
import { TunnelIndicator } from './components/Connect';
import { ErrorBox, Loading } from './components/ui';
import { typing } from './lib/keys';
import { currentSession, signOut, type Me } from './lib/session';
import { navigate, useRoute } from './lib/router';
import { Approvals } from './screens/Approvals';
import { Audit } from './screens/Audit';
import { Connections } from './screens/Connections';
import { Environments } from './screens/Environments';
import { Grants } from './screens/Grants';
import { Groups } from './screens/Groups';
import { Login } from './screens/Login';
import { Masking } from './screens/Masking';
import { Rules } from './screens/Rules';
import { ServiceAccounts } from './screens/ServiceAccounts';
import { Sessions } from './screens/Sessions';

export interface NavItem {
  path: string;
  label: string;
  key: string;
  admin: boolean;
}

export const NAV: NavItem[] = [
  { path: '/environments', label: 'Environments', key: 'e', admin: false },
  { path: '/approvals', label: 'Approvals', key: 'a', admin: false },
  { path: '/connections', label: 'Connections', key: 'c', admin: false },
  { path: '/grants', label: 'Grants', key: 'g', admin: true },
  { path: '/groups', label: 'Groups', key: 'u', admin: true },
  { path: '/rules', label: 'Rules', key: 'r', admin: true },
  { path: '/audit', label: 'Audit', key: 'l', admin: true },
  { path: '/service-accounts', label: 'Service accounts', key: 's', admin: true },
  { path: '/sessions', label: 'Sessions', key: 'n', admin: true },
  { path: '/masking', label: 'Masking', key: 'm', admin: true },
];

export function navFor(admin: boolean): NavItem[] {
  return NAV.filter((n) => admin || !n.admin);
}

type Auth = { state: 'checking' } | { state: 'failed'; error: Error } | { state: 'signed-out'; expired: boolean } | { state: 'in'; me: Me };

/** `g` then a letter goes to a screen; `/` focuses the screen's search; `?` lists the keys. */
function useShortcuts(items: NavItem[], onHelp: () => void) {
  const pending = useRef(false);
  useEffect(() => {
    const on = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
      if (pending.current) {
        pending.current = false;
        const item = items.find((n) => n.key === e.key);
        if (item) {
          e.preventDefault();
          navigate(item.path);
        }
        return;
      }
      if (e.key === 'g') {
        pending.current = true;
        setTimeout(() => (pending.current = false), 1500);
      } else if (e.key === '/') {
        const s = document.querySelector<HTMLInputElement>('[data-search]');
        if (s) {
          e.preventDefault();
          s.focus();
        }
      } else if (e.key === '?') {
        onHelp();
      }
    };
    window.addEventListener('keydown', on);
    return () => window.removeEventListener('keydown', on);
  }, [items, onHelp]);
}

function Help({ items, onClose }: { items: NavItem[]; onClose: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    ref.current?.querySelector('button')?.focus();
  }, []);
  // Escape is handled on the dialog itself, so it works from the first render on.
  return (
    <div
      class="modal"
      role="dialog"
      aria-modal="true"
      aria-labelledby="help-title"
      ref={ref}
      onKeyDown={(e) => e.key === 'Escape' && (e.stopPropagation(), onClose())}
    >
      <div class="card">
        <h2 id="help-title">Keyboard shortcuts</h2>
        <dl class="keys">
          {items.map((n) => (
            <Fragment key={n.key}>
              <dt>
                <kbd>g</kbd> <kbd>{n.key}</kbd>
              </dt>
              <dd>{n.label}</dd>
            </Fragment>
          ))}
          <dt>
            <kbd>/</kbd>
          </dt>
          <dd>Search on this screen</dd>
          <dt>
            <kbd>j</kbd> <kbd>k</kbd>
          </dt>
          <dd>Approvals: next / previous request</dd>
          <dt>
            <kbd>a</kbd> <kbd>d</kbd>
          </dt>
          <dd>Approvals: approve / deny the selected request</dd>
          <dt>
            <kbd>?</kbd>
          </dt>
          <dd>This help</dd>
        </dl>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </div>
  );
}

function Screen({ path, params, me }: { path: string; params: URLSearchParams; me: Me }) {
  const admin = me.who.admin;
  const item = NAV.find((n) => n.path === path);
  if (item?.admin && !admin) return <ErrorBox error={Object.assign(new Error(`${item.label} is for administrators.`), { status: 403 })} />;
  switch (path) {
    case '/approvals':
      return <Approvals me={me.who.name} focus={params.get('id')} />;
    case '/connections':
      return <Connections admin={admin} />;
    case '/grants':
      return <Grants />;
    case '/groups':
      return <Groups />;
    case '/rules':
      return <Rules />;
    case '/audit':
      return <Audit params={params} />;
    case '/service-accounts':
      return <ServiceAccounts />;
    case '/sessions':
      return <Sessions />;
    case '/masking':
      return <Masking />;
    default:
      return <Environments />;
  }
}

export function App() {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });
  const [help, setHelp] = useState(false);
  const route = useRoute();
  const check = () => {
    setAuth({ state: 'checking' });
    currentSession().then(
      (me) => setAuth(me ? { state: 'in', me } : { state: 'signed-out', expired: false }),
      (error: Error) => setAuth({ state: 'failed', error }),
    );
  };
  useEffect(() => {
    check();
  }, []);
  useEffect(() => {
    // Any 401 while signed in means the session ended (expired, revoked, logged out elsewhere).
    setUnauthorizedHandler(() => setAuth((a) => (a.state === 'in' ? { state: 'signed-out', expired: true } : a)));
    return () => setUnauthorizedHandler(null);
  }, []);
  const items = auth.state === 'in' ? navFor(auth.me.who.admin) : [];
  useShortcuts(items, () => setHelp(true));
  // Desktop: a clicked notification opens its approval.
  useEffect(() => {
    if (!isDesktop()) return;
    let stop: (() => void) | undefined;
    let live = true;
    desktop
      .onOpenApproval((id) => navigate('/approvals', { id: id || undefined }))
      .then((s) => (live ? (stop = s) : s()), () => undefined);
    return () => {
      live = false;
      stop?.();
    };
  }, []);
  // Move focus to the new screen's heading so keyboard and screen-reader users land on it.
  useEffect(() => {
    document.getElementById('page-title')?.focus();
  }, [route.path]);

  if (auth.state === 'checking') return <Loading what="Checking your session" />;
  if (auth.state === 'failed')
    return (
      <main class="login">
        <ErrorBox error={auth.error} retry={check} />
      </main>
    );
  if (auth.state === 'signed-out') return <Login expired={auth.expired} onSignedIn={(me) => setAuth({ state: 'in', me })} />;

  const me = auth.me;
  const path = route.path === '/' ? '/environments' : route.path;
  const out = async () => {
    await signOut().catch(() => undefined);
    setAuth({ state: 'signed-out', expired: false });
  };
  return (
    <div class="app">
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('page-title')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Gatehouse</span>
        <nav aria-label="Main">
          <ul>
            {items.map((n) => (
              <li key={n.path}>
                <a href={`#${n.path}`} aria-current={path === n.path ? 'page' : undefined} aria-keyshortcuts={`g ${n.key}`}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          {isDesktop() && <TunnelIndicator />}
          <span data-testid="identity" title={me.who.groups.join(', ')}>
            {me.who.name}
            {me.who.admin ? ' (admin)' : ''}
          </span>
          {isDesktop() && me.gateway && <span class="muted small">{me.gateway}</span>}
          <button type="button" class="small" onClick={() => setHelp(true)} aria-label="Keyboard shortcuts">
            ?
          </button>
          <button type="button" class="small" onClick={out}>
            Sign out
          </button>
        </div>
      </header>
      <BreakGlassBanner />
      <main id="main">
        <Screen path={path} params={route.params} me={me} />
      </main>
      {help && <Help items={items} onClose={() => setHelp(false)} />}
      <ConfirmHost />
    </div>
  );
}
