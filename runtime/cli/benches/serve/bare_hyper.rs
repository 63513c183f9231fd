use super::*;

/// Serves `EXPECTED_BODY` on 127.0.0.1 with two tokio workers; prints the
/// address on stdout, and exits when stdin closes (the bench died).
pub fn serve() {
    thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot start a tokio runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("no local address");
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{addr}").expect("cannot write to stdout");
        stdout.flush().expect("cannot write to stdout");
        drop(stdout);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors or similar: back off.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            // Like the cloudware gateway.
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    });
}

async fn hello(
    _request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let response = http::Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(EXPECTED_BODY.as_bytes())))
        .expect("a valid response");
    Ok(response)
}
