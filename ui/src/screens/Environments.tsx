// The environments the signed-in identity may reach: search, filter by tier and tag; in the
// desktop app each has Connect (a local tunnel).
import { useMemo, useState } from 'preact/hooks';
import { api, type Environment } from '../api/client';
import { desktop, type Tunnel } from '../api/desktop';
import { isDesktop } from '../api/transport';
import { Connect } from '../components/Connect';
import { Badge, Page, View } from '../components/ui';
import { useLoad } from '../lib/load';

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
    <Page title="Environments">
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
        empty="You may not reach any environment yet. Ask an administrator for a grant."
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
    </Page>
  );
}
