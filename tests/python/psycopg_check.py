"""psycopg 3 through the gateway: server-side binding, prepared statements, binary results,
pipeline mode, COPY both ways, transactions and error classes.

Run by tests/tests/psycopg.rs with the connection string in GATEHOUSE_DSN; exits non-zero
(with a traceback) on the first failed check.
"""

import os

import psycopg
from psycopg import errors

dsn = os.environ["GATEHOUSE_DSN"]

with psycopg.connect(dsn, autocommit=True) as conn:
    # Server-side binding: parameters travel in Bind, not in the SQL text.
    assert conn.execute("SELECT %s::int + %s::int", (40, 2)).fetchone() == (42,)
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), seen timestamptz)")

    # Prepared statements (prepare=True forces a named server-side statement).
    for i in range(20):
        conn.execute("INSERT INTO items VALUES (%s, %s, %s, now())", (i, f"item {i}", i * 1.5), prepare=True)

    # Binary result format.
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT id, name, price FROM items WHERE id = %s", (3,))
        row = cur.fetchone()
        assert row[0] == 3 and row[1] == "item 3" and float(row[2]) == 4.5, row

    # Pipeline mode: many statements before one Sync.
    with conn.pipeline():
        cursors = [conn.execute("SELECT name FROM items WHERE id = %s", (i,)) for i in range(20)]
    assert [c.fetchone()[0] for c in cursors] == [f"item {i}" for i in range(20)]

    # COPY FROM STDIN and TO STDOUT.
    with conn.cursor() as cur:
        with cur.copy("COPY items (id, name, price) FROM STDIN") as copy:
            for i in range(100, 1100):
                copy.write_row((i, f"copied {i}", i))
        out = []
        with cur.copy("COPY (SELECT id, name FROM items WHERE id >= 100 ORDER BY id) TO STDOUT") as copy:
            for row in copy.rows():
                out.append(row)
        assert len(out) == 1000 and out[0] == ("100", "copied 100"), out[:2]

    # Errors keep their SQLSTATE class.
    try:
        conn.execute("INSERT INTO items (id) VALUES (1)")
        raise AssertionError("duplicate key accepted")
    except errors.UniqueViolation:
        pass

# Transactions: the context manager rolls back on error.
with psycopg.connect(dsn) as conn:
    try:
        with conn.transaction():
            conn.execute("DELETE FROM items")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (1020,)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    conn.rollback()

print("psycopg: all checks passed")
