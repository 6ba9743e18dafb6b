//! A real OTLP trace receiver for tests: gRPC and http/protobuf (`POST /v1/traces`) on
//! 127.0.0.1 ephemeral ports.
//!
//! Both listeners are served by hyper directly (the gRPC side through the generated
//! `TraceServiceServer`), so `stop` can drop every open connection at once: a stopped receiver
//! behaves like a collector that went away, not like one that politely finishes keep-alives.
//! `restart` binds the same ports again.
#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatusCode;
use prost::Message;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tonic::codegen::Service;

/// An attribute value as received.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps, bytes: not produced by the agent; kept as debug text.
    Other(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

/// One received span, flattened with its resource and scope.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub transport: Transport,
    /// Which export request (0-based, over the receiver's life) carried it.
    pub request_index: usize,
    /// Which ResourceSpans (0-based, over the receiver's life) carried it.
    pub resource_spans_index: usize,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub status_code: OtlpStatusCode,
    pub status_message: String,
    pub attributes: HashMap<String, Value>,
    pub resource: HashMap<String, Value>,
    pub scope_name: String,
    pub scope_version: String,
}

impl ReceivedSpan {
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn attr_int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn resource_str(&self, key: &str) -> Option<&str> {
        match self.resource.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn resource_int(&self, key: &str) -> Option<i64> {
        match self.resource.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
}

/// How to refuse requests (see [`OtlpReceiver::reject_next`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// HTTP 503 / gRPC UNAVAILABLE: the OTLP spec says retry.
    Retryable,
    /// HTTP 400 / gRPC INVALID_ARGUMENT: the OTLP spec says do not retry.
    Permanent,
}

#[derive(Default)]
struct State {
    spans: Mutex<Vec<ReceivedSpan>>,
    headers: Mutex<Vec<HashMap<String, String>>>,
    requests: AtomicUsize,
    resource_spans: AtomicUsize,
    rejected: AtomicUsize,
    reject: Mutex<Option<(usize, Reject)>>,
    delay: Mutex<Duration>,
    notify: Notify,
}

impl State {
    /// Handles one export request; `Err` means refuse it.
    async fn export(
        &self,
        transport: Transport,
        headers: HashMap<String, String>,
        request: ExportTraceServiceRequest,
    ) -> Result<(), Reject> {
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.headers.lock().unwrap().push(headers);
        {
            let mut reject = self.reject.lock().unwrap();
            if let Some((remaining, how)) = reject.as_mut() {
                let how = *how;
                *remaining -= 1;
                if *remaining == 0 {
                    *reject = None;
                }
                self.rejected.fetch_add(1, Ordering::SeqCst);
                return Err(how);
            }
        }
        let request_index = self.requests.fetch_add(1, Ordering::SeqCst);
        let mut received = Vec::new();
        for resource_spans in request.resource_spans {
            let resource_spans_index = self.resource_spans.fetch_add(1, Ordering::SeqCst);
            let resource = attributes(
                resource_spans
                    .resource
                    .map(|r| r.attributes)
                    .unwrap_or_default(),
            );
            for scope_spans in resource_spans.scope_spans {
                let (scope_name, scope_version) = scope_spans
                    .scope
                    .map(|s| (s.name, s.version))
                    .unwrap_or_default();
                for span in scope_spans.spans {
                    let status = span.status.unwrap_or_default();
                    received.push(ReceivedSpan {
                        transport,
                        request_index,
                        resource_spans_index,
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        flags: span.flags,
                        name: span.name,
                        start_unix_nanos: span.start_time_unix_nano,
                        end_unix_nanos: span.end_time_unix_nano,
                        status_code: OtlpStatusCode::try_from(status.code)
                            .unwrap_or(OtlpStatusCode::Unset),
                        status_message: status.message,
                        attributes: attributes(span.attributes),
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        scope_version: scope_version.clone(),
                    });
                }
            }
        }
        self.spans.lock().unwrap().extend(received);
        self.notify.notify_waiters();
        Ok(())
    }
}

fn attributes(kvs: Vec<KeyValue>) -> HashMap<String, Value> {
    kvs.into_iter()
        .map(|kv| (kv.key, value(kv.value)))
        .collect()
}

fn value(v: Option<AnyValue>) -> Value {
    match v.and_then(|v| v.value) {
        Some(any_value::Value::StringValue(s)) => Value::Str(s),
        Some(any_value::Value::IntValue(i)) => Value::Int(i),
        Some(any_value::Value::DoubleValue(d)) => Value::Double(d),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        other => Value::Other(format!("{other:?}")),
    }
}

fn header_map(headers: &hyper::HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

struct GrpcService(Arc<State>);

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = header_map(&request.metadata().clone().into_headers());
        match self
            .0
            .export(Transport::Grpc, headers, request.into_inner())
            .await
        {
            Ok(()) => Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            })),
            Err(Reject::Retryable) => Err(tonic::Status::unavailable("receiver told to refuse")),
            Err(Reject::Permanent) => {
                Err(tonic::Status::invalid_argument("receiver told to refuse"))
            }
        }
    }
}

