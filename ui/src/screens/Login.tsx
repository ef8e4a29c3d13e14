// Sign in: a local user's name and password, or SSO. The desktop app also asks which gateway.
// The web console offers SSO only when its gateway has `[oidc]` (`GET /api/v1/info`); the
// desktop app asks the gateway typed through its shell and hides SSO once that gateway says it
// has none (a gateway it cannot ask keeps the button; signing in then says what is wrong).
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/client';
import { desktop } from '../api/desktop';
import { isDesktop } from '../api/transport';
import { signInWithPassword, signInWithSso, type Me } from '../lib/session';
import { ErrorBox, useAction } from '../components/ui';

const GATEWAY_KEY = 'gatehouse.gateway';

export function Login({ onSignedIn, expired }: { onSignedIn: (me: Me) => void; expired?: boolean }) {
  const desktopShell = isDesktop();
  const [gateway, setGateway] = useState(() => localStorage.getItem(GATEWAY_KEY) ?? '');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const action = useAction();
  const [missing, setMissing] = useState<string | null>(null);
  const [sso, setSso] = useState(desktopShell);
  useEffect(() => {
    if (desktopShell) return;
    let live = true;
    // Unknown (the gateway did not answer) counts as no SSO: the button would lead nowhere.
    api
      .info()
      .then((info) => live && setSso(info.sso === true))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, [desktopShell]);
  useEffect(() => {
    if (!desktopShell) return;
    const typed = gateway.trim();
    if (!typed) return setSso(true);
    let live = true;
    // Asked once typing pauses, not on every key.
    const t = setTimeout(() => {
      desktop.gatewayHasSso(typed).then(
        (has) => live && setSso(has !== false),
        () => live && setSso(true),
      );
    }, 300);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [desktopShell, gateway]);

  const needGateway = () => {
    if (desktopShell && !gateway.trim()) {
      setMissing('Enter the gateway URL, e.g. https://gatehouse.example.com');
      return true;
    }
    if (desktopShell) localStorage.setItem(GATEWAY_KEY, gateway.trim());
    return false;
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setMissing(null);
    if (needGateway()) return;
    if (!username.trim() || !password) {
      setMissing(sso ? 'Enter your user name and password, or sign in with SSO.' : 'Enter your user name and password.');
      return;
    }
    const me = await action.run(() => signInWithPassword(gateway.trim(), username.trim(), password));
    if (me) onSignedIn(me);
  };

  const signInSso = async () => {
    setMissing(null);
    if (needGateway()) return;
    const me = await action.run(() => signInWithSso(gateway.trim()));
    if (me) onSignedIn(me);
  };

  return (
    <main class="login">
      <form class="card" onSubmit={submit} aria-labelledby="login-title" noValidate>
        <h1 id="login-title">Gatehouse</h1>
        <p class="muted">Sign in to reach your databases, review statements and manage access.</p>
        {expired && (
          <p class="state warning" role="alert">
            Your session has expired. Sign in again to continue.
          </p>
        )}
        {desktopShell && (
          <label>
            Gateway URL
            <input
              type="url"
              name="gateway"
              value={gateway}
              placeholder="https://gatehouse.example.com"
              onInput={(e) => setGateway(e.currentTarget.value)}
              autoComplete="url"
              required
            />
          </label>
        )}
        <label>
          Username
          <input
            name="username"
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
            autoComplete="username"
            autoFocus
          />
        </label>
        <label>
          Password
          <input
            type="password"
            name="password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            autoComplete="current-password"
          />
        </label>
        {missing && (
          <p class="state error" role="alert">
            {missing}
          </p>
        )}
        {action.error && <ErrorBox error={action.error} />}
        <div class="row">
          <button type="submit" class="primary" disabled={action.busy}>
            {action.busy ? 'Signing in…' : 'Sign in'}
          </button>
          {sso && (
            <button type="button" onClick={signInSso} disabled={action.busy}>
              Sign in with SSO
            </button>
          )}
        </div>
      </form>
    </main>
  );
}
