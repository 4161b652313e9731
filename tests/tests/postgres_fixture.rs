//! The PostgreSQL fixture itself: a private cluster starts, serves SQL (advisory locks and
//! the server clock, which two hubs rely on), stops and resumes on the same data.

use steward_e2e::postgres::Postgres;

#[test]
fn private_cluster_starts_stops_and_resumes_with_its_data() {
    if !steward_e2e::require_root("private_cluster_starts_stops_and_resumes_with_its_data") {
        return;
    }
    let mut pg = Postgres::start();
    assert_eq!(
        pg.psql(
            "steward",
            "SELECT pg_try_advisory_lock(42), now() IS NOT NULL"
        ),
        "t|t"
    );
    pg.psql(
        "steward",
        "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)",
    );
    pg.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", pg.port)).is_err(),
        "a stopped server must not accept connections"
    );
    pg.resume();
    assert_eq!(pg.psql("steward", "SELECT v FROM kept"), "7");
}
