//! Blocking adapters between WASI streams and `std::io`: [`BodyReader`] reads
//! an incoming body as `Read`/`BufRead`, and `BodyWriter` writes an outgoing
//! body through `check-write`/`write`, waiting on the stream's pollable when
//! the host's buffer is full.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

use crate::bindings::wasi::http::types::{IncomingBody, IncomingRequest};
use crate::bindings::wasi::io::poll::Pollable;
use crate::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

use super::Error;

/// How many bytes one read asks the host for.
const READ_CHUNK: u64 = 64 * 1024;

/// A request body as a blocking byte stream (`std::io::Read` and `BufRead`).
///
/// Chunks are pulled from the host as they are read, so a body of any size
/// streams through in bounded memory. Obtained from
/// [`Request::body_reader`](super::Request::body_reader) or
/// [`Request::into_body_reader`](super::Request::into_body_reader).
pub struct BodyReader {
    source: Source,
}

enum Source {
    Incoming(IncomingReader),
    Memory(io::Cursor<Vec<u8>>),
}

/// The WASI resources behind an incoming body plus the current chunk.
struct IncomingReader {
    // Fields drop in declaration order: the stream is a child of the body,
    // so it must go first; the request outlives both.
    stream: InputStream,
    _body: IncomingBody,
    _request: IncomingRequest,
    chunk: Vec<u8>,
    pos: usize,
    closed: bool,
}

impl BodyReader {
    /// Takes the body of `request`; fails if it was consumed before.
    pub(crate) fn incoming(request: IncomingRequest) -> Result<Self, Error> {
        let body = request.consume().map_err(|()| Error::BodyConsumed)?;
        let stream = body.stream().map_err(|()| Error::BodyConsumed)?;
        Ok(Self {
            source: Source::Incoming(IncomingReader {
                stream,
                _body: body,
                _request: request,
                chunk: Vec::new(),
                pos: 0,
                closed: false,
            }),
        })
    }

    /// A reader over a body already in memory.
    pub(crate) fn memory(bytes: Vec<u8>) -> Self {
        Self {
            source: Source::Memory(io::Cursor::new(bytes)),
        }
    }
}

impl IncomingReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        // `blocking-read` waits for at least one byte, so this only loops on
        // a host that hands out an empty chunk.
        while self.pos == self.chunk.len() && !self.closed {
            match self.stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(StreamError::Closed) => self.closed = true,
                Err(StreamError::LastOperationFailed(err)) => {
                    return Err(io::Error::other(err.to_debug_string()));
                }
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.chunk.len());
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let len = available.len().min(buf.len());
        buf[..len].copy_from_slice(&available[..len]);
        self.consume(len);
        Ok(len)
    }
}

impl BufRead for BodyReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match &mut self.source {
            Source::Incoming(reader) => reader.fill_buf(),
            Source::Memory(cursor) => cursor.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match &mut self.source {
            Source::Incoming(reader) => reader.consume(amount),
            Source::Memory(cursor) => cursor.consume(amount),
        }
    }
}

impl fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Incoming(_) => "incoming",
            Source::Memory(_) => "memory",
        };
        f.debug_struct("BodyReader")
            .field("source", &source)
            .finish()
    }
}

/// Writes an outgoing body stream as `std::io::Write`.
///
/// Each `write` asks `check-write` how much the host accepts (waiting on the
/// stream's pollable while that is zero) and hands over as much of the
/// caller's buffer as permitted in one `write` call.
pub(crate) struct BodyWriter {
    // Declared first so it drops first: the pollable is a child of the stream.
    ready: Option<Pollable>,
    stream: OutputStream,
}

impl BodyWriter {
    pub(crate) fn new(stream: OutputStream) -> Self {
        Self {
            ready: None,
            stream,
        }
    }

    /// Blocks until the host accepts more bytes; returns how many.
    fn permitted(&mut self) -> io::Result<u64> {
        loop {
            match self.stream.check_write().map_err(stream_error)? {
                0 => self
                    .ready
                    .get_or_insert_with(|| self.stream.subscribe())
                    .block(),
                permitted => return Ok(permitted),
            }
        }
    }
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let permitted = usize::try_from(self.permitted()?).unwrap_or(usize::MAX);
        let len = buf.len().min(permitted);
        self.stream.write(&buf[..len]).map_err(stream_error)?;
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.blocking_flush().map_err(stream_error)
    }
}

fn stream_error(err: StreamError) -> io::Error {
    match err {
        StreamError::Closed => io::Error::new(io::ErrorKind::BrokenPipe, "stream closed"),
        StreamError::LastOperationFailed(err) => io::Error::other(err.to_debug_string()),
    }
}
