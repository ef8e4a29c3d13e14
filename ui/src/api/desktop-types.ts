// Generated from src-tauri/src/state.rs (the desktop shell's command results) by ts-rs:
// do not edit; `npm run api-types` regenerates it. desktop.ts names its types from here.

export type SessionInfo = { gateway: string, identity: string, 
/**
 * When the access token runs out (RFC 3339; renewed automatically while the app runs);
 * `null` only for a service-account session the CLI stored.
 */
expires_at: string | null, };

export type TunnelView = { environment: string, database: string | null, port: number, connection_string: string, psql: string, opened_at: string, active_connections: number, };
