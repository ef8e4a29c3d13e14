// node-postgres (npm `pg`, with `pg-cursor`) through the gateway: simple and multi-statement
// queries, server-side binding, named prepared statements, type parsing, transactions, error
// codes, a cursor read in pieces over masked rows (Execute with a row limit, then Flush),
// LISTEN/NOTIFY between two connections, and application_name.
//
// Run by tests/tests/node_postgres.rs with GATEHOUSE_PG_HOST, GATEHOUSE_PG_PORT,
// GATEHOUSE_PG_DATABASE, GATEHOUSE_PG_USER and GATEHOUSE_PG_PASSWORD set. Prints "all checks
// passed", or throws on the first failed check (exit code 1).

import assert from "node:assert/strict";
import pg from "pg";
import Cursor from "pg-cursor";

const config = {
  host: process.env.GATEHOUSE_PG_HOST,
  port: Number(process.env.GATEHOUSE_PG_PORT),
  database: process.env.GATEHOUSE_PG_DATABASE,
  user: process.env.GATEHOUSE_PG_USER,
  password: process.env.GATEHOUSE_PG_PASSWORD,
  application_name: "node-check",
  ssl: false,
};

const client = new pg.Client(config);
await client.connect();

// The upstream names the identity in front of the client's own name.
const app = await client.query("SELECT current_setting('application_name') AS app");
assert.equal(app.rows[0].app, `gatehouse:${config.user}/node-check`);

// Simple protocol, several statements in one query string.
const multi = await client.query("SELECT 1 AS a; SELECT 'two' AS b");
assert.equal(multi.length, 2);
assert.equal(multi[0].rows[0].a, 1);
assert.equal(multi[1].rows[0].b, "two");

// Server-side binding (unnamed statement) and a named prepared statement used repeatedly.
assert.equal((await client.query("SELECT $1::int + $2::int AS sum", [40, 2])).rows[0].sum, 42);
await client.query(
  "CREATE TABLE node_people (id int PRIMARY KEY, email text, balance numeric(10,2), " +
    "born date, seen timestamptz, tags text[], doc jsonb, photo bytea, big bigint, active boolean)",
);
await client.query(
  "INSERT INTO node_people SELECT g, 'person' || g || '@example.org', g * 2.5, " +
    "'1990-01-01'::date + g, '2025-06-01T12:00:00Z'::timestamptz + g * interval '1 minute', " +
    "ARRAY['t' || g, 'x'], jsonb_build_object('n', g), decode(lpad(to_hex(g), 4, '0'), 'hex'), " +
    "g::bigint * 10000000000, g % 3 = 0 FROM generate_series(1, 500) g",
);
for (const id of [1, 2, 3, 250, 500]) {
  const r = await client.query({
    name: "person-by-id",
    text: "SELECT id, balance, born, seen, tags, doc, photo, big, active FROM node_people WHERE id = $1",
    values: [id],
  });
  assert.equal(r.rows.length, 1);
  const p = r.rows[0];
  assert.equal(p.id, id);
  assert.equal(Number(p.balance), id * 2.5);
  assert.equal(p.seen.toISOString(), new Date(Date.UTC(2025, 5, 1, 12, id)).toISOString());
  assert.deepEqual(p.tags, [`t${id}`, "x"]);
  assert.deepEqual(p.doc, { n: id });
  assert.equal(p.photo.readUInt16BE(0), id);
  assert.equal(p.big, String(BigInt(id) * 10000000000n));
  assert.equal(p.active, id % 3 === 0);
}

// Transactions: a rolled-back insert is gone; an error aborts the transaction until ROLLBACK.
await client.query("BEGIN");
await client.query("INSERT INTO node_people (id, email) VALUES (1000, 'temp@example.org')");
await assert.rejects(client.query("SELECT 1 / 0"), (e) => e.code === "22012");
await assert.rejects(client.query("SELECT 1"), (e) => e.code === "25P02");
await client.query("ROLLBACK");
assert.equal((await client.query("SELECT count(*)::int AS n FROM node_people WHERE id = 1000")).rows[0].n, 0);
await assert.rejects(client.query("SELEC 1"), (e) => e.code === "42601");

// A cursor: one portal, 25 rows per Execute; the emails come back masked.
const cursor = client.query(new Cursor("SELECT id, email FROM node_people ORDER BY id"));
let seen = 0;
let sum = 0;
for (;;) {
  const rows = await cursor.read(25);
  if (rows.length === 0) break;
  for (const r of rows) {
    assert.notEqual(r.email, `person${r.id}@example.org`, `email of ${r.id} came back unmasked`);
    seen += 1;
    sum += r.id;
  }
}
await cursor.close();
assert.equal(seen, 500);
assert.equal(sum, 125250);

// LISTEN on one connection, NOTIFY from another.
const listener = new pg.Client(config);
await listener.connect();
await listener.query("LISTEN node_events");
const got = new Promise((resolve) => listener.on("notification", resolve));
await client.query("SELECT pg_notify('node_events', 'hello from node')");
const note = await Promise.race([
  got,
  new Promise((_, reject) => setTimeout(() => reject(new Error("no notification in 5 s")), 5000)),
]);
assert.equal(note.channel, "node_events");
assert.equal(note.payload, "hello from node");
await listener.end();

await client.end();
console.log("all checks passed");
