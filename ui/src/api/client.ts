// One typed function per API endpoint the UI uses (see the gateway's /api/v1/openapi.json),
// over whichever transport this shell has. Non-2xx answers become `ApiError` with the gateway's
// own message, which already says what to do next.
import type { components } from './gateway';
import { detectTransport, type Transport } from './transport';

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

// The API's types are the gateway's own: `gateway.ts` is generated from its OpenAPI document
// (`npm run api-types`; tests/tests/api_types.rs fails when it is stale), and the names below
// only pick from it. Where the document says no more than "an object" (audit records, an
// approval's classification), the UI names the fields it reads.
type Schemas = components['schemas'];

export type Tier = Schemas['Tier'];
export type GatewayInfo = Schemas['GatewayInfo'];
export type Environment = Schemas['EnvironmentItem'];
export type WhoAmI = Schemas['WhoAmI'];
export type Classification = Schemas['Classification'];
export type Approval = Omit<Schemas['ApprovalRecord'], 'classification'> & {
  /** The statement's classification, as `POST /api/v1/policy/dry-run` reports it. */
  classification?: Classification | null;
};
export type AccessDetails = Schemas['AccessRequestDetails'];
export type Requestable = Schemas['RequestableEnvironment'];
export type Connection = Schemas['ConnectionInfo'];
export type Grant = Schemas['GrantItem'];
export type GroupMember = Schemas['MemberItem'];
export type Group = Schemas['GroupItem'];
export type Membership = Schemas['MembershipItem'];
export type Rule = Schemas['Rule'];
export type RuleItem = Schemas['RuleItem'];
export type DryRun = Schemas['DryRunResponse'];
export type ServiceAccount = Schemas['ServiceAccountItem'];
export type SessionItem = Schemas['SessionItem'];
/** One audit record: the API gives each as a JSON object; these are the fields the UI reads. */
export type AuditRecord = Record<string, unknown> & {
  id: number;
  ts?: string;
  event?: string;
  identity?: string;
  environment?: string;
  connection_id?: string;
  statement?: string;
  decision?: string;
  rule?: string;
  rows?: number;
  error?: string;
  approval_id?: string;
  duration_ms?: number;
  sqlstate?: string;
  details?: Record<string, unknown> & { result?: ResultSample };
};
/** The first rows of a result as the client saw them (after masking), kept for session replay
 * where the environment sets `replay_rows`; binary values as `\x` and hex. */
export interface ResultSample {
  columns: string[];
  rows: (string | null)[][];
}
export type AuditPage = Omit<Schemas['AuditPage'], 'items'> & { items: AuditRecord[] };
export type CatalogView = Schemas['CatalogView'];
export type Exemption = Schemas['Exemption'];

let transport: Transport = detectTransport();
/** Tests swap the transport; the app never does. */
export function setTransport(t: Transport) {
  transport = t;
}
export function getTransport(): Transport {
  return transport;
}

/** Called on every 401, so the shell can show "your session expired". */
let onUnauthorized: (() => void) | null = null;
export function setUnauthorizedHandler(f: (() => void) | null) {
  onUnauthorized = f;
}

function messageOf(status: number, body: unknown): string {
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  if (typeof body === 'string' && body.trim()) return body.trim().slice(0, 500);
  return `the gateway answered HTTP ${status}`;
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res;
  try {
    res = await transport.request(method, path, body);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new ApiError(0, `cannot reach the gateway (${why})`);
  }
  if (res.status >= 200 && res.status < 300) return res.body as T;
  if (res.status === 401 && onUnauthorized) onUnauthorized();
  throw new ApiError(res.status, messageOf(res.status, res.body));
}

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

const enc = encodeURIComponent;

