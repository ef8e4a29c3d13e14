// The environments the signed-in identity may reach: search, filter by tier and tag; in the
// desktop app each has Connect (a local tunnel). Below them, the environments that take access
// requests and that the identity cannot reach yet, each with Request access (or the state of the
// request already made).
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, type Approval, type Environment, type Requestable } from '../api/client';
import { desktop, type Tunnel } from '../api/desktop';
import { isDesktop } from '../api/transport';
import { Connect } from '../components/Connect';
import { humanDuration, RequestAccess } from '../components/RequestAccess';
import { Badge, Page, View } from '../components/ui';
import { useLiveEvents } from '../lib/events';
import { fmtTime, useLoad } from '../lib/load';

/** The pending request for `env` among `mine`, if one waits. */
function pendingFor(mine: Approval[], env: string): Approval | undefined {
  return mine.find((a) => a.kind === 'access' && a.environment === env && a.state === 'pending');
}

/** Desktop: whether the tunnels open at quit come back at the next start (on by default). */
function ReopenSetting() {
  const setting = useLoad(() => desktop.reopenSetting(), []);
  const [error, setError] = useState<string | null>(null);
  if (setting.data === undefined) return null;
  return (
    <label class="inline small">
      <input
        type="checkbox"
        checked={setting.data}
        onChange={(e) => {
          const on = e.currentTarget.checked;
          desktop.setReopenSetting(on).then(
            () => (setError(null), setting.reload()),
            (err: Error) => setError(err.message),
          );
        }}
      />
      Reopen my tunnels when the app starts, on the same ports
      {error && <span class="field-error"> {error}</span>}
    </label>
  );
}

/** The environments that take requests and that the caller cannot reach yet. */
export function RequestableEnvironments({ onGranted }: { onGranted: () => void }) {
  const offered = useLoad(() => api.requestable(), []);
  const mine = useLoad(() => api.myAccessRequests(), []);
  const [made, setMade] = useState<Approval | null>(null);
  useLiveEvents((event) => {
    // A decision on one's own request (an event in the web console, a poll in the desktop app):
    // reload both lists.
    if (event === 'poll' || event === 'reconnected' || event.startsWith('access_request.')) {
      mine.reload();
      offered.reload();
    }
  });
  // An environment that became reachable (a request approved) belongs in the list above now.
  const reachable = useRef<Set<string> | null>(null);
  useEffect(() => {
    if (!offered.data) return;
    const now = new Set(offered.data.filter((e) => e.reachable).map((e) => e.name));
    const before = reachable.current;
    reachable.current = now;
    if (before && [...now].some((name) => !before.has(name))) onGranted();
  }, [offered.data]);
  const list = (offered.data ?? []).filter((e) => !e.reachable);
  if (offered.state === 'error' || list.length === 0) return null;
  const requested = (a: Approval) => {
    setMade(a);
    mine.reload();
    offered.reload();
    if (a.state === 'approved') onGranted();
  };
  return (
    <section aria-labelledby="request-title">
      <h2 id="request-title">Request access</h2>
      <p class="muted">These environments take requests: ask for a while, with a reason; an approver decides.</p>
      {made && (
        <p class={`state ${made.access?.break_glass ? 'error' : 'ok'}`} role="status">
          {made.state === 'approved'
            ? `Break-glass access to ${made.environment} until ${fmtTime(made.grant_expires_at)}: it is announced and reviewed.`
            : `Requested access to ${made.environment} (${made.id}); you will see it here once an approver decides.`}
        </p>
      )}
      <ul class="cards" aria-label="Environments you may request">
        {list.map((e: Requestable) => {
          const waiting = pendingFor(mine.data ?? [], e.name);
          return (
            <li key={e.name} class="card env requestable" data-requestable={e.name}>
              <div class="env-head">
                <h3>{e.name}</h3>
                <Badge kind={e.tier}>{e.tier}</Badge>
              </div>
              {e.description && <p>{e.description}</p>}
              <p class="muted small">
                up to {humanDuration(e.max_duration_seconds)}
                {e.roles.length > 0 && ` · roles: ${e.roles.join(', ')}`}
              </p>
              {waiting ? (
                <p class="muted" data-pending={waiting.id}>
                  Requested {fmtTime(waiting.created_at)} for {humanDuration(waiting.access?.duration_seconds ?? 0)}: waiting
                  for an approver.{' '}
                  <button type="button" class="small" onClick={() => api.withdraw(waiting.id).then(() => mine.reload(), () => mine.reload())}>
                    Withdraw
                  </button>
                </p>
              ) : (
                <RequestAccess env={e} onRequested={requested} />
              )}
            </li>
          );
        })}
      </ul>
    </section>
  );
}

