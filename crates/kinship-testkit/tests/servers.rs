//! The fixtures start real servers that answer.

#[test]
fn a_fresh_postgres_database_accepts_writes() {
    let url = kinship_testkit::fresh_database();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute("CREATE TABLE t (x INT); INSERT INTO t VALUES (41), (1)").unwrap();
    let sum: i64 = client.query_one("SELECT SUM(x) FROM t", &[]).unwrap().get(0);
    assert_eq!(sum, 42);
    // Each call gives a database of its own.
    let other = kinship_testkit::fresh_database();
    assert_ne!(url, other);
    let mut client = postgres::Client::connect(&other, postgres::NoTls).unwrap();
    assert!(client.query("SELECT 1 FROM pg_tables WHERE tablename = 't'", &[]).unwrap().is_empty());
}

#[test]
fn nats_server_listens() {
    let nats = kinship_testkit::NatsServer::start();
    let port: u16 = nats.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut greeting = [0u8; 4];
    std::io::Read::read_exact(&mut stream, &mut greeting).unwrap();
    assert_eq!(&greeting, b"INFO", "a NATS server greets with INFO");
}
