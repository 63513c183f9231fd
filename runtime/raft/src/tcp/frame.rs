//! The wire format between peers: a `u32` big-endian length, then that many bytes of a
//! protobuf-encoded [`Message`] (protobuf 2, as raft-rs's `protobuf-codec` uses).

use raft::eraftpb::Message;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Default largest frame accepted or sent: 64 MiB. Raft's append messages are far smaller
/// (1 MiB per message by default); the bound is for snapshots, which carry the whole state.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed (including an end of stream inside a frame).
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The frame is larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a raft message.
    #[error("undecodable raft message: {0}")]
    Decode(String),
}

/// Appends `message` as one frame to `buf`; refuses messages over `max` bytes (leaving `buf`
/// unchanged).
pub fn encode_frame(message: &Message, max: usize, buf: &mut Vec<u8>) -> Result<(), FrameError> {
    let body = protobuf::Message::write_to_bytes(message)
        .map_err(|e| FrameError::Decode(format!("encoding failed: {e}")))?;
    if body.len() > max || u32::try_from(body.len()).is_err() {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max,
        });
    }
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    Ok(())
}

/// Reads one frame. Returns `Ok(None)` when the stream ends cleanly between frames; refuses a
/// frame whose announced length exceeds `max` before reading (or allocating) its body.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Message>, FrameError> {
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        let n = reader.read(&mut header[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        filled += n;
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    protobuf::Message::parse_from_bytes(&body)
        .map(Some)
        .map_err(|e| FrameError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, MessageType};

    fn message() -> Message {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgAppend);
        message.from = 1;
        message.to = 2;
        message.term = 7;
        let entry = Entry {
            index: 5,
            data: b"payload".to_vec().into(),
            ..Default::default()
        };
        message.entries = vec![entry].into();
        message
    }

    async fn read_all(bytes: &[u8], max: usize) -> Vec<Result<Option<Message>, String>> {
        let mut reader = bytes;
        let mut out = Vec::new();
        loop {
            let result = read_frame(&mut reader, max).await;
            let stop = !matches!(result, Ok(Some(_)));
            out.push(result.map_err(|e| e.to_string()));
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        encode_frame(&message(), MAX_FRAME_BYTES, &mut buf).unwrap();
        encode_frame(&Message::default(), MAX_FRAME_BYTES, &mut buf).unwrap();
        let frames = read_all(&buf, MAX_FRAME_BYTES).await;
        assert_eq!(
            frames,
            vec![Ok(Some(message())), Ok(Some(Message::default())), Ok(None)]
        );
    }

    #[tokio::test]
    async fn oversize_frames_are_refused_both_ways() {
        let mut buf = Vec::new();
        let err = encode_frame(&message(), 8, &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 8, .. }), "{err}");
        assert!(buf.is_empty());

        // A header announcing 4 GiB is refused without reading or allocating the body.
        let mut reader: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = read_frame(&mut reader, MAX_FRAME_BYTES).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len, .. } if len == u32::MAX as usize));
        // Just above a custom limit.
        let mut buf = Vec::new();
        encode_frame(&message(), MAX_FRAME_BYTES, &mut buf).unwrap();
        let body = buf.len() - 4;
        let mut reader = &buf[..];
        let err = read_frame(&mut reader, body - 1).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
    }

    #[tokio::test]
    async fn garbage_and_truncated_frames_are_refused() {
        let garbage = [0xffu8; 16];
        let mut buf = (garbage.len() as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&garbage);
        let mut reader = &buf[..];
        let err = read_frame(&mut reader, MAX_FRAME_BYTES).await.unwrap_err();
        assert!(matches!(err, FrameError::Decode(_)), "{err}");

        // End of stream inside the header, and inside the body.
        let mut reader: &[u8] = &[0, 0];
        let err = read_frame(&mut reader, MAX_FRAME_BYTES).await.unwrap_err();
        assert!(matches!(err, FrameError::Io(_)), "{err}");
        let mut buf = Vec::new();
        encode_frame(&message(), MAX_FRAME_BYTES, &mut buf).unwrap();
        let mut reader = &buf[..buf.len() - 1];
        let err = read_frame(&mut reader, MAX_FRAME_BYTES).await.unwrap_err();
        assert!(matches!(err, FrameError::Io(_)), "{err}");
    }
}
