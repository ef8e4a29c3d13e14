// The masking catalog (administrators): the columns the gateway found sensitive in an
// environment, with their category; confirm a tag or override it. The catalog API
// (`/api/v1/environments/{name}/catalog`) ships with the masking work: on a gateway without it
// this screen says so instead of failing.
import { useState } from 'preact/hooks';
import { api, ApiError } from '../api/client';
import { Badge, ErrorBox, Page, View, useAction } from '../components/ui';
import { useLoad } from '../lib/load';

const CATEGORIES = [
  'none',
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

type Column = Record<string, unknown>;

/** The columns in a catalog answer, whatever list it keeps them in. */
export function catalogColumns(body: unknown): Column[] {
  if (Array.isArray(body)) return body as Column[];
  if (body && typeof body === 'object') {
    for (const k of ['items', 'columns', 'catalog']) {
      const v = (body as Record<string, unknown>)[k];
      if (Array.isArray(v)) return v as Column[];
    }
  }
  return [];
}

const str = (v: unknown) => (v === null || v === undefined ? '' : String(v));

function ColumnRow({ env, c, onDone }: { env: string; c: Column; onDone: () => void }) {
  const current = str(c.category ?? c.tag) || 'none';
  const [category, setCategory] = useState(current);
  const act = useAction();
  const name = [c.schema, c.table, c.column].filter(Boolean).map(str).join('.');
  const decide = async (cat: string) => {
    const body = { schema: c.schema, table: c.table, column: c.column, category: cat, confirmed: true };
    if ((await act.run(() => api.catalogDecide(env, body))) !== undefined) onDone();
  };
  return (
    <tr>
      <td>
        <code>{name}</code>
      </td>
      <td>{str(c.type ?? c.data_type)}</td>
      <td>
        <Badge kind={current === 'none' ? 'allow' : 'review'}>{current}</Badge>
      </td>
      <td>{str(c.source ?? (c.confirmed ? 'confirmed' : 'detected'))}</td>
      <td class="nowrap">
        <button type="button" class="small" onClick={() => decide(current)} aria-label={`Confirm ${name} as ${current}`}>
          Confirm
        </button>{' '}
        <label class="inline">
          <span class="sr-only">Category for {name}</span>
          <select value={category} onChange={(e) => setCategory(e.currentTarget.value)}>
            {CATEGORIES.map((x) => (
              <option key={x} value={x}>
                {x}
              </option>
            ))}
          </select>
        </label>{' '}
        <button type="button" class="small" disabled={category === current} onClick={() => decide(category)}>
          Override
        </button>
        {act.error && <ErrorBox error={act.error} />}
      </td>
    </tr>
  );
}

export function Masking() {
  const envs = useLoad(() => api.environments(), []);
  const [env, setEnv] = useState('');
  const chosen = env || envs.data?.[0]?.name || '';
  const catalog = useLoad(async () => {
    if (!chosen) return { available: true, columns: [] as Column[] };
    try {
      return { available: true, columns: catalogColumns(await api.catalog(chosen)) };
    } catch (e) {
      // The endpoint itself missing (an older gateway) is a state, not an error.
      if (e instanceof ApiError && e.status === 404 && /no such endpoint/.test(e.message)) {
        return { available: false, columns: [] as Column[] };
      }
      throw e;
    }
  }, [chosen]);
  return (
    <Page title="Masking">
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
      </div>
      {envs.state === 'error' && <ErrorBox error={envs.error} retry={envs.reload} />}
      <View load={catalog} what="Loading the catalog">
        {(c) =>
          !c.available ? (
            <p class="state info" data-testid="masking-unavailable">
              The masking catalog is not available on this gateway yet. Upgrade the gateway to review and confirm sensitive columns.
            </p>
          ) : c.columns.length === 0 ? (
            <p class="state empty">No column catalogued in this environment yet; the gateway reads the catalog when the environment is first reached.</p>
          ) : (
            <table aria-label={`Catalog of ${chosen}`}>
              <thead>
                <tr>
                  <th scope="col">Column</th>
                  <th scope="col">Type</th>
                  <th scope="col">Category</th>
                  <th scope="col">Source</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {c.columns.map((col, i) => (
                  <ColumnRow key={i} env={chosen} c={col} onDone={catalog.reload} />
                ))}
              </tbody>
            </table>
          )
        }
      </View>
    </Page>
  );
}
