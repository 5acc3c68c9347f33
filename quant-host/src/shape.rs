//! The shape of a row-major matrix with a row stride, validated once.

use crate::error::{QuantError, Result};

/// `rows x cols` elements, row `r` starting at element `r * row_stride`.
///
/// Constructed only through [`MatrixShape::new`] / [`MatrixShape::strided`],
/// which guarantee `row_stride >= cols` and that the extent fits in `usize`
/// (so every index computed from it is in range of a buffer of [`Self::extent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatrixShape {
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl MatrixShape {
    /// A dense matrix (`row_stride == cols`).
    pub fn new(rows: usize, cols: usize) -> Result<Self> {
        Self::strided(rows, cols, cols)
    }

    /// A matrix whose rows start `row_stride` elements apart.
    pub fn strided(rows: usize, cols: usize, row_stride: usize) -> Result<Self> {
        if row_stride < cols {
            return Err(QuantError::StrideTooSmall {
                stride: row_stride,
                cols,
            });
        }
        let shape = Self {
            rows,
            cols,
            row_stride,
        };
        shape
            .checked_extent()
            .ok_or(QuantError::TooLarge("rows * row_stride"))?;
        rows.checked_mul(cols)
            .ok_or(QuantError::TooLarge("rows * cols"))?;
        Ok(shape)
    }

    fn checked_extent(&self) -> Option<usize> {
        match self.rows {
            0 => Some(0),
            r => (r - 1).checked_mul(self.row_stride)?.checked_add(self.cols),
        }
    }

    /// Rows (M or N).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (K).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Elements between the starts of two consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Number of logical elements, `rows * cols`.
    pub fn numel(&self) -> usize {
        self.rows * self.cols
    }

    /// The smallest buffer length that holds the matrix: the last row need not
    /// be padded to the stride.
    pub fn extent(&self) -> usize {
        self.checked_extent().unwrap_or(usize::MAX)
    }

    /// Whether rows are contiguous.
    pub fn is_dense(&self) -> bool {
        self.row_stride == self.cols || self.rows <= 1
    }

    /// Checks that a buffer of `len` elements holds this matrix.
    pub fn check_buffer(&self, what: &'static str, len: usize) -> Result<()> {
        if len < self.extent() {
            return Err(QuantError::BufferLength {
                what,
                expected: self.extent() as u64,
                actual: len as u64,
            });
        }
        Ok(())
    }
}
