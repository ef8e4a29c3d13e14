// The masking catalog (administrators): every column the gateway catalogued in an environment,
// with the sensitivity category it found (from the column's name, comment or sampled values)
// and why; confirm a tag, override it, or hand it back to the gateway; re-read the catalog;
// and exemptions (a group sees a category unmasked in an environment, optionally for a while).
// The catalog API ships with the masking work: on a gateway without it this screen says so
// instead of failing.
import { useState } from 'preact/hooks';
import { api, ApiError, type CatalogView, type Exemption } from '../api/client';
import { Badge, ErrorBox, Page, Table, View, useAction } from '../components/ui';
import { fmtTime, useLoad } from '../lib/load';
import { ask } from '../components/Confirm';

export const CATEGORIES = [
  'email',
  'phone',
  'person_name',
  'postal_address',
  'date_of_birth',
  'national_id',
  'payment_card',
  'iban',
  'ip_address',
  'secret',
  'free_text',
];

export interface CatalogRow {
  database: string;
  schema: string;
  table: string;
  column: string;
  type: string;
  category: string | null;
  source: string;
}

/** One row per column, sensitive ones first, then by name. */
export function catalogRows(view: CatalogView): CatalogRow[] {
  const rows: CatalogRow[] = [];
  for (const db of view.databases ?? [])
    for (const t of db.tables ?? [])
      for (const c of t.columns ?? [])
        rows.push({
          database: db.database,
          schema: t.schema,
          table: t.name,
          column: c.name,
          type: c.type_name,
          category: c.category ?? null,
          source: c.source,
        });
  const key = (r: CatalogRow) => `${r.category ? 0 : 1} ${r.schema}.${r.table}.${r.column}`;
  return rows.sort((a, b) => key(a).localeCompare(key(b)));
}

const NONE = '';

function ColumnRow({ env, r, onDone }: { env: string; r: CatalogRow; onDone: () => void }) {
  const [category, setCategory] = useState(r.category ?? NONE);
  const act = useAction();
  const name = `${r.schema}.${r.table}.${r.column}`;
  const put = async (cat: string | null) => {
    if ((await act.run(() => api.tagColumn(env, r.schema, r.table, r.column, cat))) !== undefined) onDone();
  };
  const reset = async () => {
    if ((await act.run(() => api.untagColumn(env, r.schema, r.table, r.column))) !== undefined) onDone();
  };
  return (
    <tr data-column={name}>
      <td>
        <code>{name}</code>
      </td>
      <td>{r.type}</td>
      <td>{r.category ? <Badge kind="review">{r.category}</Badge> : <span class="muted">not sensitive</span>}</td>
      <td>{r.source === 'override' ? 'set by an administrator' : r.source === 'none' ? '—' : `from its ${r.source}`}</td>
      <td class="nowrap">
        {r.source !== 'override' && (
          <>
            <button type="button" class="small" onClick={() => put(r.category)} aria-label={`Confirm ${name}`}>
              Confirm
            </button>{' '}
          </>
        )}
        <label class="inline">
          <span class="sr-only">Category for {name}</span>
          <select value={category} onChange={(e) => setCategory(e.currentTarget.value)}>
            <option value={NONE}>not sensitive</option>
            {CATEGORIES.map((x) => (
              <option key={x} value={x}>
                {x}
              </option>
            ))}
          </select>
        </label>{' '}
        <button
          type="button"
          class="small"
          disabled={category === (r.category ?? NONE)}
          onClick={() => put(category || null)}
          aria-label={`Override ${name}`}
        >
          Override
        </button>
        {r.source === 'override' && (
          <>
            {' '}
            <button type="button" class="small" onClick={reset} aria-label={`Reset ${name} to the gateway's tag`}>
              Reset
            </button>
          </>
        )}
        {act.error && <ErrorBox error={act.error} />}
      </td>
    </tr>
  );
}

