// Guardrail rules (administrators): the rules in force in evaluation order, adding, editing and
// removing the API-managed ones (as JSON, the same shape as `[[rules]]` in the config), and a
// dry run: paste SQL, pick an identity and an environment, see the decision and the rule.
import { useState } from 'preact/hooks';
import { api, type DryRun, type Rule, type RuleItem } from '../api/client';
import { Badge, ErrorBox, Page, Sql, Table, View, useAction } from '../components/ui';
import { useLoad } from '../lib/load';
import { ClassificationView } from './Approvals';
import { ask } from '../components/Confirm';

const TEMPLATE: Rule = {
  id: 'review-deletes-on-orders',
  description: 'Deletes on orders need a second pair of eyes; ask in #db-changes.',
  action: 'review',
  kinds: ['delete'],
  tables: ['orders'],
  tiers: ['production'],
};

const MATCHERS: (keyof Rule)[] = [
  'kinds',
  'flags',
  'tables',
  'tiers',
  'environments',
  'tags',
  'identity_kinds',
  'groups',
  'hours',
  'weekdays',
];

function matchers(r: Rule): string {
  const parts = MATCHERS.filter((k) => r[k] !== undefined && (!Array.isArray(r[k]) || (r[k] as string[]).length > 0)).map(
    (k) => `${k}: ${Array.isArray(r[k]) ? (r[k] as string[]).join(', ') : String(r[k])}`,
  );
  return parts.length ? parts.join(' · ') : 'every statement';
}

function ruleOnly(r: RuleItem): Rule {
  const { source: _s, position: _p, ...rule } = r;
  return rule;
}

