//! What a disk image says about itself: its format (by magic), its virtual size, and the
//! backing file a qcow2 overlay names. A small parser of the public layouts, on bytes
//! the caller read through a descriptor it opened safely; fuzzed (`fuzz/image_header`).
//!
//! Every name it returns is attacker-controlled: `observe::chain` resolves it.

use std::io;
use std::os::fd::BorrowedFd;

/// Image formats told apart by their magic, as libvirt names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// No known magic: the bytes are the disk.
    Raw,
    /// QEMU copy-on-write v2/v3 (`QFI\xfb`).
    Qcow2,
    /// ISO 9660 (`CD001` in the first volume descriptor).
    Iso,
    /// VMware sparse extent (`KDMV`).
    Vmdk,
    /// VirtualBox (`0xbeda107f` at 0x40).
    Vdi,
    /// Hyper-V (`vhdxfile`).
    Vhdx,
}

impl Format {
    /// libvirt's name for it (`<format type=...>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Iso => "iso",
            Format::Vmdk => "vmdk",
            Format::Vdi => "vdi",
            Format::Vhdx => "vhdx",
        }
    }

    /// The format named `name`, for requests.
    pub fn from_name(name: &str) -> Option<Format> {
        [
            Format::Raw,
            Format::Qcow2,
            Format::Iso,
            Format::Vmdk,
            Format::Vdi,
            Format::Vhdx,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }
}

/// What an image's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Its format.
    pub format: Format,
    /// Its virtual size in bytes, when the header holds one (else the file's length is).
    pub capacity: Option<u64>,
    /// The backing file a qcow2 overlay names, as written (bytes, unresolved).
    pub backing: Option<Vec<u8>>,
    /// The backing file's format, when the overlay records it.
    pub backing_format: Option<String>,
}

/// Why a header cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A qcow2 header whose fields point outside what was read or make no sense.
    #[error("corrupt qcow2 header: {0}")]
    Corrupt(&'static str),
    /// A qcow2 image whose data lives in another file (never labeled for a guest).
    #[error("qcow2 image with an external data file")]
    ExternalData,
}

/// Where ISO 9660's "CD001" stands: in the first volume descriptor, at sector 16.
const ISO_MAGIC_AT: usize = 0x8001;
/// VDI's signature and disk size.
const VDI_SIGNATURE_AT: usize = 0x40;
const VDI_SIZE_AT: usize = 0x170;
/// qcow2's header extension holding the backing file's format.
const QCOW2_EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// qcow2's header extension naming an external data file.
const QCOW2_EXT_DATA_FILE: u32 = 0x4441_5441;
/// qcow2's incompatible feature bit for an external data file.
const QCOW2_INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Longest backing name qemu writes (PATH_MAX-ish; qemu refuses more than 1023).
const MAX_BACKING_NAME: usize = 1023;
/// How much of a file [`read`] looks at: the first qcow2 cluster up to 64 KiB holds
/// the header, its extensions and the backing name (qemu puts them there), and the ISO
/// magic sits at 32 KiB.
pub const HEAD_BYTES: usize = 64 * 1024;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

/// Parses the first bytes of an image (see [`HEAD_BYTES`]).
pub fn parse(head: &[u8]) -> Result<Header, HeaderError> {
    let plain = |format, capacity| Header {
        format,
        capacity,
        backing: None,
        backing_format: None,
    };
    if head.starts_with(b"QFI\xfb") {
        return parse_qcow2(head);
    }
    if head.starts_with(b"KDMV") {
        // Sparse extent header: capacity in 512-byte sectors at offset 12 (little endian).
        return Ok(plain(
            Format::Vmdk,
            le64(head, 12).and_then(|s| s.checked_mul(512)),
        ));
    }
    if head.starts_with(b"vhdxfile") {
        return Ok(plain(Format::Vhdx, None));
    }
    if le32(head, VDI_SIGNATURE_AT) == Some(0xbeda_107f) {
        return Ok(plain(Format::Vdi, le64(head, VDI_SIZE_AT)));
    }
    if head.get(ISO_MAGIC_AT..ISO_MAGIC_AT + 5) == Some(b"CD001") {
        return Ok(plain(Format::Iso, None));
    }
    Ok(plain(Format::Raw, None))
}