function Exemptions({ env }: { env: string }) {
  const list = useLoad(() => api.exemptions(), []);
  const [form, setForm] = useState({ group: '', category: 'email', hours: '', reason: '' });
  const add = useAction();
  const del = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await add.run(() =>
      api.createExemption({
        group: form.group.trim(),
        environment: env,
        category: form.category,
        expires_in_seconds: form.hours ? Math.round(Number(form.hours) * 3600) : null,
        reason: form.reason.trim() || null,
      }),
    );
    if (r) {
      setForm({ ...form, group: '', reason: '' });
      list.reload();
    }
  };
  const remove = async (x: Exemption) => {
    if ((await ask({ title: `Remove the exemption of ${x.group} for ${x.category}?`, message: 'Its members see these values masked again at their next statement.', confirm: 'Remove' })) === null) return;
    if ((await del.run(() => api.deleteExemption(x.id))) !== undefined) list.reload();
  };
  return (
    <section aria-labelledby="exemptions-title">
      <h2 id="exemptions-title">Exemptions</h2>
      <form class="card form-grid" onSubmit={submit} aria-label="New exemption">
        <label>
          Group
          <input value={form.group} onInput={(e) => setForm({ ...form, group: e.currentTarget.value })} required placeholder="fraud-team" />
        </label>
        <label>
          Category
          <select value={form.category} onChange={(e) => setForm({ ...form, category: e.currentTarget.value })}>
            {CATEGORIES.map((x) => (
              <option key={x} value={x}>
                {x}
              </option>
            ))}
          </select>
        </label>
        <label>
          For how many hours
          <input type="number" min={0} step="any" value={form.hours} onInput={(e) => setForm({ ...form, hours: e.currentTarget.value })} placeholder="no end" />
        </label>
        <label>
          Why
          <input value={form.reason} onInput={(e) => setForm({ ...form, reason: e.currentTarget.value })} />
        </label>
        <button type="submit" class="primary" disabled={add.busy}>
          Add exemption
        </button>
        {add.error && <ErrorBox error={add.error} />}
      </form>
      {del.error && <ErrorBox error={del.error} />}
      <View
        load={list}
        what="Loading exemptions"
        empty="No exemption: every identity sees sensitive values masked."
        isEmpty={(l) => l.filter((x) => x.environment === env || x.environment === '*').length === 0}
      >
        {(l) => (
          <Table label={`Exemptions in ${env}`} columns={['Group', 'Category', 'Until', 'Why', 'By']} actions>
            {l
              .filter((x) => x.environment === env || x.environment === '*')
              .map((x) => (
                <tr key={x.id}>
                  <td>{x.group}</td>
                  <td>{x.category}</td>
                  <td>{x.expires_at ? fmtTime(x.expires_at) : 'no end'}</td>
                  <td>{x.reason ?? '—'}</td>
                  <td>
                    {x.created_by}, {fmtTime(x.created_at)}
                  </td>
                  <td>
                    <button type="button" class="danger small" onClick={() => remove(x)}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
          </Table>
        )}
      </View>
    </section>
  );
}

export function Masking() {
  const envs = useLoad(() => api.environments(), []);
  const [env, setEnv] = useState('');
  const [onlyTagged, setOnlyTagged] = useState(true);
  const chosen = env || envs.data?.[0]?.name || '';
  const catalog = useLoad(async () => {
    if (!chosen) return { available: true, view: null as CatalogView | null };
    try {
      return { available: true, view: await api.catalog(chosen) };
    } catch (e) {
      // The endpoint itself missing (an older gateway) is a state, not an error.
      if (e instanceof ApiError && e.status === 404 && /no such endpoint/.test(e.message)) {
        return { available: false, view: null };
      }
      throw e;
    }
  }, [chosen]);
  const refresh = useAction();
  const reread = async () => {
    if ((await refresh.run(() => api.refreshCatalog(chosen))) !== undefined) catalog.reload();
  };
  return (
    <Page
      title="Masking"
      actions={
        catalog.data?.available && chosen ? (
          <button type="button" onClick={reread} disabled={refresh.busy}>
            {refresh.busy ? 'Reading…' : 'Read the catalog again'}
          </button>
        ) : undefined
      }
    >
      <div class="filters">
        <label>
          Environment
          <select value={chosen} onChange={(e) => setEnv(e.currentTarget.value)}>
            {(envs.data ?? []).map((x) => (
              <option key={x.name} value={x.name}>
                {x.name}
              </option>
            ))}
          </select>
        </label>
        <label class="inline">
          <input type="checkbox" checked={onlyTagged} onChange={(e) => setOnlyTagged(e.currentTarget.checked)} /> Only sensitive
          columns
        </label>
      </div>
      {envs.state === 'error' && <ErrorBox error={envs.error} retry={envs.reload} />}
      {refresh.error && <ErrorBox error={refresh.error} />}
      <View load={catalog} what="Loading the catalog">
        {(c) => {
          if (!c.available)
            return (
              <p class="state info" data-testid="masking-unavailable">
                The masking catalog is not available on this gateway yet. Upgrade the gateway to review and confirm sensitive columns.
              </p>
            );
          const all = c.view ? catalogRows(c.view) : [];
          const rows = onlyTagged ? all.filter((r) => r.category || r.source === 'override') : all;
          const loaded = c.view?.databases?.map((d) => `${d.database} read ${fmtTime(d.loaded_at)}`).join('; ');
          return (
            <>
              {loaded && <p class="muted small">{loaded}</p>}
              {rows.length === 0 ? (
                <p class="state empty">
                  {all.length === 0
                    ? 'No column catalogued in this environment yet. The gateway reads the catalog when the environment is first reached; after a schema change, use “Read the catalog again”.'
                    : 'No column is tagged sensitive. Untick "Only sensitive columns" to see them all.'}
                </p>
              ) : (
                <Table label={`Catalog of ${chosen}`} columns={['Column', 'Type', 'Category', 'Why']} actions>
                  {rows.map((r) => (
                    <ColumnRow key={`${r.database}.${r.schema}.${r.table}.${r.column}.${r.category}.${r.source}`} env={chosen} r={r} onDone={catalog.reload} />
                  ))}
                </Table>
              )}
              {chosen && <Exemptions env={chosen} />}
            </>
          );
        }}
      </View>
    </Page>
  );
}
