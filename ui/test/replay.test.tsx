// Session replay: a connection's audit records as steps with their time since the start and
// since the step before (microsecond timestamps as the trail writes them), and the player:
// step by step, and playing on its own to the end at the pace the records happened.
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../src/api/client';
import { Replay, replaySteps } from '../src/components/Replay';
import { click, mount, until } from './harness';

const records: AuditRecord[] = [
  { id: 1, ts: '2026-12-04T10:00:00.000100Z', event: 'connection.open' },
  {
    id: 2,
    ts: '2026-12-04T10:00:00.020250Z',
    event: 'statement',
    statement: 'SELECT 1',
    decision: 'allow',
    rows: 1,
    duration_ms: 0.8,
    details: { result: { columns: ['email', 'note'], rows: [['a***@example.com', null]] } },
  },
  {
    id: 3,
    ts: '2026-12-04T10:00:00.050999Z',
    event: 'statement',
    statement: 'DELETE FROM t',
    decision: 'deny',
    rule: 'prod-deny-unbounded-delete',
    sqlstate: '42501',
    error: 'refused',
  },
];

afterEach(() => {
  document.body.innerHTML = '';
});

const position = () => document.querySelector('[data-testid="replay-position"]')!.textContent;
const shown = () => document.querySelector('[data-testid="replay-step"]')!.textContent!;

describe('session replay', () => {
  it('times each step from the start and from the one before', () => {
    expect(replaySteps(records).map((s) => [s.offsetMs, s.gapMs])).toEqual([
      [0, 0],
      [20, 20],
      [50, 30],
    ]);
    expect(replaySteps([])).toEqual([]);
  });

  it('steps through the records and plays to the end on its own', async () => {
    await mount(<Replay records={records} />);
    expect(position()).toBe('Step 1 of 3');
    expect(shown()).toContain('connection.open');
    await click('Next');
    expect(position()).toBe('Step 2 of 3');
    expect(shown()).toContain('SELECT 1');
    expect(shown()).toContain('+0.020 s');
    const table = document.querySelector('table[aria-label="Result as the client saw it"]')!;
    expect([...table.querySelectorAll('th')].map((th) => th.textContent)).toEqual(['email', 'note']);
    expect([...table.querySelectorAll('td')].map((td) => td.textContent)).toEqual(['a***@example.com', 'NULL']);
    await click('Previous');
    expect(position()).toBe('Step 1 of 3');
    await click('Play');
    await until('the last step', () => position() === 'Step 3 of 3');
    expect(shown()).toContain('42501: refused');
    expect(shown()).toContain('prod-deny-unbounded-delete');
    await until('the player to stop', () => !!document.querySelector('button') && [...document.querySelectorAll('button')].some((b) => b.textContent === 'Play'));
  });
});
