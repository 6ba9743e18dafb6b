//! A minimal HTTP/1.1 server for `/metrics`, `/healthz` and `/readyz` on the agent's runtime.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::health::Health;

const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct State {
    registry: Registry,
    health: Health,
}

/// The running server; dropping it (or [`TelemetryServer::stop`]) stops accepting.
pub struct TelemetryServer {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl TelemetryServer {
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for TelemetryServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long the server waits after a failed accept before the next one.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Binds `address` (port 0: any free port, see [`TelemetryServer::address`]) and serves.
pub async fn serve(
    address: SocketAddr,
    registry: Registry,
    health: Health,
) -> Result<TelemetryServer> {
    let listener = TcpListener::bind(address).await.with_context(|| {
        format!("cannot listen on {address} for /metrics (telemetry.metrics_address)")
    })?;
    let address = listener.local_addr()?;
    let state = Arc::new(State { registry, health });
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: retrying at once would spin a core.
                    tracing::warn!("telemetry server: cannot accept a connection: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(respond(&state, &request)) }
                });
                // A client that goes away mid-request is its own business.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(TelemetryServer { address, task })
}

fn respond(state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, super::render(&state.registry));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(METRICS_CONTENT_TYPE),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match state.health.readiness() {
            Ok(why) => text(StatusCode::OK, why),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: the agent serves /metrics, /healthz and /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
