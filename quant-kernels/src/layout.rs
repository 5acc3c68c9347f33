//! Where a group's scale is stored.

/// The memory layout of per-token-group scales of an `[M, G]` grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ScaleLayout {
    /// `[M, G]` row-major: `(m, g)` at `m * G + g`.
    #[default]
    RowMajor = 0,
    /// Column-major: `(m, g)` at `g * M + m`.
    ColMajor = 1,
    /// Column-major with the column height padded to a multiple of 4 (16 bytes),
    /// as TMA-based GEMMs load it: `(m, g)` at `g * align(M, 4) + m`.
    /// The padding rows are written as 0.
    ColMajorTmaAligned = 2,
}

impl ScaleLayout {
    /// All layouts, for iteration in tests and benchmarks.
    pub const ALL: [ScaleLayout; 3] = [ScaleLayout::RowMajor, ScaleLayout::ColMajor, ScaleLayout::ColMajorTmaAligned];

    /// The layout's name as users write it.
    pub const fn name(self) -> &'static str {
        match self {
            ScaleLayout::RowMajor => "row-major",
            ScaleLayout::ColMajor => "col-major",
            ScaleLayout::ColMajorTmaAligned => "col-major-tma",
        }
    }

    /// The layout named `name`, exactly as [`Self::name`] writes it; `None`
    /// for any other string. Host only (it would be
    /// emitted into the PTX, unused).
    #[cfg(not(target_arch = "nvptx64"))]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Number of rows the layout stores per column: `M`, or `M` rounded up to 4.
    #[inline(always)]
    pub const fn padded_rows(self, rows: u64) -> u64 {
        match self {
            ScaleLayout::ColMajorTmaAligned => rows.div_ceil(4) * 4,
            _ => rows,
        }
    }

    /// Number of f32 elements the scale buffer must hold for `rows x groups`.
    #[inline(always)]
    pub const fn len(self, rows: u64, groups: u64) -> u64 {
        self.padded_rows(rows) * groups
    }

    /// [`Self::len`] with overflow reported as `None` instead of wrapping, for
    /// hosts that validate untrusted shapes (`rows` near `u64::MAX` would
    /// overflow the rounding up to a multiple of 4).
    #[inline(always)]
    pub const fn checked_len(self, rows: u64, groups: u64) -> Option<u64> {
        let padded = match self {
            ScaleLayout::ColMajorTmaAligned => match rows.checked_next_multiple_of(4) {
                Some(p) => p,
                None => return None,
            },
            _ => rows,
        };
        padded.checked_mul(groups)
    }

    /// Offset of the scale of row `m`, group `g`.
    #[inline(always)]
    pub const fn index(self, m: u64, g: u64, rows: u64, groups: u64) -> u64 {
        match self {
            ScaleLayout::RowMajor => m * groups + g,
            ScaleLayout::ColMajor => g * rows + m,
            ScaleLayout::ColMajorTmaAligned => g * self.padded_rows(rows) + m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for layout in ScaleLayout::ALL {
            assert_eq!(ScaleLayout::from_name(layout.name()), Some(layout));
        }
        assert_eq!(ScaleLayout::from_name("col-major-TMA"), None);
        assert_eq!(ScaleLayout::from_name("colmajor"), None);
    }

    #[test]
    fn checked_len_matches_len_and_catches_overflow() {
        for layout in ScaleLayout::ALL {
            for rows in 0..9 {
                assert_eq!(layout.checked_len(rows, 3), Some(layout.len(rows, 3)));
            }
        }
        // Rounding u64::MAX up to a multiple of 4 overflows.
        assert_eq!(ScaleLayout::ColMajorTmaAligned.checked_len(u64::MAX, 0), None);
        assert_eq!(ScaleLayout::RowMajor.checked_len(u64::MAX, 0), Some(0));
        assert_eq!(ScaleLayout::RowMajor.checked_len(u64::MAX, 2), None);
    }

    #[test]
    fn tma_padding_rows_follow_the_data() {
        let l = ScaleLayout::ColMajorTmaAligned;
        assert_eq!(l.padded_rows(5), 8);
        assert_eq!(l.index(4, 1, 5, 2), 12);
        assert_eq!(ScaleLayout::ColMajor.index(4, 1, 5, 2), 9);
        assert_eq!(ScaleLayout::RowMajor.index(4, 1, 5, 2), 9);
    }
}
