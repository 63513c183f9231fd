//! Glue between `wasi:http/incoming-handler` and a handler function: turns the
//! host's request into a [`Request`], and the handler's [`Response`] into an
//! `outgoing-response` whose body is written after the head is sent.

use std::io::{self, Read, Write};

use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

use super::body::BodyWriter;
use super::fields;
use super::response::Body;
use super::{IntoResponse, Request, Response};

/// Size of the buffer a streamed body is copied through.
const STREAM_CHUNK: usize = 64 * 1024;

/// Runs `handler` for one incoming request and sends its response.
///
/// Called by the code [`http_handler!`](crate::http_handler) generates.
pub fn serve<R: IntoResponse>(
    request: IncomingRequest,
    response_out: ResponseOutparam,
    handler: impl FnOnce(Request) -> R,
) {
    let response = handler(Request::from_incoming(request)).into_response();
    respond(response, response_out);
}

/// A response head accepted by the host, with the body still to be written.
struct Prepared {
    head: OutgoingResponse,
    body: OutgoingBody,
    payload: Body,
}

fn respond(response: Response, response_out: ResponseOutparam) {
    let prepared = match prepare(response) {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("cloudware-sdk: {message}");
            match prepare(Response::text(500, format!("{message}\n"))) {
                Ok(prepared) => prepared,
                Err(message) => {
                    ResponseOutparam::set(
                        response_out,
                        Err(ErrorCode::InternalError(Some(message))),
                    );
                    return;
                }
            }
        }
    };
    let Prepared {
        head,
        body,
        payload,
    } = prepared;
    ResponseOutparam::set(response_out, Ok(head));

    let Ok(stream) = body.write() else {
        eprintln!("cloudware-sdk: response body stream was already taken");
        return;
    };
    let written = write_payload(BodyWriter::new(stream), payload);
    match written {
        Ok(()) => {
            if let Err(code) = OutgoingBody::finish(body, None) {
                eprintln!("cloudware-sdk: finishing the response body failed: {code:?}");
            }
        }
        // Dropping the body without `finish` tells the host the response is
        // incomplete, so the client never mistakes a truncated body for a
        // whole one.
        Err(err) => eprintln!("cloudware-sdk: response body aborted: {err}"),
    }
}

/// Builds the response head; an error names what the host rejected.
fn prepare(response: Response) -> Result<Prepared, String> {
    let (status, mut headers, payload) = response.into_parts();
    if let Body::Bytes(bytes) = &payload {
        let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
        if !bodiless && fields::find(&headers, "content-length").is_none() {
            headers.push((
                "content-length".to_owned(),
                bytes.len().to_string().into_bytes(),
            ));
        }
    }
    let fields = Fields::from_list(&headers).map_err(|err| {
        format!(
            "invalid response headers {:?}: {err}",
            header_names(&headers)
        )
    })?;
    let head = OutgoingResponse::new(fields);
    head.set_status_code(status)
        .map_err(|()| format!("invalid response status {status}"))?;
    let body = head
        .body()
        .map_err(|()| "response body was already taken".to_owned())?;
    Ok(Prepared {
        head,
        body,
        payload,
    })
}

fn header_names(headers: &[(String, Vec<u8>)]) -> Vec<&str> {
    headers.iter().map(|(name, _)| name.as_str()).collect()
}

/// Writes the whole payload, then flushes.
fn write_payload(mut writer: BodyWriter, payload: Body) -> io::Result<()> {
    match payload {
        Body::Bytes(bytes) => writer.write_all(&bytes)?,
        Body::Stream(mut reader) => copy_chunks(&mut reader, &mut writer)?,
    }
    writer.flush()
}

/// Copies `reader` to `writer` through one fixed buffer, so memory stays
/// bounded however long the stream is.
fn copy_chunks(reader: &mut dyn Read, writer: &mut impl Write) -> io::Result<()> {
    let mut buffer = vec![0; STREAM_CHUNK];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(len) => writer.write_all(&buffer[..len])?,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}
