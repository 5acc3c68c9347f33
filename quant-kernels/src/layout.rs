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