fn parse_qcow2(head: &[u8]) -> Result<Header, HeaderError> {
    use HeaderError::Corrupt;
    let version = be32(head, 4).ok_or(Corrupt("truncated"))?;
    if !(2..=3).contains(&version) {
        return Err(Corrupt("unknown version"));
    }
    let backing_offset = be64(head, 8).ok_or(Corrupt("truncated"))?;
    let backing_size = be32(head, 16).ok_or(Corrupt("truncated"))?;
    let cluster_bits = be32(head, 20).ok_or(Corrupt("truncated"))?;
    if !(9..=21).contains(&cluster_bits) {
        return Err(Corrupt("cluster size out of range"));
    }
    let size = be64(head, 24).ok_or(Corrupt("truncated"))?;
    let header_length = if version == 2 {
        72
    } else {
        let incompatible = be64(head, 72).ok_or(Corrupt("truncated"))?;
        if incompatible & QCOW2_INCOMPAT_DATA_FILE != 0 {
            return Err(HeaderError::ExternalData);
        }
        be32(head, 100).ok_or(Corrupt("truncated"))? as usize
    };
    if header_length < 72 || header_length > head.len() {
        return Err(Corrupt("header length out of range"));
    }
    let backing = match (backing_offset, backing_size) {
        (0, _) => None,
        (_, 0) => None,
        (offset, n) => {
            let n = n as usize;
            if n > MAX_BACKING_NAME {
                return Err(Corrupt("backing file name too long"));
            }
            let start = usize::try_from(offset).map_err(|_| Corrupt("backing offset"))?;
            let name = start
                .checked_add(n)
                .and_then(|end| head.get(start..end))
                .ok_or(Corrupt("backing file name outside the first cluster"))?;
            if name.contains(&0) {
                return Err(Corrupt("backing file name has a NUL byte"));
            }
            Some(name.to_vec())
        }
    };
    // Header extensions: (type, length, data padded to 8) up to type 0, before the
    // backing name.
    let end = match backing_offset {
        0 => head.len(),
        o => usize::try_from(o).unwrap_or(usize::MAX).min(head.len()),
    };
    let mut at = header_length;
    let mut backing_format = None;
    while at + 8 <= end {
        let kind = be32(head, at).ok_or(Corrupt("truncated extension"))?;
        let len = be32(head, at + 4).ok_or(Corrupt("truncated extension"))? as usize;
        if kind == 0 {
            break;
        }
        let data = head
            .get(at + 8..at + 8 + len)
            .filter(|_| at + 8 + len <= end)
            .ok_or(Corrupt("extension outside the header"))?;
        match kind {
            QCOW2_EXT_BACKING_FORMAT => {
                let text =
                    std::str::from_utf8(data).map_err(|_| Corrupt("backing format not UTF-8"))?;
                backing_format = Some(text.trim_end_matches('\0').to_owned());
            }
            QCOW2_EXT_DATA_FILE => return Err(HeaderError::ExternalData),
            _ => {}
        }
        at += 8 + len.next_multiple_of(8);
    }
    Ok(Header {
        format: Format::Qcow2,
        capacity: Some(size),
        backing,
        backing_format,
    })
}

/// Reads and parses the header of the file open at `fd` (a regular file): the first
/// 4 KiB, more of the first cluster only for a qcow2 whose header or backing name
/// lies beyond them, and the 5 bytes of the ISO magic.
pub fn read(fd: BorrowedFd<'_>) -> io::Result<Result<Header, HeaderError>> {
    let mut head = read_at(fd, 0, 4096)?;
    if head.starts_with(b"QFI\xfb") {
        if let Err(HeaderError::Corrupt(_)) = parse_qcow2(&head) {
            head = read_at(fd, 0, HEAD_BYTES)?;
        }
        return Ok(parse(&head));
    }
    if head.len() == 4096 {
        // Only the magic's bytes of the ISO volume descriptor, where parse looks.
        let iso = read_at(fd, ISO_MAGIC_AT as u64, 5)?;
        if iso == b"CD001" {
            head.resize(ISO_MAGIC_AT, 0);
            head.extend_from_slice(&iso);
        }
    }
    Ok(parse(&head))
}