export const api = {
  /** Where the gateway's PostgreSQL listener is and whether it has SSO; needs no session. */
  info: () => call<GatewayInfo>('GET', '/api/v1/info'),
  whoami: () => call<WhoAmI>('GET', '/api/v1/whoami'),
  login: (username: string, password: string) =>
    call<{ identity: string; expires_at: string }>('POST', '/api/v1/auth/login', { username, password, cookie: true }),
  logout: () => call<null>('POST', '/api/v1/auth/logout'),
  environments: () => call<{ items: Environment[] }>('GET', '/api/v1/environments').then((r) => r.items),
  connections: () => call<{ items: Connection[] }>('GET', '/api/v1/connections').then((r) => r.items),
  terminate: (id: string, reason?: string) =>
    call<null>('POST', `/api/v1/connections/${enc(id)}/terminate`, { reason: reason || null }),
  approvals: (state?: string) =>
    call<{ items: Approval[] }>('GET', `/api/v1/approvals${query({ state, limit: 200 })}`).then((r) => r.items),
  approve: (id: string, reason?: string) =>
    call<Approval>('POST', `/api/v1/approvals/${enc(id)}/approve`, { reason: reason || null }),
  deny: (id: string, reason: string) => call<Approval>('POST', `/api/v1/approvals/${enc(id)}/deny`, { reason }),
  /** Environments that take access requests, with their limits (any signed-in identity). */
  requestable: () =>
    call<{ items: Requestable[] }>('GET', '/api/v1/access-requests/environments').then((r) => r.items),
  requestAccess: (r: { environment: string; duration_seconds: number; role: string | null; reason: string }) =>
    call<Approval>('POST', '/api/v1/access-requests', r),
  myAccessRequests: () => call<{ items: Approval[] }>('GET', '/api/v1/access-requests').then((r) => r.items),
  withdraw: (id: string) => call<Approval>('POST', `/api/v1/access-requests/${enc(id)}/withdraw`, {}),
  /** Approved access requests: where break-glass access in force is found. */
  approvedAccess: () =>
    call<{ items: Approval[] }>('GET', `/api/v1/approvals${query({ state: 'approved', kind: 'access', limit: 200 })}`).then(
      (r) => r.items,
    ),
  grants: () => call<{ items: Grant[] }>('GET', '/api/v1/grants').then((r) => r.items),
  createGrant: (g: { groups: string[]; environments: string[]; upstream_role: string | null; expires_in_seconds?: number }) =>
    call<Grant>('POST', '/api/v1/grants', g),
  deleteGrant: (id: string) => call<null>('DELETE', `/api/v1/grants/${enc(id)}`),
  groups: () => call<{ items: Group[] }>('GET', '/api/v1/groups').then((r) => r.items),
  addGroupMember: (group: string, member: string) =>
    call<Membership>('POST', `/api/v1/groups/${enc(group)}/members`, { member }),
  removeGroupMember: (group: string, member: string) =>
    call<null>('DELETE', `/api/v1/groups/${enc(group)}/members/${enc(member)}`),
  rules: () => call<{ version: number; items: RuleItem[] }>('GET', '/api/v1/rules'),
  createRule: (r: Rule, position?: number) => call<unknown>('POST', `/api/v1/rules${query({ position })}`, r),
  updateRule: (id: string, r: Rule) => call<unknown>('PUT', `/api/v1/rules/${enc(id)}`, r),
  deleteRule: (id: string) => call<unknown>('DELETE', `/api/v1/rules/${enc(id)}`),
  dryRun: (req: { sql: string; environment: string; identity?: string }) =>
    call<DryRun>('POST', '/api/v1/policy/dry-run', req),
  serviceAccounts: () => call<{ items: ServiceAccount[] }>('GET', '/api/v1/service-accounts').then((r) => r.items),
  createServiceAccount: (a: {
    name: string;
    kind: string;
    groups: string[];
    on_behalf_of: string | null;
    description: string | null;
    expires_at: string | null;
  }) => call<{ service_account: ServiceAccount; token: string }>('POST', '/api/v1/service-accounts', a),
  rotateServiceAccount: (id: string) =>
    call<{ service_account: ServiceAccount; token: string }>('POST', `/api/v1/service-accounts/${enc(id)}/rotate`, {}),
  revokeServiceAccount: (id: string) => call<unknown>('DELETE', `/api/v1/service-accounts/${enc(id)}`),
  sessions: (all: boolean) => call<{ items: SessionItem[] }>('GET', `/api/v1/sessions${query({ all })}`).then((r) => r.items),
  revokeSession: (id: string) => call<unknown>('DELETE', `/api/v1/sessions/${enc(id)}`),
  audit: (filters: Record<string, string | number | undefined>) =>
    call<AuditPage>('GET', `/api/v1/audit${query(filters)}`),
  auditExportPath: (filters: Record<string, string | undefined>, format: 'csv' | 'jsonl') =>
    `/api/v1/audit/export${query({ ...filters, format })}`,
  catalog: (environment: string) => call<CatalogView>('GET', `/api/v1/environments/${enc(environment)}/catalog`),
  refreshCatalog: (environment: string) =>
    call<CatalogView>('POST', `/api/v1/environments/${enc(environment)}/catalog/refresh`),
  /** Confirm or override a column's tag; `null` confirms it holds nothing sensitive. */
  tagColumn: (environment: string, schema: string, table: string, column: string, category: string | null) =>
    call<unknown>(
      'PUT',
      `/api/v1/environments/${enc(environment)}/catalog/columns/${enc(schema)}/${enc(table)}/${enc(column)}`,
      { category },
    ),
  untagColumn: (environment: string, schema: string, table: string, column: string) =>
    call<unknown>('DELETE', `/api/v1/environments/${enc(environment)}/catalog/columns/${enc(schema)}/${enc(table)}/${enc(column)}`),
  exemptions: () => call<{ items: Exemption[] }>('GET', '/api/v1/exemptions').then((r) => r.items),
  createExemption: (x: { group: string; environment: string; category: string; expires_in_seconds: number | null; reason: string | null }) =>
    call<Exemption>('POST', '/api/v1/exemptions', x),
  deleteExemption: (id: string) => call<unknown>('DELETE', `/api/v1/exemptions/${enc(id)}`),
};
