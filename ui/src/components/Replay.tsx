// Session replay: one connection's audit records played back step by step (or on their own, at
// the pace they happened, long pauses shortened), each step with its time since the connection
// opened, the statement, the decision and its rule, the approval, rows (and the first of them as
// the client saw them, where the environment keeps them), duration and error. The
// records are the audit trail's own (statements redacted as recorded); exporting a replay is
// the Audit screen's export with the connection's filter.
import { useEffect, useState } from 'preact/hooks';
import type { AuditRecord, ResultSample } from '../api/client';
import { Badge, Sql } from './ui';

export interface ReplayStep {
  record: AuditRecord;
  /** Milliseconds since the first record. */
  offsetMs: number;
  /** Milliseconds since the step before (0 for the first). */
  gapMs: number;
}

/** Longest pause played back as it happened; longer ones are shortened to this. */
export const MAX_PAUSE_MS = 1500;

/** An RFC 3339 time in milliseconds; the trail writes microseconds, which `Date` may not read. */
export function timeMs(ts: string | undefined): number {
  if (!ts) return NaN;
  return Date.parse(ts.replace(/(\.\d{3})\d+/, '$1'));
}

/** The records (oldest first) as steps with their offsets and gaps. */
export function replaySteps(records: AuditRecord[]): ReplayStep[] {
  const start = timeMs(records[0]?.ts);
  let previous = start;
  return records.map((record) => {
    const t = timeMs(record.ts);
    const step = {
      record,
      offsetMs: Number.isNaN(t) || Number.isNaN(start) ? 0 : t - start,
      gapMs: Number.isNaN(t) || Number.isNaN(previous) ? 0 : Math.max(0, t - previous),
    };
    previous = t;
    return step;
  });
}

function seconds(ms: number): string {
  return `+${(ms / 1000).toFixed(3)} s`;
}

export function Replay({ records }: { records: AuditRecord[] }) {
  const steps = replaySteps(records);
  const [at, setAt] = useState(0);
  const [playing, setPlaying] = useState(false);
  const last = steps.length - 1;
  useEffect(() => {
    if (!playing) return;
    if (at >= last) {
      setPlaying(false);
      return;
    }
    const t = setTimeout(() => setAt((i) => Math.min(i + 1, last)), Math.min(steps[at + 1].gapMs, MAX_PAUSE_MS));
    return () => clearTimeout(t);
  }, [playing, at, last]);
  if (steps.length === 0) return null;
  const step = steps[Math.min(at, last)];
  const r = step.record;
  const go = (i: number) => (setPlaying(false), setAt(Math.max(0, Math.min(i, last))));
  return (
    <section class="card replay" aria-label="Session replay">
      <div class="row">
        <h2>Replay</h2>
        <span role="status" aria-live="polite" data-testid="replay-position">
          Step {at + 1} of {steps.length}
        </span>
      </div>
      <div class="row">
        <button type="button" class="small" onClick={() => go(0)} disabled={at === 0}>
          First
        </button>
        <button type="button" class="small" onClick={() => go(at - 1)} disabled={at === 0}>
          Previous
        </button>
        <button type="button" class="small primary" onClick={() => (at >= last ? (setAt(0), setPlaying(true)) : setPlaying(!playing))}>
          {playing ? 'Pause' : 'Play'}
        </button>
        <button type="button" class="small" onClick={() => go(at + 1)} disabled={at === last}>
          Next
        </button>
        <input
          type="range"
          aria-label="Step"
          min={0}
          max={last}
          value={at}
          onInput={(e) => go(Number(e.currentTarget.value))}
        />
      </div>
      <dl class="facts" data-testid="replay-step">
        <dt>When</dt>
        <dd>
          {seconds(step.offsetMs)} <span class="muted">({r.ts})</span>
        </dd>
        <dt>Event</dt>
        <dd>{r.event}</dd>
        {r.statement && (
          <>
            <dt>Statement</dt>
            <dd>
              <Sql text={r.statement} label="Statement at this step" />
            </dd>
          </>
        )}
        {r.decision && (
          <>
            <dt>Decision</dt>
            <dd>
              <Badge kind={r.decision}>{r.decision}</Badge> {r.rule && r.rule !== 'default' && <code>{r.rule}</code>}
            </dd>
          </>
        )}
        {r.approval_id && (
          <>
            <dt>Approval</dt>
            <dd>
              <a href={`#/approvals?id=${encodeURIComponent(r.approval_id)}`}>{r.approval_id}</a>
            </dd>
          </>
        )}
        {r.rows !== undefined && (
          <>
            <dt>Rows</dt>
            <dd>{r.rows}</dd>
          </>
        )}
        {r.details?.result && r.details.result.rows.length > 0 && (
          <>
            <dt>Result</dt>
            <dd>
              <ResultTable sample={r.details.result} />
            </dd>
          </>
        )}
        {r.duration_ms !== undefined && (
          <>
            <dt>Duration</dt>
            <dd>{r.duration_ms.toFixed(1)} ms</dd>
          </>
        )}
        {r.error && (
          <>
            <dt>Error</dt>
            <dd class="field-error">
              {r.sqlstate ? `${r.sqlstate}: ` : ''}
              {r.error}
            </dd>
          </>
        )}
      </dl>
    </section>
  );
}

/** The rows a step kept, as the client saw them. */
function ResultTable({ sample }: { sample: ResultSample }) {
  const width = Math.max(sample.columns.length, ...sample.rows.map((row) => row.length));
  const header = Array.from({ length: width }, (_, i) => sample.columns[i] ?? `column ${i + 1}`);
  return (
    <table class="result-sample" aria-label="Result as the client saw it">
      <thead>
        <tr>
          {header.map((h) => (
            <th key={h}>{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {sample.rows.map((row, i) => (
          <tr key={i}>
            {header.map((_, j) => (
              <td key={j}>{row[j] === null || row[j] === undefined ? <span class="muted">NULL</span> : row[j]}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
