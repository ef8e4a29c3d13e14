-- The table tests/java/PgJdbcCheck.java reads: created by the check itself, or beforehand by
-- tests/tests/pgjdbc.rs where the environment's guardrails would hold the DDL.
CREATE TABLE jdbc_customers (
    id      int PRIMARY KEY,
    email   text NOT NULL,
    balance numeric(12,2),
    joined  timestamptz,
    ext_ref uuid,
    payload bytea,
    active  boolean
);
CREATE INDEX jdbc_customers_email ON jdbc_customers (email);
COMMENT ON TABLE jdbc_customers IS 'people who buy things';
INSERT INTO jdbc_customers
SELECT g, 'customer' || g || '@example.com', g * 1.25,
       '2024-01-01T00:00:00Z'::timestamptz + g * interval '1 hour',
       md5(g::text)::uuid, decode(lpad(to_hex(g), 4, '0'), 'hex'), g % 2 = 0
FROM generate_series(1, 1000) g;
