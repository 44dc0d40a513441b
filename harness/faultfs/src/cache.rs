//! The write cache of one regular file: data and size changes that the
//! application has written but not yet made durable.
//!
//! The backing object of a file always holds exactly what a power cut would
//! leave behind. Everything newer lives here, as non-overlapping dirty
//! extents plus a visible size and a pending-truncate floor, and reads merge
//! it over the object. This module knows nothing about FUSE so that the
//! persistence rules can be tested on plain byte vectors.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::rng::SplitMix64;

/// Adjacent appends are merged into one extent up to this size, so a stream
/// of small sequential writes does not become millions of map entries, while
/// writeback can still flush old data without flushing everything.
const MERGE_LIMIT: usize = 1 << 20;

/// Where a file's durable bytes live. Implemented by the backing object file
/// and, in tests, by a byte vector.
pub(crate) trait Backing {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl Backing for File {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        FileExt::write_all_at(self, data, offset)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl Backing for Vec<u8> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let src = self.get(start..start + buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        if self.len() < start + data.len() {
            self.resize(start + data.len(), 0);
        }
        self[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.resize(usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?, 0);
        Ok(())
    }
}

/// How the last unsynced write of a file is torn at a power cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TornMode {
    /// A prefix of the write survives: of its `n` sectors, the first `k`
    /// persist with `k` drawn uniformly from `1..n` (so at least one sector is
    /// lost and, when `n >= 2`, at least one survives). A single-sector write
    /// is lost entirely.
    Prefix,
    /// Each sector of the write independently survives with probability 1/2,
    /// as on a disk that reorders sector writes.
    Sectors,
}

#[derive(Debug)]
struct Extent {
    data: Vec<u8>,
    /// Write sequence number of the oldest data in the extent; writeback
    /// flushes extents in this order.
    seq: u64,
}

/// The unsynced state of one regular file.
#[derive(Debug)]
pub(crate) struct FileCache {
    /// Length of the backing object, i.e. what survives a power cut.
    durable_len: u64,
    /// Length the application sees.
    size: u64,
    /// Durable bytes at or past this offset are hidden by a pending truncate;
    /// `u64::MAX` when no truncate is pending.
    trunc_floor: u64,
    extents: BTreeMap<u64, Extent>,
    dirty_bytes: u64,
    /// Offset and length of the most recent unsynced write, for torn writes.
    last_write: Option<(u64, u64)>,
    /// Data of writes whose `fsync` failed under
    /// [`FsyncFailure::Ext4`](crate::FsyncFailure::Ext4): readable, below
    /// the dirty extents, but never written to the object.
    stale: BTreeMap<u64, Extent>,
}

impl FileCache {
    pub(crate) fn new(durable_len: u64) -> Self {
        Self {
            durable_len,
            size: durable_len,
            trunc_floor: u64::MAX,
            extents: BTreeMap::new(),
            dirty_bytes: 0,
            last_write: None,
            stale: BTreeMap::new(),
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn dirty_bytes(&self) -> u64 {
        self.dirty_bytes
    }

    /// Whether a power cut would lose anything of this file.
    pub(crate) fn is_dirty(&self) -> bool {
        !self.extents.is_empty() || self.size != self.durable_len || self.trunc_floor != u64::MAX
    }

    /// Records a write of `data` at `offset`; `seq` orders writes for writeback.
    pub(crate) fn write(&mut self, offset: u64, data: &[u8], seq: u64) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        self.punch(offset, end);
        self.size = self.size.max(end);
        self.last_write = Some((offset, data.len() as u64));
        self.dirty_bytes += data.len() as u64;
        if let Some((&prev_off, prev)) = self.extents.range_mut(..offset).next_back()
            && prev_off + prev.data.len() as u64 == offset
            && prev.data.len() < MERGE_LIMIT
        {
            prev.data.extend_from_slice(data);
            return;
        }
        self.extents.insert(offset, Extent { data: data.to_vec(), seq });
    }

    /// Removes cached bytes in `[start, end)`, dirty and stale.
    fn punch(&mut self, start: u64, end: u64) {
        let (removed, added) = punch_extents(&mut self.extents, start, end);
        self.dirty_bytes = self.dirty_bytes - removed + added;
        if !self.stale.is_empty() {
            punch_extents(&mut self.stale, start, end);
        }
    }

    /// A failed `fsync` under ext4/XFS semantics: the dirty data is marked
    /// clean without reaching the object. It stays readable until the power
    /// is cut or the file system unmounted, and no later `fsync` writes it.
    /// Size changes stay pending, as the inode is still dirty.
    pub(crate) fn fail_clean(&mut self) {
        for (off, ext) in std::mem::take(&mut self.extents) {
            punch_extents(&mut self.stale, off, off + ext.data.len() as u64);
            self.stale.insert(off, ext);
        }
        self.dirty_bytes = 0;
        self.last_write = None;
    }

    /// A failed `fsync` under btrfs semantics: the file reverts to its
    /// durable contents and size.
    pub(crate) fn revert(&mut self) {
        *self = FileCache::new(self.durable_len);
    }

    /// Changes the visible size, as `ftruncate` does.
    pub(crate) fn truncate(&mut self, new_size: u64) {
        if new_size < self.size {
            self.punch(new_size, u64::MAX);
            if new_size < self.durable_len.min(self.trunc_floor) {
                self.trunc_floor = new_size;
            }
            self.last_write = self.last_write.and_then(|(off, len)| {
                let end = (off + len).min(new_size);
                (end > off).then(|| (off, end - off))
            });
        }
        self.size = new_size;
    }

    /// Reads what the application sees in `[offset, offset + len)`, clipped at
    /// the visible size.
    pub(crate) fn read(&self, backing: &mut (impl Backing + ?Sized), offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(len).min(self.size);
        if end <= offset {
            return Ok(Vec::new());
        }
        let mut buf = vec![0; usize::try_from(end - offset).map_err(|_| io::ErrorKind::InvalidInput)?];
        let base_end = end.min(self.durable_len).min(self.trunc_floor);
        if base_end > offset {
            let n = usize::try_from(base_end - offset).map_err(|_| io::ErrorKind::InvalidInput)?;
            backing.read_at(offset, &mut buf[..n])?;
        }
        let stale = slices_in(&self.stale, offset, end);
        for (off, data) in stale.chain(self.cached_in(offset, end)) {
            let at = usize::try_from(off - offset).map_err(|_| io::ErrorKind::InvalidInput)?;
            buf[at..at + data.len()].copy_from_slice(data);
        }
        Ok(buf)
    }

    /// How many leading bytes still come from the durable object: below
    /// both the durable length and any pending truncate, and within the size.
    pub(crate) fn base_visible_len(&self) -> u64 {
        self.durable_len.min(self.trunc_floor).min(self.size)
    }

    /// The byte ranges that are dirty, in offset order.
    pub(crate) fn dirty_ranges(&self) -> Vec<(u64, u64)> {
        self.extents.iter().map(|(&off, e)| (off, off + e.data.len() as u64)).collect()
    }

    /// The size when it differs from what is durable.
    pub(crate) fn pending_size(&self) -> Option<u64> {
        (self.size != self.durable_len).then_some(self.size)
    }

    /// Dirty slices that intersect `[start, end)`, clipped to it.
    fn cached_in(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, &[u8])> {
        slices_in(&self.extents, start, end)
    }

    /// Applies a pending truncate to the backing object.
    fn apply_truncate(&mut self, backing: &mut impl Backing) -> io::Result<()> {
        if self.trunc_floor < self.durable_len {
            backing.set_len(self.trunc_floor)?;
            self.durable_len = self.trunc_floor;
        }
        self.trunc_floor = u64::MAX;
        Ok(())
    }

    /// Makes everything durable: what `fsync` does. On error the cache keeps
    /// its data, so a retry writes it again.
    pub(crate) fn flush(&mut self, backing: &mut impl Backing) -> io::Result<()> {
        self.apply_truncate(backing)?;
        for (&off, ext) in &self.extents {
            backing.write_at(off, &ext.data)?;
            self.durable_len = self.durable_len.max(off + ext.data.len() as u64);
        }
        self.extents.clear();
        self.dirty_bytes = 0;
        if self.durable_len != self.size {
            backing.set_len(self.size)?;
            self.durable_len = self.size;
        }
        self.last_write = None;
        Ok(())
    }

    /// Writes the oldest extents back until at most `target` dirty bytes
    /// remain, as kernel writeback would under memory pressure. Returns the
    /// number of bytes written.
    pub(crate) fn writeback(&mut self, backing: &mut impl Backing, target: u64) -> io::Result<u64> {
        // The truncate is older than any data still cached past it, so it
        // must reach the object before that data does.
        self.apply_truncate(backing)?;
        let mut by_age: Vec<(u64, u64)> = self.extents.iter().map(|(&off, e)| (e.seq, off)).collect();
        by_age.sort_unstable();
        let mut written = 0;
        for (_, off) in by_age {
            if self.dirty_bytes <= target {
                break;
            }
            let Some(ext) = self.extents.remove(&off) else {
                continue;
            };
            if let Err(err) = backing.write_at(off, &ext.data) {
                self.extents.insert(off, ext);
                return Err(err);
            }
            let len = ext.data.len() as u64;
            self.durable_len = self.durable_len.max(off + len);
            self.dirty_bytes -= len;
            written += len;
        }
        Ok(written)
    }

    /// The parts of the last unsynced write that survive a power cut in
    /// `mode`, as (offset, bytes) pieces to write to the backing object.
    pub(crate) fn torn_pieces(&self, mode: TornMode, sector: u64, rng: &mut SplitMix64) -> Vec<(u64, Vec<u8>)> {
        let Some((offset, len)) = self.last_write else {
            return Vec::new();
        };
        let keep = torn_ranges(offset, len, sector, mode, rng);
        let mut out = Vec::new();
        for (lo, hi) in keep {
            for (off, data) in self.cached_in(lo, hi) {
                out.push((off, data.to_vec()));
            }
        }
        out
    }
}

/// Slices of `map` that intersect `[start, end)`, clipped to it.
fn slices_in(map: &BTreeMap<u64, Extent>, start: u64, end: u64) -> impl Iterator<Item = (u64, &[u8])> {
    let first = map.range(..=start).next_back().map_or(start, |(&off, _)| off);
    map.range(first..end).filter_map(move |(&off, ext)| {
        let ext_end = off + ext.data.len() as u64;
        let lo = off.max(start);
        let hi = ext_end.min(end);
        (lo < hi).then(|| {
            let a = usize::try_from(lo - off).unwrap_or(usize::MAX);
            let b = usize::try_from(hi - off).unwrap_or(usize::MAX);
            (lo, &ext.data[a..b])
        })
    })
}

/// Removes the bytes in `[start, end)` from `map`, splitting extents at the
/// edges. Returns the bytes removed and the bytes of the pieces re-added.
fn punch_extents(map: &mut BTreeMap<u64, Extent>, start: u64, end: u64) -> (u64, u64) {
    let (mut removed, mut added) = (0, 0);
    let mut pieces = Vec::new();
    let first = map.range(..start).next_back().map_or(start, |(&off, _)| off);
    let overlapping: Vec<u64> =
        map.range(first..end).filter(|(off, ext)| **off + ext.data.len() as u64 > start).map(|(&off, _)| off).collect();
    for off in overlapping {
        let Some(ext) = map.remove(&off) else {
            continue;
        };
        let ext_end = off + ext.data.len() as u64;
        removed += ext.data.len() as u64;
        if off < start {
            let keep = usize::try_from(start - off).unwrap_or(usize::MAX);
            pieces.push((off, ext.data[..keep].to_vec(), ext.seq));
        }
        if ext_end > end {
            let skip = usize::try_from(end - off).unwrap_or(usize::MAX);
            pieces.push((end, ext.data[skip..].to_vec(), ext.seq));
        }
    }
    for (off, data, seq) in pieces {
        added += data.len() as u64;
        map.insert(off, Extent { data, seq });
    }
    (removed, added)
}

/// Splits `[offset, offset + len)` at `sector`-aligned boundaries and picks
/// the sector ranges that survive a torn write.
pub(crate) fn torn_ranges(offset: u64, len: u64, sector: u64, mode: TornMode, rng: &mut SplitMix64) -> Vec<(u64, u64)> {
    let end = offset + len;
    let mut sectors = Vec::new();
    let mut lo = offset;
    while lo < end {
        let hi = ((lo / sector) + 1).saturating_mul(sector).min(end);
        sectors.push((lo, hi));
        lo = hi;
    }
    match mode {
        TornMode::Prefix => {
            let n = sectors.len() as u64;
            let k = if n >= 2 { 1 + rng.below(n - 1) } else { 0 };
            sectors.truncate(usize::try_from(k).unwrap_or(0));
            sectors
        }
        TornMode::Sectors => sectors.into_iter().filter(|_| rng.below(2) == 1).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible(cache: &FileCache, backing: &mut Vec<u8>) -> Vec<u8> {
        cache.read(backing, 0, u64::MAX).unwrap()
    }

    #[test]
    fn reads_merge_dirty_data_over_durable_bytes() {
        let mut backing = b"0123456789".to_vec();
        let mut cache = FileCache::new(10);
        cache.write(2, b"ab", 1);
        cache.write(8, b"xyz", 2);
        assert_eq!(visible(&cache, &mut backing), b"01ab4567xyz");
        assert_eq!(cache.read(&mut backing, 3, 6).unwrap(), b"b4567x");
        assert_eq!(backing, b"0123456789", "nothing reaches the object before fsync");
        assert_eq!(cache.dirty_bytes(), 5);
    }

    #[test]
    fn overlapping_writes_keep_the_newest_bytes() {
        let mut backing = Vec::new();
        let mut cache = FileCache::new(0);
        cache.write(0, b"aaaaaaaa", 1);
        cache.write(2, b"bb", 2);
        cache.write(6, b"cccc", 3);
        cache.write(1, b"d", 4);
        assert_eq!(visible(&cache, &mut backing), b"adbbaacccc");
        assert_eq!(cache.dirty_bytes(), 10);
    }

    #[test]
    fn flush_makes_data_and_size_durable() {
        let mut backing = b"0123456789".to_vec();
        let mut cache = FileCache::new(10);
        cache.write(12, b"zz", 1);
        cache.flush(&mut backing).unwrap();
        assert_eq!(backing, b"0123456789\0\0zz");
        assert!(!cache.is_dirty());
    }

    #[test]
    fn truncate_then_extend_reads_zeros_not_old_bytes() {
        let mut backing = b"0123456789".to_vec();
        let mut cache = FileCache::new(10);
        cache.truncate(3);
        cache.truncate(6);
        assert!(cache.is_dirty());
        assert_eq!(visible(&cache, &mut backing), b"012\0\0\0");
        cache.flush(&mut backing).unwrap();
        assert_eq!(backing, b"012\0\0\0");
    }

    #[test]
    fn truncate_drops_cached_bytes_past_the_end() {
        let mut backing = Vec::new();
        let mut cache = FileCache::new(0);
        cache.write(0, b"abcdef", 1);
        cache.truncate(2);
        cache.truncate(4);
        assert_eq!(visible(&cache, &mut backing), b"ab\0\0");
        assert_eq!(cache.dirty_bytes(), 2);
    }

    #[test]
    fn writeback_flushes_oldest_extents_first() {
        let mut backing = vec![b'.'; 8];
        let mut cache = FileCache::new(8);
        cache.write(6, b"C", 1);
        cache.write(0, b"A", 2);
        cache.write(3, b"B", 3);
        let written = cache.writeback(&mut backing, 1).unwrap();
        assert_eq!(written, 2);
        assert_eq!(backing, b"A.....C.", "the two oldest writes reach the object");
        assert_eq!(visible(&cache, &mut backing), b"A..B..C.");
    }

    #[test]
    fn torn_prefix_keeps_whole_leading_sectors_only() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..100 {
            let ranges = torn_ranges(100, 1000, 512, TornMode::Prefix, &mut rng);
            // Sectors: [100,512) [512,1024) [1024,1100); at least one is kept
            // and at least one lost.
            assert!(!ranges.is_empty() && ranges.len() < 3, "{ranges:?}");
            assert_eq!(ranges[0], (100, 512));
        }
        assert!(torn_ranges(0, 100, 512, TornMode::Prefix, &mut rng).is_empty());
    }

    #[test]
    fn failed_pages_stay_readable_but_are_never_written() {
        let mut backing = b"0123456789".to_vec();
        let mut cache = FileCache::new(10);
        cache.write(2, b"ab", 1);
        cache.fail_clean();
        assert_eq!(visible(&cache, &mut backing), b"01ab456789");
        assert!(!cache.is_dirty());
        cache.write(3, b"X", 2);
        cache.write(8, b"Y", 3);
        assert_eq!(visible(&cache, &mut backing), b"01aX4567Y9");
        cache.flush(&mut backing).unwrap();
        assert_eq!(backing, b"012X4567Y9", "only the later writes reached the object");
        assert_eq!(visible(&cache, &mut backing), b"01aX4567Y9", "the failed byte is still cached");
    }

    #[test]
    fn revert_returns_to_durable_contents() {
        let mut backing = b"0123".to_vec();
        let mut cache = FileCache::new(4);
        cache.truncate(1);
        cache.write(6, b"z", 1);
        cache.revert();
        assert_eq!(visible(&cache, &mut backing), b"0123");
        assert!(!cache.is_dirty());
    }

    #[test]
    fn torn_pieces_come_from_the_last_write() {
        let mut rng = SplitMix64::new(1);
        let mut cache = FileCache::new(0);
        cache.write(0, &[1; 4096], 1);
        cache.write(4096, &[2; 4096], 2);
        let pieces = cache.torn_pieces(TornMode::Prefix, 512, &mut rng);
        let total: usize = pieces.iter().map(|(_, d)| d.len()).sum();
        assert!(total > 0 && total < 4096 && total.is_multiple_of(512), "{total}");
        assert!(pieces.iter().all(|(off, d)| *off >= 4096 && d.iter().all(|&b| b == 2)));
    }
}