type Body = tonic::body::Body;

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(Bytes::from(text.to_owned()))));
    *response.status_mut() = status;
    response
}

async fn handle_http(state: Arc<State>, request: Request<Incoming>) -> Response<Body> {
    if request.uri().path() != "/v1/traces" {
        return plain(StatusCode::NOT_FOUND, "only /v1/traces is served");
    }
    if request.method() != hyper::Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/x-protobuf" {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-protobuf",
        );
    }
    let headers = header_map(request.headers());
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("reading body: {e}")),
    };
    let body = match headers.get("content-encoding").map(String::as_str) {
        None => body,
        Some("gzip") => {
            let mut plain_body = Vec::new();
            if let Err(e) = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain_body) {
                return plain(StatusCode::BAD_REQUEST, &format!("gunzip: {e}"));
            }
            Bytes::from(plain_body)
        }
        Some(other) => {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported content-encoding {other}"),
            )
        }
    };
    let decoded = match ExportTraceServiceRequest::decode(body) {
        Ok(decoded) => decoded,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("decoding: {e}")),
    };
    match state.export(Transport::Http, headers, decoded).await {
        Ok(()) => {
            let body = ExportTraceServiceResponse {
                partial_success: None,
            }
            .encode_to_vec();
            let mut response = Response::new(Body::new(Full::new(Bytes::from(body))));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/x-protobuf"),
            );
            response
        }
        Err(Reject::Retryable) => plain(StatusCode::SERVICE_UNAVAILABLE, "told to refuse"),
        Err(Reject::Permanent) => plain(StatusCode::BAD_REQUEST, "told to refuse"),
    }
}

/// Routes by content type, so each port would answer either protocol; tests still use
/// `grpc_endpoint` for gRPC and `http_endpoint` for HTTP, and `ReceivedSpan::transport` records
/// which protocol a span really came over.
async fn route(
    state: Arc<State>,
    grpc: TraceServiceServer<GrpcService>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let is_grpc = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if is_grpc {
        let mut grpc = grpc;
        grpc.call(request).await
    } else {
        Ok(handle_http(state, request).await)
    }
}

/// `None` once stopped: the accept loops check it under the lock before spawning, so no
/// connection task can slip in after `stop` took the set.
type Tasks = Arc<Mutex<Option<JoinSet<()>>>>;

