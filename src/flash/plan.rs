//! Pure arithmetic: which aligned byte ranges a device receives.

/// The mapped ranges rounded out to `block` (a power of two) and merged where rounding made them touch or
/// overlap, so that every write covers whole logical blocks and no block is written twice.
pub(crate) fn rounded_ranges(ranges: &[(u64, u64)], block: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(off, len) in ranges {
        if len == 0 {
            continue;
        }
        let start = off / block * block;
        let end = (off + len).div_ceil(block) * block;
        match out.last_mut() {
            Some((s, l)) if *s + *l >= start => *l = (*l).max(end - *s),
            _ => out.push((start, end - start)),
        }
    }
    out
}

/// The gaps between `rounded` ranges inside `[0, limit)`: what discard may release.
pub(crate) fn gaps(rounded: &[(u64, u64)], limit: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    for &(off, len) in rounded {
        if off > pos {
            out.push((pos, off.min(limit) - pos));
        }
        pos = pos.max(off + len);
    }
    if limit > pos {
        out.push((pos, limit - pos));
    }
    out.retain(|&(_, l)| l > 0);
    out
}

/// `(offset, len)` pieces of at most `chunk` bytes covering `ranges` in order.
pub(crate) fn chunks(ranges: &[(u64, u64)], chunk: u64) -> impl Iterator<Item = (u64, usize)> + '_ {
    ranges.iter().flat_map(move |&(off, len)| {
        let end = off + len;
        (off..end)
            .step_by(chunk as usize)
            .map(move |o| (o, (end - o).min(chunk) as usize))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_merges_ranges_that_share_a_block() {
        let r = rounded_ranges(&[(0, 1), (100, 10), (600, 1), (5000, 100)], 512);
        assert_eq!(r, vec![(0, 1024), (4608, 512)]);
        let r = rounded_ranges(&[(4095, 2), (8192, 4096)], 4096);
        assert_eq!(r, vec![(0, 12288)]);
        assert_eq!(rounded_ranges(&[(10, 0)], 512), vec![]);
    }

    #[test]
    fn gaps_are_the_complement_up_to_the_limit() {
        assert_eq!(
            gaps(&[(512, 512), (2048, 512)], 4096),
            vec![(0, 512), (1024, 1024), (2560, 1536)]
        );
        assert_eq!(gaps(&[(0, 4096)], 4096), vec![]);
        assert_eq!(gaps(&[], 1024), vec![(0, 1024)]);
    }

    #[test]
    fn chunks_cover_each_range_without_crossing_it() {
        let c: Vec<_> = chunks(&[(0, 10), (20, 3)], 4).collect();
        assert_eq!(c, vec![(0, 4), (4, 4), (8, 2), (20, 3)]);
    }
}
