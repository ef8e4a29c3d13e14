// The audit log (administrators): filters, one connection's timeline (with its replay, step by
// step), details of a record, and export as CSV or JSON Lines. Filters live in the URL, so a
// timeline or a search can be linked.
import { useState } from 'preact/hooks';
import { api, getTransport, type AuditRecord } from '../api/client';
import { isDesktop } from '../api/transport';
import { Replay } from '../components/Replay';
import { Badge, ErrorBox, Page, Sql, Table, View, useAction } from '../components/ui';
import { fmtTime, useLoad } from '../lib/load';
import { navigate } from '../lib/router';

const FIELDS = [
  ['q', 'Search text'],
  ['identity', 'Identity'],
  ['environment', 'Environment'],
  ['event', 'Event'],
  ['decision', 'Decision'],
  ['kind', 'Statement kind'],
  ['table', 'Table'],
  ['from', 'From (RFC 3339)'],
  ['to', 'To (RFC 3339)'],
] as const;

type Filters = Record<string, string | undefined>;

/** A connection's timeline reads from its opening down; a search shows the newest first. */
function ordered(records: AuditRecord[], timeline: boolean): AuditRecord[] {
  return timeline ? [...records].reverse() : records;
}

function Row({ r, onTimeline }: { r: AuditRecord; onTimeline?: (c: string) => void }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <tr data-audit={r.id}>
        <td>{r.id}</td>
        <td class="nowrap">{fmtTime(r.ts)}</td>
        <td>
          <code>{r.event}</code>
        </td>
        <td>{r.identity ?? '—'}</td>
        <td>{r.environment ?? '—'}</td>
        <td class="stmt">{r.statement ? <code>{String(r.statement).slice(0, 120)}</code> : r.error ? <span class="muted">{String(r.error)}</span> : ''}</td>
        <td>{r.decision && <Badge kind={String(r.decision)}>{String(r.decision)}</Badge>}</td>
        <td class="nowrap">
          <button type="button" class="small" aria-expanded={open} onClick={() => setOpen(!open)} aria-label={`Details of record ${r.id}`}>
            {open ? 'Hide' : 'Details'}
          </button>{' '}
          {r.connection_id && onTimeline && (
            <button type="button" class="small" onClick={() => onTimeline(String(r.connection_id))}>
              Timeline
            </button>
          )}
        </td>
      </tr>
      {open && (
        <tr class="detail">
          <td colSpan={8}>
            {r.statement && <Sql text={String(r.statement)} />}
            <pre class="json">{JSON.stringify(r, null, 2)}</pre>
          </td>
        </tr>
      )}
    </>
  );
}

function FilterForm({ applied }: { applied: Filters }) {
  const [draft, setDraft] = useState<Filters>(applied);
  const apply = (e: Event) => {
    e.preventDefault();
    navigate('/audit', { ...draft, connection: applied.connection });
  };
  return (
    <form class="filters audit-filters" onSubmit={apply} role="search" aria-label="Audit filters">
      {FIELDS.map(([k, label]) => (
        <label key={k}>
          {label}
          <input
            name={k}
            type={k === 'q' ? 'search' : 'text'}
            data-search={k === 'q' ? true : undefined}
            value={draft[k] ?? ''}
            onInput={(e) => setDraft({ ...draft, [k]: e.currentTarget.value })}
          />
        </label>
      ))}
      <div class="row">
        <button type="submit" class="primary">
          Search
        </button>
        <button type="button" onClick={() => navigate('/audit')}>
          Clear
        </button>
      </div>
    </form>
  );
}

export function Audit({ params }: { params: URLSearchParams }) {
  const applied: Filters = {};
  for (const [k] of FIELDS) applied[k] = params.get(k) ?? undefined;
  applied.connection = params.get('connection') ?? undefined;
  const key = JSON.stringify(applied);
  const [pages, setPages] = useState<AuditRecord[][]>([]);
  const [cursor, setCursor] = useState<number | null>(null);
  const first = useLoad(async () => {
    const p = await api.audit({ ...applied, limit: 100 });
    setPages([]);
    // The last page has no `next_cursor` at all.
    setCursor(p.next_cursor ?? null);
    return p.items;
  }, [key]);
  const more = useAction();
  const exporting = useAction();

  const older = async () => {
    if (cursor === null) return;
    const p = await more.run(() => api.audit({ ...applied, cursor, limit: 100 }));
    if (p) {
      setPages((ps) => [...ps, p.items]);
      setCursor(p.next_cursor ?? null);
    }
  };
  const exportAs = async (format: 'csv' | 'jsonl') => {
    const path = api.auditExportPath(applied, format);
    if (!isDesktop()) {
      window.location.assign(path);
      return;
    }
    await exporting.run(async () => {
      const res = await getTransport().request('GET', path);
      const text = typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([text], { type: format === 'csv' ? 'text/csv' : 'application/x-ndjson' }));
      a.download = `audit.${format}`;
      a.click();
    });
  };
  const timeline = (c: string) => navigate('/audit', { connection: c });

  return (
    <Page
      title={applied.connection ? `Audit: connection ${applied.connection}` : 'Audit'}
      actions={
        <>
          <button type="button" onClick={() => exportAs('csv')}>
            Export CSV
          </button>
          <button type="button" onClick={() => exportAs('jsonl')}>
            Export JSON Lines
          </button>
        </>
      }
    >
      {applied.connection && (
        <p class="state info">
          Showing one connection's timeline.{' '}
          <button type="button" class="linklike" onClick={() => navigate('/audit', { ...applied, connection: undefined })}>
            Show all connections
          </button>
        </p>
      )}
      <FilterForm key={key} applied={applied} />
      {exporting.error && <ErrorBox error={exporting.error} />}
      <View load={first} what="Searching the audit log" empty="No record matches these filters.">
        {(items) => (
          <>
            {applied.connection && <Replay records={ordered([items, ...pages].flat(), true)} />}
            <Table
              class="audit"
              label={applied.connection ? 'Audit records of one connection, oldest first' : 'Audit records, newest first'}
              columns={['#', 'Time', 'Event', 'Identity', 'Environment', 'Statement', 'Decision']}
              actions
            >
              {ordered([items, ...pages].flat(), !!applied.connection).map((r) => (
                <Row key={r.id} r={r} onTimeline={applied.connection ? undefined : timeline} />
              ))}
            </Table>
            {more.error && <ErrorBox error={more.error} retry={older} />}
            {cursor !== null && (
              <button type="button" onClick={older} disabled={more.busy}>
                {more.busy ? 'Loading…' : 'Older records'}
              </button>
            )}
          </>
        )}
      </View>
    </Page>
  );
}
