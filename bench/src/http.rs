//! Just enough HTTP/1.1 for the benchmark's own traffic: the fixed-rate load, the OTLP sink and
//! scraping `/metrics`. Keep-alive, `Content-Length` or chunked bodies; nothing else.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use anyhow::{bail, Context, Result};

/// One message (request or response): its start line and headers, and its body.
pub struct Message {
    pub head: String,
    pub body: Vec<u8>,
}

impl Message {
    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.head.split_whitespace().nth(1)?.parse().ok()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Reads one message; `None` when the peer closed the connection before a new one began.
pub fn read_message(reader: &mut impl BufRead) -> Result<Option<Message>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            bail!("connection closed inside the headers");
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = Vec::new();
    if let Some(length) = header(&head, "content-length") {
        body.resize(length.parse().context("Content-Length")?, 0);
        reader.read_exact(&mut body)?;
    } else if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).context("chunk size")?;
            let start = body.len();
            body.resize(start + size + 2, 0);
            reader.read_exact(&mut body[start..])?;
            body.truncate(start + size);
            if size == 0 {
                break;
            }
        }
    }
    Ok(Some(Message { head, body }))
}

/// A keep-alive client connection.
pub struct Connection {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Connection {
    pub fn open(port: u16) -> Result<Connection> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::new(stream),
            request: Vec::with_capacity(128),
        })
    }

    pub fn get(&mut self, path: &str) -> Result<Message> {
        self.request.clear();
        write!(
            self.request,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: http-autoinstrument-bench\r\n\r\n"
        )?;
        self.reader.get_mut().write_all(&self.request)?;
        read_message(&mut self.reader)?.context("server closed the connection")
    }
}

/// One GET on a new connection.
pub fn get(port: u16, path: &str) -> Result<Message> {
    Connection::open(port)?.get(path)
}

/// The value of the sample `line_start` (metric name with labels) in a Prometheus text page.
pub fn metric(page: &str, line_start: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        line.strip_prefix(line_start)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_length_and_chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut reader = BufReader::new(&raw[..]);
        let first = read_message(&mut reader).unwrap().unwrap();
        assert_eq!(
            (first.status(), first.body.as_slice()),
            (Some(200), &b"hello"[..])
        );
        let second = read_message(&mut reader).unwrap().unwrap();
        assert_eq!(
            (second.status(), second.body.as_slice()),
            (Some(404), &b"abcde"[..])
        );
        assert!(read_message(&mut reader).unwrap().is_none());
    }

    #[test]
    fn finds_a_metric_by_name_and_labels() {
        let page = "# HELP x\nhai_probe_hits_total{probe=\"entry\"} 12\nhai_probe_hits_total{probe=\"request_end\"} 11\n";
        assert_eq!(
            metric(page, "hai_probe_hits_total{probe=\"request_end\"}"),
            Some(11.0)
        );
        assert_eq!(metric(page, "hai_missing"), None);
    }
}
