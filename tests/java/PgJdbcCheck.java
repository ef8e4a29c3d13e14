/*
 * PgJDBC (Debian's libpostgresql-jdbc-java, the driver DBeaver and IntelliJ use) through the
 * gateway: what those tools do on connect and while browsing (DatabaseMetaData), server-side
 * prepared statements with binary results, fetch-size portals over masked rows, batches (also
 * rewritten into multi-row inserts), generated keys, errors inside transactions (also with
 * autosave savepoints), cancel and query timeouts.
 *
 * Run by tests/tests/pgjdbc.rs with the source launcher:
 *   java -cp /usr/share/java/postgresql.jar PgJdbcCheck.java
 * with GATEHOUSE_JDBC_URL, GATEHOUSE_USER, GATEHOUSE_PASSWORD and GATEHOUSE_JDBC_SETUP (the path
 * of jdbc_customers.sql) set. With the argument `browse` it only reads, as a tool showing an
 * existing database does (the table must exist). Prints "all checks passed" and exits 0, or
 * names the first check that failed and exits 1.
 */

import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.UUID;

public class PgJdbcCheck {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static Connection open(String extra) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", System.getenv("GATEHOUSE_USER"));
        p.setProperty("password", System.getenv("GATEHOUSE_PASSWORD"));
        return DriverManager.getConnection(System.getenv("GATEHOUSE_JDBC_URL") + extra, p);
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("browse")) {
            // Only what a tool does to show a database that already exists: nothing it writes.
            try (Connection c = open("")) {
                catalog(c);
                browse(c);
            }
            System.out.println("all checks passed");
            return;
        }
        try (Connection c = open("")) {
            setup(c);
            catalog(c);
            serverSidePrepares(c);
            fetchSizePortals(c);
            batchesAndKeys(c);
            errorsInTransactions(c);
            cancel(c);
        }
        autosaveAndTimeouts();
        // TLS to the gateway without checking its certificate, as DBeaver's "require": PgJDBC
        // gives up at once if the SSLRequest is refused.
        try (Connection c = open("&sslmode=require"); Statement st = c.createStatement();
                ResultSet rs = st.executeQuery("SELECT 'over tls'")) {
            check(rs.next() && rs.getString(1).equals("over tls"), "a query over TLS");
        }
        System.out.println("all checks passed");
    }

    /* The table every check reads, from jdbc_customers.sql (GATEHOUSE_JDBC_SETUP names it). */
    static void setup(Connection c) throws Exception {
        String sql = Files.readString(Path.of(System.getenv("GATEHOUSE_JDBC_SETUP")));
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        }
    }

    /* What a database tool runs when it opens a connection and expands the tree. */
    static void catalog(Connection c) throws SQLException {
        // The upstream names who is behind the connection, whatever the tool calls itself.
        try (Statement st = c.createStatement();
                ResultSet rs = st.executeQuery("SELECT current_setting('application_name')")) {
            check(rs.next(), "application_name");
            String app = rs.getString(1);
            check(app.startsWith("gatehouse:" + System.getenv("GATEHOUSE_USER") + "/") && app.endsWith("DBeaver"),
                    "upstream application_name " + app);
        }
        DatabaseMetaData md = c.getMetaData();
        check(md.getDatabaseProductVersion().startsWith("15"), "server version " + md.getDatabaseProductVersion());
        List<String> schemas = new ArrayList<>();
        try (ResultSet rs = md.getSchemas()) {
            while (rs.next()) {
                schemas.add(rs.getString("TABLE_SCHEM"));
            }
        }
        check(schemas.contains("public"), "schemas " + schemas);
        boolean found = false;
        try (ResultSet rs = md.getTables(null, "public", "jdbc_%", new String[] {"TABLE"})) {
            while (rs.next()) {
                if (rs.getString("TABLE_NAME").equals("jdbc_customers")) {
                    found = true;
                    check("people who buy things".equals(rs.getString("REMARKS")), "table remarks " + rs.getString("REMARKS"));
                }
            }
        }
        check(found, "getTables lists jdbc_customers");
        List<String> columns = new ArrayList<>();
        try (ResultSet rs = md.getColumns(null, "public", "jdbc_customers", "%")) {
            while (rs.next()) {
                columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
        }
        check(columns.equals(List.of("id:int4", "email:text", "balance:numeric", "joined:timestamptz",
                "ext_ref:uuid", "payload:bytea", "active:bool")), "getColumns " + columns);
        try (ResultSet rs = md.getPrimaryKeys(null, "public", "jdbc_customers")) {
            check(rs.next() && rs.getString("COLUMN_NAME").equals("id"), "getPrimaryKeys");
        }
        List<String> indexes = new ArrayList<>();
        try (ResultSet rs = md.getIndexInfo(null, "public", "jdbc_customers", false, true)) {
            while (rs.next()) {
                indexes.add(rs.getString("INDEX_NAME"));
            }
        }
        check(indexes.contains("jdbc_customers_email") && indexes.contains("jdbc_customers_pkey"), "getIndexInfo " + indexes);
        try (ResultSet rs = md.getTypeInfo()) {
            int n = 0;
            while (rs.next()) {
                n++;
            }
            check(n > 20, "getTypeInfo rows " + n);
        }
        try (ResultSet rs = md.getFunctions(null, "pg_catalog", "md5")) {
            check(rs.next(), "getFunctions md5");
        }
    }

    /* The rest of a tool's tree: every schema's tables, their columns and keys, the functions,
       and the first rows of a table, as DBeaver's data tab reads them. */
    static void browse(Connection c) throws SQLException {
        DatabaseMetaData md = c.getMetaData();
        int tables = 0;
        try (ResultSet rs = md.getTables(null, null, "%", null)) {
            while (rs.next()) {
                tables++;
            }
        }
        check(tables > 50, "tables in every schema " + tables);
        try (ResultSet rs = md.getColumns(null, "pg_catalog", "pg_class", "%")) {
            check(rs.next(), "columns of pg_class");
        }
        md.getImportedKeys(null, "public", "jdbc_customers").close();
        md.getExportedKeys(null, "public", "jdbc_customers").close();
        md.getTablePrivileges(null, "public", "jdbc_customers").close();
        md.getProcedures(null, "public", "%").close();
        md.getCatalogs().close();
        md.getUDTs(null, null, null, null).close();
        try (Statement st = c.createStatement()) {
            st.setMaxRows(200);
            try (ResultSet rs = st.executeQuery("SELECT * FROM public.jdbc_customers")) {
                int n = 0;
                while (rs.next()) {
                    n++;
                }
                check(n == 200, "first rows " + n);
            }
        }
    }

    /* After prepareThreshold executions PgJDBC names the statement (S_n) and asks for binary results. */
    static void serverSidePrepares(Connection c) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(
                "SELECT id, balance, joined, ext_ref, payload, active FROM jdbc_customers WHERE id = ?")) {
            ps.unwrap(org.postgresql.PGStatement.class).setPrepareThreshold(2);
            for (int id = 1; id <= 10; id++) {
                ps.setInt(1, id);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "row " + id);
                    check(rs.getInt(1) == id, "id " + id);
                    check(rs.getBigDecimal(2).compareTo(new BigDecimal(id).multiply(new BigDecimal("1.25"))) == 0,
                            "balance " + rs.getBigDecimal(2));
                    Timestamp joined = rs.getTimestamp(3);
                    check(joined.toInstant().toString().equals(
                            java.time.Instant.parse("2024-01-01T00:00:00Z").plusSeconds(3600L * id).toString()),
                            "joined " + joined.toInstant());
                    check(rs.getObject(4, UUID.class) != null, "uuid");
                    byte[] payload = rs.getBytes(5);
                    check(payload.length == 2 && ((payload[0] & 0xff) << 8 | (payload[1] & 0xff)) == id, "bytea");
                    check(rs.getBoolean(6) == (id % 2 == 0), "boolean");
                    check(!rs.next(), "one row");
                }
            }
        }
        try (Statement st = c.createStatement();
                ResultSet rs = st.executeQuery("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'S\\_%'")) {
            check(rs.next() && rs.getInt(1) >= 1, "a named server-side statement upstream");
        }
    }

    /* setFetchSize outside autocommit: one portal, read 50 rows per Execute (PortalSuspended in between). */
    static void fetchSizePortals(Connection c) throws SQLException {
        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement("SELECT id, email FROM jdbc_customers WHERE id <= ? ORDER BY id")) {
            ps.setFetchSize(50);
            ps.setInt(1, 1000);
            long sum = 0;
            int rows = 0;
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    int id = rs.getInt(1);
                    String email = rs.getString(2);
                    check(!email.equals("customer" + id + "@example.com"), "email of " + id + " came back unmasked: " + email);
                    sum += id;
                    rows++;
                }
            }
            check(rows == 1000 && sum == 500500, "rows " + rows + " sum " + sum);
            // Two portals open at once, read alternately.
            try (Statement a = c.createStatement(); Statement b = c.createStatement()) {
                a.setFetchSize(7);
                b.setFetchSize(11);
                try (ResultSet ra = a.executeQuery("SELECT g FROM generate_series(1, 100) g");
                        ResultSet rb = b.executeQuery("SELECT g FROM generate_series(101, 200) g")) {
                    long total = 0;
                    for (int i = 0; i < 100; i++) {
                        check(ra.next() && rb.next(), "interleaved row " + i);
                        total += ra.getInt(1) + rb.getInt(1);
                    }
                    check(total == 20100, "interleaved sum " + total);
                }
            }
        }
        c.commit();
        c.setAutoCommit(true);
    }

    static void batchesAndKeys(Connection c) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute("CREATE TABLE jdbc_orders (id serial PRIMARY KEY, customer int, amount numeric)");
        }
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO jdbc_orders (customer, amount) VALUES (?, ?)")) {
            for (int i = 1; i <= 200; i++) {
                ps.setInt(1, i % 10);
                ps.setBigDecimal(2, new BigDecimal(i));
                ps.addBatch();
            }
            int[] counts = ps.executeBatch();
            check(counts.length == 200, "batch counts " + counts.length);
            for (int n : counts) {
                check(n == 1 || n == Statement.SUCCESS_NO_INFO, "batch count " + n);
            }
        }
        try (PreparedStatement ps = c.prepareStatement(
                "INSERT INTO jdbc_orders (customer, amount) VALUES (?, ?)", Statement.RETURN_GENERATED_KEYS)) {
            ps.setInt(1, 42);
            ps.setBigDecimal(2, new BigDecimal("9.99"));
            check(ps.executeUpdate() == 1, "insert returning");
            try (ResultSet keys = ps.getGeneratedKeys()) {
                check(keys.next() && keys.getInt("id") == 201, "generated key");
            }
        }
        try (Statement st = c.createStatement();
                ResultSet rs = st.executeQuery("SELECT count(*), sum(amount) FROM jdbc_orders")) {
            check(rs.next() && rs.getInt(1) == 201 && rs.getBigDecimal(2).compareTo(new BigDecimal("20109.99")) == 0,
                    "orders after the batch");
        }
    }

    static void errorsInTransactions(Connection c) throws SQLException {
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.executeUpdate("UPDATE jdbc_orders SET amount = 0 WHERE id = 1");
            try {
                st.executeQuery("SELECT 1 / 0");
                check(false, "division by zero raised nothing");
            } catch (SQLException e) {
                check("22012".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
            }
            try {
                st.executeQuery("SELECT 1");
                check(false, "a statement after an error in a transaction ran");
            } catch (SQLException e) {
                check("25P02".equals(e.getSQLState()), "in failed transaction: " + e.getSQLState());
            }
            c.rollback();
            try (ResultSet rs = st.executeQuery("SELECT amount FROM jdbc_orders WHERE id = 1")) {
                check(rs.next() && rs.getBigDecimal(1).compareTo(BigDecimal.ONE) == 0, "rolled back");
            }
            c.commit();
        }
        c.setAutoCommit(true);
        try (Statement st = c.createStatement()) {
            st.execute("SELEC 1");
            check(false, "a syntax error raised nothing");
        } catch (SQLException e) {
            check("42601".equals(e.getSQLState()), "syntax error SQLSTATE " + e.getSQLState());
        }
    }

    /* autosave=always (a SAVEPOINT before each statement, rolled back to on error, so one failed
       statement does not lose the transaction), batched inserts rewritten into one multi-row
       INSERT, and setQueryTimeout, which PgJDBC enforces with a cancel of its own. */
    static void autosaveAndTimeouts() throws Exception {
        try (Connection c = open("&autosave=always&reWriteBatchedInserts=true")) {
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.executeUpdate("CREATE TEMP TABLE jdbc_saves (n int)");
                st.executeUpdate("INSERT INTO jdbc_saves VALUES (1)");
                try {
                    st.executeQuery("SELECT 1 / 0");
                    check(false, "division by zero raised nothing");
                } catch (SQLException e) {
                    check("22012".equals(e.getSQLState()), "autosave error " + e.getSQLState());
                }
                st.executeUpdate("INSERT INTO jdbc_saves VALUES (2)");
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO jdbc_saves VALUES (?)")) {
                for (int i = 3; i <= 50; i++) {
                    ps.setInt(1, i);
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            try (Statement st = c.createStatement();
                    ResultSet rs = st.executeQuery("SELECT count(*), sum(n) FROM jdbc_saves")) {
                check(rs.next() && rs.getInt(1) == 50 && rs.getInt(2) == 1275, "rows kept across the error");
            }
            c.commit();
            try (Statement st = c.createStatement()) {
                st.setQueryTimeout(1);
                long start = System.nanoTime();
                try {
                    st.execute("SELECT pg_sleep(10)");
                    check(false, "the query timeout did not fire");
                } catch (SQLException e) {
                    check("57014".equals(e.getSQLState()), "timeout SQLSTATE " + e.getSQLState());
                }
                long ms = (System.nanoTime() - start) / 1_000_000;
                check(ms < 5000, "query timeout took " + ms + " ms");
            }
            c.rollback();
        }
    }

    /* Statement.cancel() sends a CancelRequest on a new connection with the key the gateway gave. */
    static void cancel(Connection c) throws Exception {
        try (Statement st = c.createStatement()) {
            Thread canceller = new Thread(() -> {
                try {
                    Thread.sleep(500);
                    st.cancel();
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            long start = System.nanoTime();
            canceller.start();
            try {
                st.execute("SELECT pg_sleep(30)");
                check(false, "pg_sleep(30) was not cancelled");
            } catch (SQLException e) {
                check("57014".equals(e.getSQLState()), "cancel SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
            }
            canceller.join();
            long ms = (System.nanoTime() - start) / 1_000_000;
            check(ms < 5000, "cancel took " + ms + " ms");
            try (ResultSet rs = st.executeQuery("SELECT 'still here'")) {
                check(rs.next() && rs.getString(1).equals("still here"), "usable after cancel");
            }
        }
    }
}
