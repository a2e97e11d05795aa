//! The spool's on-disk format: an append-only log of framed, checksummed records, and a cursor
//! file holding how far the log has been replayed into storage.
//!
//! A frame is `len: u32 LE | crc32(body): u32 LE | body`. A body is one mailbox record:
//! `mailbox len: u16 | mailbox | idempotency len: u16 | idempotency | rank: u8 | require_ack: u8
//! | expires_ms: i64 | id (26 bytes) | record bytes`. A frame whose length runs past the end of
//! the file or whose checksum does not match is a torn write of a crash: it was never
//! acknowledged (the answer waits for the fsync), so it and anything after it are dropped.
//!
//! The cursor is `offset: u64 LE | !offset: u64 LE`, rewritten in place and fsynced after each
//! replayed batch. A cursor that does not check out (or lies past the log's end) counts as 0:
//! replaying from the start again is safe, because storage answers a message id it already
//! holds as a duplicate.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use crate::storage::{DeliveryMeta, NewRecord};

/// Bytes of a frame's header.
pub const HEADER: usize = 8;
/// Width of a message id (a ULID string).
const ID_LEN: usize = 26;

/// One spooled record: which mailbox it goes to, and the record as the writer would append it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub mailbox: String,
    pub record: NewRecord,
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC: [u32; 256] = crc_table();

/// CRC-32 (IEEE), the checksum of each frame.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in bytes {
        c = CRC[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Option<()> {
    out.extend_from_slice(&u16::try_from(s.len()).ok()?.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Some(())
}

/// Appends the frame of `entry` to `out`; `None` if a name is too long to frame (never for a
/// validated mailbox name or idempotency key).
pub fn frame(out: &mut Vec<u8>, mailbox: &str, r: &NewRecord) -> Option<()> {
    let mut body = Vec::with_capacity(64 + r.record.len());
    put_str(&mut body, mailbox)?;
    put_str(&mut body, r.idempotency.as_deref().unwrap_or(""))?;
    body.push(r.delivery.rank);
    body.push(u8::from(r.delivery.require_ack));
    body.extend_from_slice(&r.delivery.expires_ms.to_le_bytes());
    if r.id.len() != ID_LEN {
        return None;
    }
    body.extend_from_slice(r.id.as_bytes());
    body.extend_from_slice(&r.record);
    out.extend_from_slice(&u32::try_from(body.len()).ok()?.to_le_bytes());
    out.extend_from_slice(&crc32(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Some(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn str(&mut self) -> Option<String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Decodes a frame body (its checksum already checked).
fn unframe(body: &[u8]) -> Option<Entry> {
    let mut r = Reader(body);
    let mailbox = r.str()?;
    let idem = r.str()?;
    let rank = r.take(1)?[0];
    let require_ack = r.take(1)?[0] == 1;
    let expires_ms = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let id = String::from_utf8(r.take(ID_LEN)?.to_vec()).ok()?;
    Some(Entry {
        mailbox,
        record: NewRecord {
            id,
            record: r.0.to_vec(),
            idempotency: (!idem.is_empty()).then_some(idem),
            delivery: DeliveryMeta {
                rank,
                require_ack,
                expires_ms,
            },
        },
    })
}

/// What a scan of the log found: whole entries with the offset just past each, and where the
/// valid part of the log ends (a torn tail starts there).
pub struct Scan {
    pub entries: Vec<(Entry, u64)>,
    pub end: u64,
}

/// Reads whole frames from `from`, at most `max` entries or about `max_bytes` bytes.
pub fn scan(file: &mut File, from: u64, max: usize, max_bytes: usize) -> std::io::Result<Scan> {
    file.seek(SeekFrom::Start(from))?;
    let mut entries = Vec::new();
    let mut at = from;
    let mut bytes = 0;
    let mut header = [0u8; HEADER];
    while entries.len() < max && bytes < max_bytes {
        if read_full(file, &mut header)? < HEADER {
            break;
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut body = vec![0u8; len];
        if read_full(file, &mut body)? < len || crc32(&body) != crc {
            break;
        }
        let Some(entry) = unframe(&body) else { break };
        at += (HEADER + len) as u64;
        bytes += HEADER + len;
        entries.push((entry, at));
    }
    Ok(Scan { entries, end: at })
}

/// Reads until `buf` is full or the file ends; answers how many bytes were read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads the replay cursor; a missing or damaged one is 0.
pub fn read_cursor(file: &mut File) -> u64 {
    let mut b = [0u8; 16];
    if file.seek(SeekFrom::Start(0)).is_err() || read_full(file, &mut b).ok() != Some(16) {
        return 0;
    }
    let (a, c) = b.split_at(8);
    let off = u64::from_le_bytes(a.try_into().unwrap_or_default());
    let check = u64::from_le_bytes(c.try_into().unwrap_or_default());
    if off == !check {
        off
    } else {
        0
    }
}

/// Rewrites the replay cursor and fsyncs it.
pub fn write_cursor(file: &mut File, offset: u64) -> std::io::Result<()> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&offset.to_le_bytes());
    b[8..].copy_from_slice(&(!offset).to_le_bytes());
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&b)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: u8) -> NewRecord {
        NewRecord {
            id: crate::model::new_id(),
            record: vec![n; 40],
            idempotency: n.is_multiple_of(2).then(|| format!("alice:k{n}")),
            delivery: DeliveryMeta {
                rank: 1,
                require_ack: !n.is_multiple_of(2),
                expires_ms: 7,
            },
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn frames_round_trip_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let mut bytes = Vec::new();
        let recs: Vec<_> = (0..3).map(rec).collect();
        for r in &recs {
            frame(&mut bytes, "bob", r).expect("frames");
        }
        let whole = bytes.len() as u64;
        // A torn fourth frame: its header promises more than was written.
        frame(&mut bytes, "bob", &rec(9)).expect("frames");
        bytes.truncate(whole as usize + 20);
        std::fs::write(&path, &bytes).expect("write");
        let mut f = File::open(&path).expect("open");
        let s = scan(&mut f, 0, 100, usize::MAX).expect("scan");
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.end, whole);
        for ((e, _), r) in s.entries.iter().zip(&recs) {
            assert_eq!(e.mailbox, "bob");
            assert_eq!(e.record.id, r.id);
            assert_eq!(e.record.record, r.record);
            assert_eq!(e.record.idempotency, r.idempotency);
            assert_eq!(e.record.delivery, r.delivery);
        }
        // A flipped byte in the second frame ends the valid log after the first.
        let first = s.entries[0].1 as usize;
        bytes[first + HEADER + 3] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let mut f = File::open(&path).expect("open");
        let s = scan(&mut f, 0, 100, usize::MAX).expect("scan");
        assert_eq!((s.entries.len(), s.end), (1, first as u64));
    }

    #[test]
    fn a_damaged_cursor_reads_as_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cursor");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .expect("open");
        assert_eq!(read_cursor(&mut f), 0);
        write_cursor(&mut f, 4242).expect("write");
        assert_eq!(read_cursor(&mut f), 4242);
        f.seek(SeekFrom::Start(2)).expect("seek");
        f.write_all(&[0xff]).expect("write");
        assert_eq!(read_cursor(&mut f), 0);
    }
}