pub struct OtlpReceiver {
    state: Arc<State>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    tasks: Tasks,
    /// While stopped, the two ports bound but not listening: connecting is refused, as to a
    /// collector that is down, and no other test's receiver is given the port meanwhile (its
    /// exporter would deliver there).
    held_ports: Mutex<Vec<TcpSocket>>,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let grpc = bind(SocketAddr::from(([127, 0, 0, 1], 0)));
        let http = bind(SocketAddr::from(([127, 0, 0, 1], 0)));
        let receiver = OtlpReceiver {
            state: Arc::new(State::default()),
            grpc_addr: grpc.local_addr().unwrap(),
            http_addr: http.local_addr().unwrap(),
            tasks: Arc::new(Mutex::new(Some(JoinSet::new()))),
            held_ports: Mutex::new(Vec::new()),
        };
        receiver.serve(grpc);
        receiver.serve(http);
        receiver
    }

    /// Base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` with `grpc`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Base URL (no `/v1/traces`) for `OTEL_EXPORTER_OTLP_ENDPOINT` with `http/protobuf`.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let tasks = self.tasks.clone();
        let accept = async move {
            let grpc = TraceServiceServer::new(GrpcService(state.clone()))
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                // As real collectors do; without it Nagle's algorithm holds back the
                // frames of HTTP/2 responses and gRPC exports crawl.
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let grpc = grpc.clone();
                let connection = async move {
                    let service =
                        service_fn(move |request| route(state.clone(), grpc.clone(), request));
                    // Errors here are clients hanging up, which tests do on purpose.
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                };
                let mut guard = tasks.lock().unwrap();
                match guard.as_mut() {
                    Some(set) => {
                        while set.try_join_next().is_some() {}
                        set.spawn(connection);
                    }
                    None => return,
                }
            }
        };
        self.tasks
            .lock()
            .unwrap()
            .as_mut()
            .expect("receiver is stopped; call restart()")
            .spawn(accept);
    }

    /// Closes both listeners and every open connection, like a collector going down.
    /// Received spans are kept.
    pub async fn stop(&self) {
        self.close().await;
        *self.held_ports.lock().unwrap() = [self.grpc_addr, self.http_addr]
            .into_iter()
            .filter_map(hold_port)
            .collect();
    }

    /// Ends the listeners' and connections' tasks.
    async fn close(&self) {
        let set = self.tasks.lock().unwrap().take();
        if let Some(mut set) = set {
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
    }

    /// Listens again on the same two ports.
    pub async fn restart(&self) {
        self.close().await;
        self.held_ports.lock().unwrap().clear();
        *self.tasks.lock().unwrap() = Some(JoinSet::new());
        self.serve(bind(self.grpc_addr));
        self.serve(bind(self.http_addr));
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.state.spans.lock().unwrap().clone()
    }

    /// Waits until at least `n` spans have arrived; panics after `timeout` saying how many did.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before checking, so a notification in between is not lost.
            let notified = self.state.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} spans within {timeout:?}, received {} (in {} requests, {} refused)",
                    spans.len(),
                    self.state.requests.load(Ordering::SeqCst),
                    self.state.rejected.load(Ordering::SeqCst)
                );
            }
        }
    }

    /// Request headers (lower-case names) of every export request, refused ones included.
    pub fn headers_seen(&self) -> Vec<HashMap<String, String>> {
        self.state.headers.lock().unwrap().clone()
    }

    /// Export requests accepted so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Export requests refused so far (see `reject_next`).
    pub fn rejected(&self) -> usize {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// Refuses the next `n` export requests the given way.
    pub fn reject_next(&self, n: usize, how: Reject) {
        *self.state.reject.lock().unwrap() = (n > 0).then_some((n, how));
    }

    /// Waits `delay` before answering each request (a slow collector).
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(mut set) = self.tasks.lock().unwrap().take() {
            set.abort_all();
        }
    }
}

/// `addr` bound without listening, and without SO_REUSEADDR, so that no other socket may bind it;
/// `None` when that fails (a connection of the stopped listener still holds the port).
fn hold_port(addr: SocketAddr) -> Option<TcpSocket> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(addr).ok()?;
    Some(socket)
}

fn bind(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    // Lets `restart` take the same port back while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).unwrap();
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("binding {addr}: {e}"));
    socket.listen(128).unwrap()
}
