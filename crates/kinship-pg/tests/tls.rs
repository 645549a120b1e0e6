//! TLS to a real PostgreSQL server that the test starts with a certificate from a test CA.

fn uses_tls(client: &mut postgres::Client) -> bool {
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap().get(0)
}

#[test]
fn tls_is_used_when_asked_for_and_the_server_is_verified() {
    let (server, ca) = kinship_testkit::postgres_server_with_tls();
    let url = format!("{server}/postgres");

    // No sslmode: a plain connection, as to a server on the same host.
    let mut plain = kinship_pg::connect(&url).unwrap();
    assert!(!uses_tls(&mut plain));

    // sslmode=require with the server's CA: encrypted, and the certificate verified.
    // (One test, because PGSSLROOTCERT is the process's environment.)
    unsafe { std::env::set_var("PGSSLROOTCERT", ca) };
    let mut secure = kinship_pg::connect(&format!("{url}?sslmode=require")).unwrap();
    assert!(uses_tls(&mut secure));

    // A CA that did not sign the server's certificate: refused, and the error says why.
    let other = tempfile::tempdir().unwrap();
    unsafe { std::env::set_var("PGSSLROOTCERT", kinship_testkit::new_ca(other.path(), "someone else")) };
    let refused = kinship_pg::connect(&format!("{url}?sslmode=require")).err().expect("an unverified server is refused");
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    unsafe { std::env::remove_var("PGSSLROOTCERT") };
    let bad = kinship_pg::connect("postgres://kinship@127.0.0.1:1/x?sslmode=sometimes").err().unwrap();
    assert!(bad.contains("not valid"), "{bad}");
}
