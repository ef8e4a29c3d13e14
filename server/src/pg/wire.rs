//! The PostgreSQL wire format as the gateway reads it: a bounds-checked reader over one whole
//! frame (tag and length included), and the few messages whose fields the gateway inspects.
//!
//! Every read returns `None` past the end of the frame instead of panicking: frames come from
//! the network. Text fields are returned as bytes; how they are decoded is the caller's choice
//! (statement text in the session's encoding, `encoding.rs`; names for display, lossily).
//!
//! Architecture invariant: pure; no I/O. Frames are written by `codec.rs` alone.

use crate::masking::plan::Field;

/// Reads the fields of one frame in order.
pub struct Reader<'a> {
    frame: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of the frame's body (after the tag and length).
    pub fn body(frame: &'a [u8]) -> Self {
        Reader { frame, pos: 5 }
    }

    /// A reader at `pos` of the frame.
    pub fn at(frame: &'a [u8], pos: usize) -> Self {
        Reader { frame, pos }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// A NUL-terminated string's bytes.
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.frame.get(self.pos..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        self.pos += end + 1;
        Some(&rest[..end])
    }

    /// A NUL-terminated string, invalid UTF-8 replaced: for names shown or matched, never for
    /// text the gateway decides on.
    pub fn cstr_lossy(&mut self) -> Option<String> {
        self.cstr().map(|b| String::from_utf8_lossy(b).into_owned())
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.frame.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    pub fn i16(&mut self) -> Option<i16> {
        self.bytes(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Option<i32> {
        self.bytes(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count (Int16) that must not be negative.
    pub fn count(&mut self) -> Option<usize> {
        usize::try_from(self.i16()?).ok()
    }
}

/// A DataRow's values in column order (`None` for NULL); `None` when the frame is malformed
/// (a length past its end, a negative count).
pub fn data_row(frame: &[u8]) -> Option<Vec<Option<&[u8]>>> {
    let mut r = Reader::body(frame);
    let n = r.count()?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.i32()?;
        values.push(match usize::try_from(len) {
            Ok(len) => Some(r.bytes(len)?),
            Err(_) => None,
        });
    }
    Some(values)
}

/// How many columns a DataRow carries (its first field), without reading them.
pub fn data_row_width(frame: &[u8]) -> Option<usize> {
    Reader::body(frame).count()
}

/// How many columns a CopyOutResponse announces (after its overall format byte).
pub fn copy_out_width(frame: &[u8]) -> Option<usize> {
    let mut r = Reader::body(frame);
    r.u8()?;
    r.count()
}

/// The bytes of the NUL-terminated string at `*pos`, advancing past it.
pub fn cstr_at<'a>(frame: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let mut r = Reader::at(frame, *pos);
    let s = r.cstr()?;
    *pos = r.pos();
    Some(s)
}

/// The (code, value) fields of an ErrorResponse/NoticeResponse frame.
pub fn error_fields(frame: &[u8]) -> Vec<(u8, String)> {
    let mut r = Reader::body(frame);
    let mut out = Vec::new();
    while let Some(k) = r.u8() {
        if k == 0 {
            break;
        }
        match r.cstr_lossy() {
            Some(v) => out.push((k, v)),
            None => break,
        }
    }
    out
}

/// The fields of a RowDescription frame. A name that is not valid UTF-8 (PostgreSQL truncates
/// a 63-byte name mid-character) is kept lossily: the column is still described, never
/// dropped from the plan.
pub fn row_description(frame: &[u8]) -> Option<Vec<Field>> {
    let mut r = Reader::body(frame);
    let n = r.i16()? as u16 as usize;
    let mut out = Vec::with_capacity(n.min(1664));
    for _ in 0..n {
        let name = r.cstr_lossy()?;
        let table_oid = r.u32()?;
        let attnum = r.i16()?;
        let type_oid = r.u32()?;
        r.bytes(6)?; // type size, type modifier
        let format = r.i16()?;
        out.push(Field {
            name,
            table_oid,
            attnum,
            type_oid,
            format,
        });
    }
    Some(out)
}

/// The name and value of a ParameterStatus frame.
pub fn parameter_status(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut r = Reader::body(frame);
    Some((r.cstr()?, r.cstr()?))
}

/// The result format codes at the end of a Bind frame (`pos` is just past the statement name).
pub fn bind_result_formats(frame: &[u8], pos: usize) -> Option<Vec<i16>> {
    let mut r = Reader::at(frame, pos);
    let nfmt = r.count()?;
    r.bytes(2 * nfmt)?;
    for _ in 0..r.count()? {
        let len = r.i32()?;
        r.bytes(usize::try_from(len).unwrap_or(0))?;
    }
    (0..r.count()?).map(|_| r.i16()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pg::codec::frame;

    #[test]
    fn truncated_frames_read_as_none_not_panics() {
        let f = frame(b'T', &[0, 2, b'a', 0, 1, 2]);
        assert_eq!(row_description(&f), None);
        assert_eq!(parameter_status(&frame(b'S', b"client_encoding")), None);
        assert_eq!(bind_result_formats(&frame(b'B', &[0, 5]), 5), None);
        let mut r = Reader::body(&f);
        assert!(r.bytes(usize::MAX).is_none());
        // A value length past the end of the DataRow.
        assert_eq!(data_row(&frame(b'D', &[0, 1, 0, 0, 0, 9, b'x'])), None);
        assert_eq!(data_row(&frame(b'D', &[255, 255])), None);
    }

    #[test]
    fn data_rows_read_values_and_nulls() {
        let f = frame(
            b'D',
            &[0, 3, 0, 0, 0, 2, b'h', b'i', 255, 255, 255, 255, 0, 0, 0, 0],
        );
        assert_eq!(
            data_row(&f),
            Some(vec![Some(&b"hi"[..]), None, Some(&b""[..])])
        );
        assert_eq!(data_row_width(&f), Some(3));
        assert_eq!(
            copy_out_width(&frame(b'H', &[0, 0, 2, 0, 0, 0, 0])),
            Some(2)
        );
    }

    #[test]
    fn a_name_cut_mid_character_still_describes_its_column() {
        let mut body = vec![0, 1];
        body.extend_from_slice(b"e\xc3");
        body.push(0);
        body.extend_from_slice(&[
            0, 0, 0, 7, 0, 2, 0, 0, 0, 25, 255, 255, 255, 255, 255, 255, 0, 0,
        ]);
        let fields = row_description(&frame(b'T', &body)).unwrap();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].table_oid, 7);
        assert_eq!(fields[0].attnum, 2);
        assert_eq!(fields[0].type_oid, 25);
    }

    #[test]
    fn bind_formats_follow_the_parameters() {
        // portal "", statement "s": 1 param format, 2 params (one NULL), 2 result formats.
        let mut body = b"\0s\0".to_vec();
        body.extend_from_slice(&[0, 1, 0, 1, 0, 2]);
        body.extend_from_slice(&[0, 0, 0, 2, b'h', b'i', 255, 255, 255, 255]);
        body.extend_from_slice(&[0, 2, 0, 1, 0, 0]);
        assert_eq!(
            bind_result_formats(&frame(b'B', &body), 8),
            Some(vec![1, 0])
        );
    }

    proptest::proptest! {
        /// Frames come from the network: no byte string makes a reader panic.
        #[test]
        fn any_bytes_read_without_panicking(tag in 0u8..=255, body in proptest::collection::vec(0u8..=255, 0..64)) {
            let f = frame(tag, &body);
            let _ = error_fields(&f);
            let _ = row_description(&f);
            let _ = parameter_status(&f);
            let _ = data_row(&f);
            let _ = copy_out_width(&f);
            for pos in 0..f.len() + 2 {
                let _ = bind_result_formats(&f, pos);
                let mut p = pos;
                let _ = cstr_at(&f, &mut p);
            }
            let _ = crate::pg::function_call::statement(&f);
        }
    }
}
