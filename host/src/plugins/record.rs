//! Records the spans the agent builds, before any plugin, as JSON lines that `plugin run` takes
//! (the format of [`super::jsonl`]): a plugin author tests on their own service's traffic
//! without root. Off unless configured (`plugins.record_spans`, `--record-spans`); the file is
//! bounded (`plugins.record_spans_max_mib`): recording stops, with one log line, at the first
//! batch that would pass the bound. The spans are as captured, before redaction: the file is
//! created readable by its owner only.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

use super::jsonl::span_record;
use crate::span::Span;

pub struct SpanRecorder {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    out: Option<BufWriter<File>>,
    written: u64,
    max_bytes: u64,
    /// One batch's lines, reused.
    lines: Vec<u8>,
}

impl SpanRecorder {
    /// Creates (or truncates) `path`; recording stops once `max_bytes` are written.
    pub fn create(path: &Path, max_bytes: u64) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| {
                format!(
                    "cannot create the span recording {} (plugins.record_spans, --record-spans)",
                    path.display()
                )
            })?;
        tracing::info!(
            path = %path.display(),
            max_mib = max_bytes >> 20,
            "recording the spans built, before plugins, for `plugin run`"
        );
        Ok(SpanRecorder {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                out: Some(BufWriter::new(file)),
                written: 0,
                max_bytes,
                lines: Vec::new(),
            }),
        })
    }

    /// Appends `spans`, whole lines only, unless the file is full or failed.
    pub fn record(&self, spans: &[Span]) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let state = &mut *state;
        if state.out.is_none() {
            return;
        }
        state.lines.clear();
        for span in spans {
            // A span record is plain data: serialising it cannot fail.
            let _ = serde_json::to_writer(&mut state.lines, &span_record(span));
            state.lines.push(b'\n');
        }
        let stop = |state: &mut State, why: String| {
            tracing::warn!(path = %self.path.display(), "span recording stopped: {why}");
            state.out = None;
        };
        if state.written + state.lines.len() as u64 > state.max_bytes {
            let why = format!(
                "{} MiB written, the bound (plugins.record_spans_max_mib)",
                state.written >> 20
            );
            if let Some(out) = &mut state.out {
                let _ = out.flush();
            }
            return stop(state, why);
        }
        let result = state.out.as_mut().map(|out| {
            // Flushed per batch: a reader (`plugin run`) sees whole lines while the agent runs.
            out.write_all(&state.lines).and_then(|()| out.flush())
        });
        match result {
            Some(Err(e)) => stop(state, format!("cannot write: {e}")),
            _ => state.written += state.lines.len() as u64,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.state.lock().map(|s| s.written).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::jsonl::parse_span;
    use crate::span::{Attribute, Resource, SpanKind, SpanStatus};
    use std::sync::Arc;

    fn span(path: &str) -> Span {
        Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            name: "GET".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 5,
            end_unix_nanos: 9,
            status: SpanStatus::Unset,
            attributes: vec![Attribute::new("url.path", path.to_owned())],
            resource: Arc::new(Resource {
                attributes: vec![Attribute::new("service.name", "shop")],
            }),
        }
    }

    #[test]
    fn records_whole_lines_that_plugin_run_reads_back_up_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spans.jsonl");
        let line = serde_json::to_string(&span_record(&span("/xa")))
            .unwrap()
            .len() as u64
            + 1;
        // Room for two batches of two spans, not a third.
        let recorder = SpanRecorder::create(&path, 5 * line).unwrap();
        for batch in 0..4 {
            recorder.record(&[span(&format!("/{batch}a")), span(&format!("/{batch}b"))]);
        }
        assert_eq!(recorder.written(), 4 * line);
        let text = std::fs::read_to_string(&path).unwrap();
        let spans: Vec<Span> = text.lines().map(|l| parse_span(l).unwrap()).collect();
        assert_eq!(spans.len(), 4);
        assert_eq!(spans[3], span("/1b"));
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn a_file_that_cannot_be_created_names_the_setting() {
        let err = SpanRecorder::create(Path::new("/nonexistent/dir/x.jsonl"), 1)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("--record-spans"), "{err:#}");
    }
}
