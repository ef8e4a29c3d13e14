// One typed function per API endpoint the UI uses (see the gateway's /api/v1/openapi.json),
// over whichever transport this shell has. Non-2xx answers become `ApiError` with the gateway's
// own message, which already says what to do next.
import { detectTransport, type Transport } from './transport';

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Tier = 'development' | 'staging' | 'production' | string;

export interface Environment {
  name: string;
  tier: Tier;
  tags: string[];
  description: string | null;
  dbname: string;
}
export interface GatewayInfo {
  postgres_address: string;
  sso: boolean;
  version: string;
}
export interface WhoAmI {
  name: string;
  kind: 'human' | 'agent';
  groups: string[];
  on_behalf_of: string | null;
  admin: boolean;
}
export interface Approval {
  id: string;
  state: 'pending' | 'approved' | 'used' | 'denied' | string;
  statement: string;
  fingerprint: string;
  identity: string;
  identity_kind: string;
  on_behalf_of: string | null;
  environment: string;
  database: string;
  rule: string;
  reason: string;
  classification: Classification | null;
  estimated_rows: number | null;
  connection_id: string | null;
  created_at: number;
  decided_at: number | null;
  decided_by: string | null;
  decision_reason: string | null;
  grant_expires_at: number | null;
  used_at: number | null;
}
export interface Classification {
  analysable: boolean;
  kinds: string[];
  writes: boolean;
  tables_read: string[];
  tables_written: string[];
  unbounded_writes: string[];
  dangerous_functions: string[];
  destructive: boolean;
  notes: string[];
  [k: string]: unknown;
}
export interface Connection {
  id: string;
  identity: string;
  identity_kind: string;
  session_id?: string;
  environment: string;
  database: string;
  client_addr: string;
  application_name: string | null;
  tls: boolean;
  started_at: number;
}
export interface Grant {
  id: string;
  groups: string[];
  environments: string[];
  upstream_role: string | null;
  source: string;
  created_by: string | null;
  created_at: string | null;
  /** When the grant stops letting anyone in (RFC 3339); null: never. */
  expires_at: string | null;
}
export interface GroupMember {
  member: string;
  /** `config`: from the config file, read-only here; `api`: added through the API, removable. */
  source: 'config' | 'api';
  added_at: string | null;
  added_by: string | null;
}
export interface Group {
  id: string;
  name: string;
  members: GroupMember[];
}
export interface Membership {
  group: string;
  member: string;
  /** false when the member already belonged to the group (HTTP 200 instead of 201). */
  added: boolean;
}
export interface Rule {
  id: string;
  description: string;
  action: 'allow' | 'deny' | 'review';
  kinds?: string[];
  flags?: string[];
  tables?: string[];
  tiers?: string[];
  environments?: string[];
  tags?: string[];
  identity_kinds?: string[];
  groups?: string[];
  hours?: string;
  weekdays?: string[];
}
export interface RuleItem extends Rule {
  source: string;
  position: number;
}
export interface DryRun {
  decision: 'allow' | 'deny' | 'review';
  rule: string;
  reason: string;
  classification: Classification;
  identity: { name: string; kind: string; groups: string[] };
  environment: string;
  tier: Tier;
}
export interface ServiceAccount {
  id: string;
  name: string;
  kind: string;
  groups: string[];
  on_behalf_of: string | null;
  description: string | null;
  source: string;
  created_by: string;
  created_at: string | null;
  rotated_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
}
export interface SessionItem {
  id: string;
  identity: string;
  kind: string;
  groups: string[];
  method: string;
  created_at: string;
  expires_at: string;
  refresh_expires_at: string | null;
  revoked_at: string | null;
  connections: number;
}
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
};
export interface AuditPage {
  items: AuditRecord[];
  next_cursor: number | null;
}
export interface CatalogView {
  environment: string;
  databases: {
    database: string;
    loaded_at: string;
    tables: {
      schema: string;
      name: string;
      kind: string;
      columns: { attnum: number; name: string; type_name: string; comment: string | null; category: string | null; source: string; sampled: number }[];
    }[];
  }[];
  overrides: { schema: string; table: string; column: string; category: string | null; set_by: string; set_at: string }[];
}
export interface Exemption {
  id: string;
  group: string;
  environment: string;
  category: string;
  expires_at: string | null;
  reason: string | null;
  created_by: string;
  created_at: string;
}

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