export function filterEnvironments(envs: Environment[], q: string, tier: string, tag: string): Environment[] {
  const needle = q.trim().toLowerCase();
  return envs.filter(
    (e) =>
      (!tier || e.tier === tier) &&
      (!tag || e.tags.includes(tag)) &&
      (!needle ||
        e.name.toLowerCase().includes(needle) ||
        (e.description ?? '').toLowerCase().includes(needle) ||
        e.tags.some((t) => t.toLowerCase().includes(needle))),
  );
}

export function Environments() {
  const desktopShell = isDesktop();
  const envs = useLoad(() => api.environments(), []);
  const tunnels = useLoad(() => (desktopShell ? desktop.tunnels() : Promise.resolve([] as Tunnel[])), []);
  const [q, setQ] = useState('');
  const [tier, setTier] = useState('');
  const [tag, setTag] = useState('');
  const [local, setLocal] = useState<Record<string, Tunnel | undefined>>({});

  const all = envs.data ?? [];
  const tiers = useMemo(() => [...new Set(all.map((e) => e.tier))].sort(), [all]);
  const tags = useMemo(() => [...new Set(all.flatMap((e) => e.tags))].sort(), [all]);
  const tunnelOf = (name: string) =>
    name in local ? local[name] : (tunnels.data ?? []).find((t) => t.environment === name);

  return (
    <Page title="Environments" actions={desktopShell ? <ReopenSetting /> : undefined}>
      <div class="filters" role="search">
        <label>
          Search environments
          <input type="search" data-search value={q} onInput={(e) => setQ(e.currentTarget.value)} placeholder="name, tag, description" />
        </label>
        <label>
          Tier
          <select value={tier} onChange={(e) => setTier(e.currentTarget.value)}>
            <option value="">All tiers</option>
            {tiers.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label>
          Tag
          <select value={tag} onChange={(e) => setTag(e.currentTarget.value)}>
            <option value="">All tags</option>
            {tags.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
      </div>
      <View
        load={envs}
        what="Loading environments"
        empty="You may not reach any environment yet. Request access below where an environment takes requests, or ask an administrator for a grant."
      >
        {(list) => {
          const shown = filterEnvironments(list, q, tier, tag);
          if (shown.length === 0) return <p class="state empty">No environment matches these filters.</p>;
          return (
            <ul class="cards" aria-label="Environments you may reach">
              {shown.map((e) => (
                <li key={e.name} class="card env" data-env={e.name}>
                  <div class="env-head">
                    <h2>{e.name}</h2>
                    <Badge kind={e.tier}>{e.tier}</Badge>
                  </div>
                  {e.description && <p>{e.description}</p>}
                  <p class="muted">
                    database <code>{e.dbname}</code>
                    {e.tags.length > 0 && ' · '}
                    {e.tags.map((t) => (
                      <span key={t} class="tag">
                        {t}
                      </span>
                    ))}
                  </p>
                  {desktopShell ? (
                    <Connect
                      environment={e.name}
                      tunnel={tunnelOf(e.name)}
                      onChange={(t) => setLocal((m) => ({ ...m, [e.name]: t }))}
                    />
                  ) : (
                    <p class="muted small">
                      Connect with the desktop app, or <code>gatehouse connect {e.name}</code>.
                    </p>
                  )}
                </li>
              ))}
            </ul>
          );
        }}
      </View>
      <RequestableEnvironments onGranted={envs.reload} />
    </Page>
  );
}