export function DryRunBox() {
  const envs = useLoad(() => api.environments(), []);
  // Names to pick from: service accounts and whoever has a session (typing any name works too).
  const known = useLoad(
    () =>
      Promise.all([api.serviceAccounts().catch(() => []), api.sessions(false).catch(() => [])]).then(([a, s]) =>
        [...new Set([...a.filter((x) => !x.revoked_at).map((x) => x.name), ...s.map((x) => x.identity)])].sort(),
      ),
    [],
  );
  const [sql, setSql] = useState('');
  const [environment, setEnvironment] = useState('');
  const [identity, setIdentity] = useState('');
  const [result, setResult] = useState<(DryRun & { sql: string }) | null>(null);
  const action = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    setResult(null);
    const env = environment || envs.data?.[0]?.name || '';
    const r = await action.run(() => api.dryRun({ sql, environment: env, identity: identity.trim() || undefined }));
    if (r) setResult({ ...r, sql });
  };
  return (
    <form class="card dry-run" onSubmit={submit} aria-labelledby="dry-run-title">
      <h2 id="dry-run-title">Dry run</h2>
      <label>
        SQL
        <textarea rows={4} value={sql} onInput={(e) => setSql(e.currentTarget.value)} placeholder="DELETE FROM orders" required />
      </label>
      <div class="row">
        <label>
          Identity
          <input
            value={identity}
            list="known-identities"
            onInput={(e) => setIdentity(e.currentTarget.value)}
            placeholder="yourself when empty"
          />
          <datalist id="known-identities">
            {(known.data ?? []).map((n) => (
              <option key={n} value={n} />
            ))}
          </datalist>
        </label>
        <label>
          Environment
          <select value={environment} onChange={(e) => setEnvironment(e.currentTarget.value)}>
            {(envs.data ?? []).map((x) => (
              <option key={x.name} value={x.name}>
                {x.name} ({x.tier})
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="primary" disabled={action.busy || !sql.trim()}>
          Check
        </button>
      </div>
      {action.error && <ErrorBox error={action.error} />}
      {result && (
        <div class="dry-run-result" role="status" aria-live="polite" data-testid="dry-run-result">
          <p>
            <Badge kind={result.decision}>{result.decision}</Badge> by rule <code data-testid="dry-run-rule">{result.rule}</code> for{' '}
            <strong>{result.identity.name}</strong> ({result.identity.kind}
            {result.identity.groups.length ? `; ${result.identity.groups.join(', ')}` : ''}) on <strong>{result.environment}</strong> (
            {result.tier})
          </p>
          <p>{result.reason}</p>
          <Sql text={result.sql} />
          <p>
            <ClassificationView c={result.classification} />
          </p>
        </div>
      )}
    </form>
  );
}

function RuleEditor({ initial, editing, onSaved, onCancel }: { initial: Rule; editing: boolean; onSaved: () => void; onCancel: () => void }) {
  const [text, setText] = useState(JSON.stringify(initial, null, 2));
  const [position, setPosition] = useState('');
  const [parseError, setParseError] = useState<string | null>(null);
  const action = useAction();
  const save = async (e: Event) => {
    e.preventDefault();
    let rule: Rule;
    try {
      rule = JSON.parse(text);
    } catch (err) {
      setParseError(`Not valid JSON: ${(err as Error).message}`);
      return;
    }
    setParseError(null);
    const ok = await action.run(() =>
      editing ? api.updateRule(initial.id, rule) : api.createRule(rule, position ? Number(position) : undefined),
    );
    if (ok !== undefined) onSaved();
  };
  return (
    <form class="card" onSubmit={save} aria-labelledby="rule-editor-title">
      <h2 id="rule-editor-title">{editing ? `Edit rule ${initial.id}` : 'New rule'}</h2>
      <label>
        Rule (JSON)
        <textarea class="mono" rows={12} value={text} onInput={(e) => setText(e.currentTarget.value)} spellcheck={false} />
      </label>
      {!editing && (
        <label>
          Position among the API rules
          <input type="number" min={0} value={position} onInput={(e) => setPosition(e.currentTarget.value)} placeholder="last" />
        </label>
      )}
      {parseError && (
        <p class="state error" role="alert">
          {parseError}
        </p>
      )}
      {action.error && <ErrorBox error={action.error} />}
      <div class="row">
        <button type="submit" class="primary" disabled={action.busy}>
          Save rule
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function Rules() {
  const rules = useLoad(() => api.rules(), []);
  const [editor, setEditor] = useState<{ rule: Rule; editing: boolean } | null>(null);
  const remove = useAction();
  const del = async (id: string) => {
    if ((await ask({ title: `Delete rule ${id}?`, message: 'It stops applying at the next statement.', confirm: 'Delete' })) === null) return;
    if ((await remove.run(() => api.deleteRule(id))) !== undefined) rules.reload();
  };
  return (
    <Page
      title="Rules"
      actions={
        <button type="button" onClick={() => setEditor({ rule: TEMPLATE, editing: false })}>
          New rule
        </button>
      }
    >
      <DryRunBox />
      {editor && (
        <RuleEditor
          key={editor.rule.id + editor.editing}
          initial={editor.rule}
          editing={editor.editing}
          onCancel={() => setEditor(null)}
          onSaved={() => (setEditor(null), rules.reload())}
        />
      )}
      {remove.error && <ErrorBox error={remove.error} />}
      <View load={rules} what="Loading rules" empty="No rule." isEmpty={(r) => r.items.length === 0}>
        {(r) => (
          <>
            <p class="muted">
              Version {r.version}. Rules are tried in order; the first that matches decides.
            </p>
            <Table label="Rules in evaluation order" columns={['#', 'Rule', 'Action', 'Matches', 'Source']} actions>
              {r.items.map((x) => (
                <tr key={x.id} data-rule={x.id}>
                  <td>{x.position}</td>
                  <td>
                    <code>{x.id}</code>
                    <div class="muted small">{x.description}</div>
                  </td>
                  <td>
                    <Badge kind={x.action}>{x.action}</Badge>
                  </td>
                  <td class="small">{matchers(x)}</td>
                  <td>{x.source}</td>
                  <td>
                    {x.source === 'api' && (
                      <>
                        <button type="button" class="small" onClick={() => setEditor({ rule: ruleOnly(x), editing: true })}>
                          Edit
                        </button>{' '}
                        <button type="button" class="danger small" onClick={() => del(x.id)} aria-label={`Delete rule ${x.id}`}>
                          Delete
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </Table>
          </>
        )}
      </View>
    </Page>
  );
}