/// Up to `len` bytes at `offset` (fewer at the end of the file).
fn read_at(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = rustix::io::pread(fd, &mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A qcow2 v3 header as qemu-img writes it, with an optional backing name/format.
    fn qcow2(size: u64, backing: Option<(&str, &str)>) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&size.to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        if let Some((name, fmt)) = backing {
            let mut at = 112;
            h[at..at + 4].copy_from_slice(&QCOW2_EXT_BACKING_FORMAT.to_be_bytes());
            h[at + 4..at + 8].copy_from_slice(&u32::try_from(fmt.len()).unwrap().to_be_bytes());
            h[at + 8..at + 8 + fmt.len()].copy_from_slice(fmt.as_bytes());
            at += 8 + fmt.len().next_multiple_of(8);
            at += 8; // the end extension (type 0)
            h[8..16].copy_from_slice(&(at as u64).to_be_bytes());
            h[16..20].copy_from_slice(&u32::try_from(name.len()).unwrap().to_be_bytes());
            h[at..at + name.len()].copy_from_slice(name.as_bytes());
        }
        h
    }

    #[test]
    fn qcow2_size_backing_and_format() {
        let h = parse(&qcow2(1 << 30, Some(("base.qcow2", "qcow2")))).unwrap();
        assert_eq!(h.format, Format::Qcow2);
        assert_eq!(h.capacity, Some(1 << 30));
        assert_eq!(h.backing.as_deref(), Some(&b"base.qcow2"[..]));
        assert_eq!(h.backing_format.as_deref(), Some("qcow2"));
        let plain = parse(&qcow2(4096, None)).unwrap();
        assert_eq!((plain.backing, plain.backing_format), (None, None));
    }

    #[test]
    fn corrupt_or_external_qcow2_is_refused() {
        let mut h = qcow2(1, Some(("base", "raw")));
        h[16..20].copy_from_slice(&5000u32.to_be_bytes());
        assert!(matches!(parse(&h), Err(HeaderError::Corrupt(_))));
        let mut h = qcow2(1, None);
        h[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        h[16..20].copy_from_slice(&4u32.to_be_bytes());
        assert!(matches!(parse(&h), Err(HeaderError::Corrupt(_))));
        let mut h = qcow2(1, None);
        h[72..80].copy_from_slice(&QCOW2_INCOMPAT_DATA_FILE.to_be_bytes());
        assert_eq!(parse(&h), Err(HeaderError::ExternalData));
        assert!(parse(b"QFI\xfb\0\0\0\x03").is_err());
    }

    #[test]
    fn other_formats_by_magic() {
        let mut iso = vec![0u8; 0x8010];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(parse(&iso).unwrap().format, Format::Iso);
        assert_eq!(parse(b"").unwrap().format, Format::Raw);
        assert_eq!(parse(&[0u8; 100]).unwrap().format, Format::Raw);
        let mut vmdk = vec![0u8; 512];
        vmdk[..4].copy_from_slice(b"KDMV");
        vmdk[12..20].copy_from_slice(&2048u64.to_le_bytes());
        assert_eq!(parse(&vmdk).unwrap().capacity, Some(1 << 20));
        assert_eq!(parse(b"vhdxfile....").unwrap().format, Format::Vhdx);
        let mut vdi = vec![0u8; 0x200];
        vdi[0x40..0x44].copy_from_slice(&0xbeda_107fu32.to_le_bytes());
        vdi[0x170..0x178].copy_from_slice(&(1u64 << 25).to_le_bytes());
        let h = parse(&vdi).unwrap();
        assert_eq!((h.format, h.capacity), (Format::Vdi, Some(1 << 25)));
    }
}
