//! Heartbeats and forwarding: host 1 runs a gateway whose app runs only on the other hosts.

use crate::harness::*;
/// An answer: status, headers, body.
struct Reply {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request to `addr` with `Host: hello.test`.
async fn send(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "hello.test:8080");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).expect("request");
    let response = tokio::time::timeout(SETTLE, sender.send_request(request))
        .await
        .expect("answer in time")
        .expect("answer");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_mark_a_stopped_host_down_and_up_again() {
    let mut cluster = Cluster::start(&[Serve::NotHere, Serve::Hello, Serve::Hello], FAST).await;
    let watcher = cluster.host(1).health();
    assert!(watcher.is_up(3));
    let status = watcher.status(3).expect("observed");
    assert!(status.up && status.rtt.is_some(), "{status:?}");

    cluster.host(3).stop().await;
    let bound = FAST.down_after() + FAST.interval + FAST.timeout;
    // Scheduling on a loaded machine adds a little.
    let took = wait_for("host 3 down", bound * 3, || !watcher.is_up(3)).await;
    eprintln!("host 3 down after {took:?} (bound {bound:?})");
    let status = watcher.status(3).expect("observed");
    assert!(!status.up && status.missed >= FAST.missed, "{status:?}");
    assert!(watcher.is_up(2), "the other host stays up");

    // The forwarder skips the down host.
    for _ in 0..4 {
        let reply = send(cluster.gateway, http::Method::GET, "/", &[], "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    cluster.host(3).restart(FAST).await;
    let took = wait_for("host 3 up again", SETTLE, || watcher.is_up(3)).await;
    eprintln!("host 3 up again {took:?} after its restart");
    assert_eq!(watcher.status(3).expect("observed").missed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_requests_reach_a_peer_and_stream_back() {
    let cluster = Cluster::start(&[Serve::NotHere, Serve::Hello, Serve::Hello], FAST).await;
    let reply = send(cluster.gateway, http::Method::GET, "/", &[], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Hello from Cloudware!\n");

    // The guest sees the client's request: path, query, Host, the client's address.
    let reply = send(
        cluster.gateway,
        http::Method::GET,
        "/info?x=1",
        &[("x-custom", "kept")],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let info: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    assert_eq!(info["path"], "/info");
    assert_eq!(info["query"], "x=1");
    assert_eq!(info["headers"]["x-custom"], "kept");
    let hosts_seen: Vec<String> = cluster.hosts[1..]
        .iter()
        .map(|host| host.router.last_host.lock().expect("lock").clone())
        .collect();
    assert!(
        hosts_seen.iter().any(|host| host == "hello.test"),
        "routed by the client's Host: {hosts_seen:?}"
    );
    assert_eq!(info["headers"]["x-forwarded-for"], "127.0.0.1");
    assert!(
        info["headers"].get(FORWARDED_BY_HEADER).is_none(),
        "the hop header is the cluster's: {info}"
    );

    // A body larger than the replay window streams both ways intact.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let reply = send(
        cluster.gateway,
        http::Method::POST,
        "/echo",
        &[("content-type", "application/x-test")],
        big.clone(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers.get("content-type").expect("type"),
        "application/x-test"
    );
    assert!(reply.body == big, "echoed body differs");

    // Requests spread over both hosts.
    let before = cluster.hosts[1].router.routed() + cluster.hosts[2].router.routed();
    for _ in 0..6 {
        let reply = send(cluster.gateway, http::Method::GET, "/", &[], "").await;
        assert_eq!(reply.status, 200);
    }
    let (two, three) = (
        cluster.hosts[1].router.routed(),
        cluster.hosts[2].router.routed(),
    );
    assert_eq!(two + three, before + 6);
    assert!(
        two >= 2 && three >= 2,
        "spread: host 2 {two}, host 3 {three}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_is_not_sent_twice_once_a_host_took_it() {
    let cluster = Cluster::start(&[Serve::NotHere, Serve::Crash, Serve::Crash], FAST).await;
    let routed =
        |cluster: &Cluster| cluster.hosts[1].router.routed() + cluster.hosts[2].router.routed();

    let reply = send(
        cluster.gateway,
        http::Method::POST,
        "/echo",
        &[],
        "pay once",
    )
    .await;
    assert_eq!(
        reply.status,
        http::StatusCode::BAD_GATEWAY,
        "{}",
        reply.text()
    );
    assert_eq!(routed(&cluster), 1, "the POST reached one host only");

    // A GET that got no answer is tried on the other host too.
    let reply = send(cluster.gateway, http::Method::GET, "/", &[], "").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(routed(&cluster), 3, "the GET was tried on both hosts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_host_serves_when_one_is_down_or_lacks_the_app() {
    // Slow heartbeats: host 2 still counts as up after it stops.
    let slow = HealthConfig {
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        missed: 30,
    };
    let mut cluster = Cluster::start(&[Serve::NotHere, Serve::Hello, Serve::Hello], slow).await;

    // Host 3 says "not here": a POST goes on to host 2.
    cluster.hosts[2].router.set(Serve::NotHere);
    for i in 0..4 {
        let reply = send(
            cluster.gateway,
            http::Method::POST,
            "/echo",
            &[],
            format!("n{i}"),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), format!("n{i}"));
    }
    assert!(cluster.hosts[2].router.routed() >= 1, "host 3 was asked");

    // Host 2 is down (its connections refused) but not yet known to be: host 3 serves.
    cluster.hosts[2].router.set(Serve::Hello);
    cluster.host(2).stop().await;
    // Let the pooled connection to host 2 see its peer go (EOF): a POST already
    // sent on a connection whose peer vanishes is, by design, not sent again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cluster.host(1).health().is_up(2));
    let before = cluster.hosts[2].router.routed();
    for i in 0..4 {
        let reply = send(
            cluster.gateway,
            http::Method::POST,
            "/echo",
            &[],
            format!("m{i}"),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), format!("m{i}"));
    }
    assert_eq!(cluster.hosts[2].router.routed(), before + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_requests_are_never_forwarded_again() {
    let cluster = Cluster::start(&[Serve::NotHere, Serve::NotHere, Serve::NotHere], FAST).await;
    // Hosts 2 and 3 know the app as running on each other: were a forwarded request
    // forwarded again, it would go round.
    *cluster.hosts[1].router.remote.lock().expect("lock") = vec![(3, 1)];
    *cluster.hosts[2].router.remote.lock().expect("lock") = vec![(2, 1)];
    let reply = send(cluster.gateway, http::Method::POST, "/echo", &[], "once").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(reply.text().contains("not-here"), "{}", reply.text());
    assert_eq!(cluster.hosts[1].router.routed(), 1);
    assert_eq!(cluster.hosts[2].router.routed(), 1);

    // A client cannot make the gateway forward a request marked as forwarded.
    let reply = send(
        cluster.gateway,
        http::Method::GET,
        "/",
        &[(FORWARDED_BY_HEADER, "7")],
        "",
    )
    .await;
    assert_eq!(reply.status, http::StatusCode::LOOP_DETECTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_group_follows_membership_and_keeps_messages_when_its_leader_stops() {
    use cloudware_bus::{NewMessage, QueueId};
    let mut cluster = Cluster::start(&[Serve::Hello, Serve::Hello, Serve::Hello], FAST).await;
    let voters = |cluster: &mut Cluster, id: u64| {
        let mut voters = cluster.host(id).cluster().bus().node().status().voters;
        voters.sort_unstable();
        voters
    };
    let started = Instant::now();
    while voters(&mut cluster, 1) != [1, 2, 3] {
        assert!(
            started.elapsed() < SETTLE,
            "bus voters {:?}",
            voters(&mut cluster, 1)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("bus group of three after {:?}", started.elapsed());
    let queue = QueueId::queue("acme", "jobs");
    // Sends from every host (followers forward to the leader).
    for id in 1..=3 {
        let bus = cluster.host(id).cluster().bus().clone();
        bus.send(&queue, NewMessage::new(format!("from {id}")))
            .await
            .expect("sent");
    }
    let leader = cluster
        .host(1)
        .cluster()
        .bus()
        .node()
        .status()
        .leader
        .expect("a bus leader");
    cluster.host(leader).stop().await;
    let survivor = if leader == 1 { 2 } else { 1 };
    let bus = cluster.host(survivor).cluster().bus().clone();
    let started = Instant::now();
    bus.send(&queue, NewMessage::new("after"))
        .await
        .expect("sent after the leader stopped");
    eprintln!(
        "a send after stopping leader {leader} took {:?}",
        started.elapsed()
    );
    bus.sync_reads().await.expect("synced");
    assert_eq!(bus.stats(&queue).depth, 4, "{:?}", bus.stats(&queue));
}
