//! Stable local ports for `gatehouse connect`: an environment gets the local port it had last
//! time at this gateway (so an IDE's saved connection keeps working), `--port` sets it and is
//! remembered from then on, and a taken port is a clear error, never a silent switch to
//! another port.

use gatehouse_tests::{free_port, CliHome, Fixture, ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_keeps_its_local_port_and_a_taken_one_is_named() {
    let f =
        Fixture::start_with(|b| b.user("dana", "dana-pw", &["eng"]).grant(&["eng"], &[ENV])).await;
    let home = CliHome::new();
    home.must_login(&f.gw, "dana", "dana-pw");

    // First time: a free port, remembered.
    let first = home.tunnel(ENV, &[]);
    let port = first.port;
    let out = first.psql(ENV, &["-tAc", "SELECT 1"]);
    assert!(out.ok(), "{out:?}\n{}", first.log());
    drop(first);
    let again = home.tunnel(ENV, &[]);
    assert_eq!(again.port, port, "the same port the next time");
    drop(again);

    // --port sets it, and it is remembered from then on.
    let chosen = free_port();
    let set = home.tunnel(ENV, &["--port", &chosen.to_string()]);
    assert_eq!(set.port, chosen);
    drop(set);
    let remembered = home.tunnel(ENV, &[]);
    assert_eq!(remembered.port, chosen);
    let out = remembered.psql(ENV, &["-tAc", "SELECT 2"]);
    assert!(out.ok(), "{out:?}");

    // Taken (here by the running tunnel itself): a clear error, and no other port.
    let out = home.run(&["connect", ENV]);
    assert_ne!(out.status, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "local port {chosen}, which {ENV} had last time, is taken"
        )) && out.stderr.contains("--port N"),
        "{out:?}"
    );
    let out = home.run(&["connect", ENV, "--port", &chosen.to_string()]);
    assert!(
        out.stderr
            .contains(&format!("local port {chosen} is taken")),
        "{out:?}"
    );
    drop(remembered);

    // Ports are per person's machine and per gateway: another home starts fresh.
    let other = CliHome::new();
    other.must_login(&f.gw, "dana", "dana-pw");
    let t = other.tunnel(ENV, &[]);
    assert_ne!(t.port, 0);
    let book: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.config_dir().join("ports.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        book["gateways"][f.gw.http()][ENV]["port"],
        chosen,
        "kept per gateway URL: {book}"
    );
}
