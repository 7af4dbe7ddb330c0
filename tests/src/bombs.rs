//! Compression bombs for the resource-limit tests: small files that inflate to gigabytes.
//!
//! Compressing gigabytes of zeros in every test run would cost seconds, so a bomb is one
//! compressed MiB of zeros repeated: a deflate block flushed with a sync flush ends on a
//! byte boundary and refers to nothing before it, so copies of it can follow each other in
//! one stream.

use flate2::{Compress, Compression, Crc, FlushCompress};

const CHUNK: usize = 1 << 20;

/// A raw deflate stream that inflates to `mib` MiB of zeros.
pub fn deflate_zeros(mib: usize) -> Vec<u8> {
    let zeros = vec![0u8; CHUNK];
    let mut block = Vec::with_capacity(4096);
    let mut compress = Compress::new(Compression::best(), false);
    compress
        .compress_vec(&zeros, &mut block, FlushCompress::Sync)
        .expect("deflate");
    assert_eq!(
        compress.total_in(),
        CHUNK as u64,
        "the block holds the whole MiB"
    );
    let mut out = Vec::with_capacity(block.len() * mib + 16);
    for _ in 0..mib {
        out.extend_from_slice(&block);
    }
    // An empty final block ends the stream.
    let mut last = Vec::with_capacity(16);
    Compress::new(Compression::best(), false)
        .compress_vec(&[], &mut last, FlushCompress::Finish)
        .expect("deflate");
    out.extend_from_slice(&last);
    out
}

/// A gzip file (`Content-Encoding: gzip` body) that inflates to `mib` MiB of zeros, with a
/// correct trailer.
pub fn gzip_zeros(mib: usize) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&deflate_zeros(mib));
    let mut one = Crc::new();
    one.update(&vec![0u8; CHUNK]);
    let mut crc = Crc::new();
    for _ in 0..mib {
        crc.combine(&one);
    }
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&((mib as u64 * CHUNK as u64) as u32).to_le_bytes());
    out
}

/// A wheel whose `METADATA` starts like real metadata and then inflates to `mib` MiB of
/// zeros, while its zip directory claims a size of a few hundred bytes (a bomb that lies
/// about itself, so only inflating tells).
pub fn wheel_with_metadata_bomb(dist_info: &str, mib: usize) -> Vec<u8> {
    let name = format!("{dist_info}/METADATA");
    let data = deflate_zeros(mib);
    let claimed: u32 = 300;
    let mut out = Vec::new();
    // Local file header.
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes()); // version needed
    out.extend_from_slice(&0u16.to_le_bytes()); // flags
    out.extend_from_slice(&8u16.to_le_bytes()); // deflate
    out.extend_from_slice(&[0; 4]); // time, date
    out.extend_from_slice(&0u32.to_le_bytes()); // crc
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&claimed.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&data);
    let cd_offset = out.len() as u32;
    // Central directory entry.
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes()); // version made by
    out.extend_from_slice(&20u16.to_le_bytes()); // version needed
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&claimed.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes (2+2+2+2+4)
    out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    out.extend_from_slice(name.as_bytes());
    let cd_size = out.len() as u32 - cd_offset;
    // End of central directory.
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_bombs_inflate_to_what_they_say() {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip_zeros(3)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 3 << 20);
        assert!(out.iter().all(|&b| b == 0));
        let wheel = wheel_with_metadata_bomb("demo-1.0.dist-info", 2);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel)).unwrap();
        assert_eq!(
            archive.file_names().collect::<Vec<_>>(),
            ["demo-1.0.dist-info/METADATA"]
        );
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&deflate_zeros(2)[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated.len(), 2 << 20);
        drop(archive.by_index(0).unwrap());
    }
}
