// Pure pieces of the screens (the login form has its own file, login.test.tsx).
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { NAV, navFor } from '../src/App';
import { filterEnvironments } from '../src/screens/Environments';
import { catalogRows } from '../src/screens/Masking';
import { tokenize } from '../src/lib/sql';
import { parseHash, startRoute } from '../src/lib/router';
import type { Environment } from '../src/api/client';
import { advice } from '../src/components/ui';
import { ConfirmHost, ask } from '../src/components/Confirm';
import { click, mount, removeTauri, setValue } from './harness';

afterEach(() => {
  removeTauri();
  document.body.innerHTML = '';
});

describe('navigation', () => {
  it('hides the admin screens from non-admins', () => {
    expect(navFor(false).map((n) => n.label)).toEqual(['Environments', 'Approvals', 'Connections']);
    expect(navFor(true).map((n) => n.label)).toEqual([
      'Environments',
      'Approvals',
      'Connections',
      'Grants',
      'Groups',
      'Rules',
      'Audit',
      'Service accounts',
      'Sessions',
      'Masking',
    ]);
    expect(new Set(NAV.map((n) => n.key)).size).toBe(NAV.length);
  });

  it('starts on the screen a gateway link names, hash or path', () => {
    expect(startRoute('/', '', '#/audit?q=x').path).toBe('/audit');
    expect(startRoute('/approvals', '', '').path).toBe('/approvals');
    expect(startRoute('/approvals/', '?state=pending', '').params.get('state')).toBe('pending');
    expect(startRoute('/', '', '').path).toBe('/');
    expect(startRoute('/index.html', '', '').path).toBe('/');
  });

  it('parses hash routes', () => {
    const r = parseHash('#/audit?connection=c1&q=DELETE');
    expect(r.path).toBe('/audit');
    expect(r.params.get('connection')).toBe('c1');
    expect(parseHash('').path).toBe('/');
  });
});

describe('environment filters', () => {
  const envs: Environment[] = [
    { name: 'prod', tier: 'production', tags: ['payments', 'eu'], description: 'live', dbname: 'prod', databases: ['prod'] },
    { name: 'dev', tier: 'development', tags: ['payments'], description: null, dbname: 'dev', databases: ['dev'] },
    { name: 'analytics', tier: 'production', tags: ['bi'], description: 'warehouse', dbname: 'analytics', databases: ['analytics'] },
  ];
  it('filters by search, tier and tag together', () => {
    expect(filterEnvironments(envs, '', '', '').map((e) => e.name)).toEqual(['prod', 'dev', 'analytics']);
    expect(filterEnvironments(envs, '', 'production', '').map((e) => e.name)).toEqual(['prod', 'analytics']);
    expect(filterEnvironments(envs, '', 'production', 'payments').map((e) => e.name)).toEqual(['prod']);
    expect(filterEnvironments(envs, 'WARE', '', '').map((e) => e.name)).toEqual(['analytics']);
    expect(filterEnvironments(envs, 'eu', '', '').map((e) => e.name)).toEqual(['prod']);
  });
});

describe('SQL highlighting', () => {
  it('never changes the text', () => {
    for (const sql of [
      "DELETE FROM t WHERE name = 'O''Brien' -- why\n/* x */ AND n > 1.5e3",
      'SELECT $tag$ a $ b $tag$, E\'\\\'\', "Quoted ""id"""',
      "unterminated 'string",
      'ünïcode_ident + 42',
    ]) {
      expect(tokenize(sql).map((t) => t.text).join('')).toBe(sql);
    }
  });
  it('tags keywords, strings, numbers and comments', () => {
    const kinds = tokenize("SELECT 'a', 1 FROM t -- c").filter((t) => t.kind !== 'space' && t.kind !== 'punct');
    expect(kinds.map((t) => [t.kind, t.text])).toEqual([
      ['keyword', 'SELECT'],
      ['string', "'a'"],
      ['number', '1'],
      ['keyword', 'FROM'],
      ['ident', 't'],
      ['comment', '-- c'],
    ]);
  });
});

describe('states', () => {
  it('says what to do for each kind of failure', () => {
    expect(advice(0)).toMatch(/gateway is running/);
    expect(advice(401)).toMatch(/sign in again/);
    expect(advice(403)).toMatch(/administrator/);
    expect(advice(503)).toMatch(/gateway log/);
  });
  it('lists a catalog column by column, sensitive ones first', () => {
    const rows = catalogRows({
      environment: 'prod',
      overrides: [],
      databases: [
        {
          database: 'appdb',
          loaded_at: '2026-01-01T00:00:00Z',
          tables: [
            {
              schema: 'public',
              name: 'customers',
              kind: 'table',
              columns: [
                { attnum: 1, name: 'id', type_name: 'int4', comment: null, category: null, source: 'none', sampled: 0 },
                { attnum: 2, name: 'email', type_name: 'text', comment: null, category: 'email', source: 'name', sampled: 20 },
              ],
            },
          ],
        },
      ],
    });
    expect(rows.map((r) => [r.column, r.category, r.source])).toEqual([
      ['email', 'email', 'name'],
      ['id', null, 'none'],
    ]);
    expect(catalogRows({ environment: 'x', overrides: [], databases: [] })).toEqual([]);
  });
});

describe('confirmation dialog', () => {
  it('resolves to the text typed when confirmed, and null when cancelled', async () => {
    await mount(<ConfirmHost />);
    let answer: Promise<string | null> = Promise.resolve(null);
    await act(() => {
      answer = ask({ title: 'End it?', input: 'Reason', confirm: 'End connection' });
    });
    const dialog = document.querySelector('[role="alertdialog"]')!;
    expect(dialog.textContent).toContain('End it?');
    await setValue(dialog.querySelector('input')!, 'maintenance');
    await act(() => (dialog.querySelector('button.primary') as HTMLButtonElement).click());
    expect(await answer).toBe('maintenance');
    expect(document.querySelector('[role="alertdialog"]')).toBeNull();

    await act(() => {
      answer = ask({ title: 'Revoke?', confirm: 'Revoke' });
    });
    await click('Cancel');
    expect(await answer).toBeNull();
  });
});
