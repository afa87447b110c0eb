//! A set of bytes as a 256-entry table, for linear validators.

/// Membership of each of the 256 byte values.
pub(crate) struct ByteSet([bool; 256]);

impl ByteSet {
    /// The set of `members` plus every byte in the inclusive `ranges`.
    #[expect(
        clippy::indexing_slicing,
        reason = "a u8 always indexes a 256-entry table; loops are bounded by their slice"
    )]
    pub(crate) const fn new(members: &[u8], ranges: &[(u8, u8)]) -> Self {
        let mut t = [false; 256];
        let mut i = 0;
        while i < members.len() {
            t[members[i] as usize] = true;
            i += 1;
        }
        let mut r = 0;
        while r < ranges.len() {
            let (lo, hi) = ranges[r];
            let mut c = lo as usize;
            while c <= hi as usize {
                t[c] = true;
                c += 1;
            }
            r += 1;
        }
        Self(t)
    }

    /// Whether `b` is in the set.
    #[expect(
        clippy::indexing_slicing,
        reason = "a u8 always indexes a 256-entry table"
    )]
    #[inline]
    pub(crate) const fn contains(&self, b: u8) -> bool {
        self.0[b as usize]
    }
}
