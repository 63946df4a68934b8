//! Launch shapes of the CUDA kernels (`kernels/*.cu`): pure functions of the sizes,
//! outside the `cuda` feature's code so that the CPU emulation test
//! (`ops::emulation`) launches the kernels with exactly the shapes the host code
//! (`ops::cuda` and the ops' `cuda` modules) uses.

/// A launch's grid and block dimensions, `(x, y, z)` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaunchShape {
    /// Blocks of the grid.
    pub grid: (u32, u32, u32),
    /// Threads of a block.
    pub block: (u32, u32, u32),
}

impl LaunchShape {
    /// A one-dimensional grid of `blocks` blocks of `threads` threads.
    fn linear(blocks: u32, threads: u32) -> Self {
        Self {
            grid: (blocks, 1, 1),
            block: (threads, 1, 1),
        }
    }
}

/// Threads per block of the elementwise (grid-stride) kernels.
const ELEMENTWISE_BLOCK: u32 = 256;

/// Blocks of an elementwise launch at most (grid-stride loops cover the rest): enough to
/// fill any current GPU many times over.
pub(crate) const ELEMENTWISE_MAX_BLOCKS: usize = 1 << 16;

/// The launch of a grid-stride kernel over `n` elements.
pub(crate) fn elementwise(n: usize) -> LaunchShape {
    let blocks = n
        .div_ceil(ELEMENTWISE_BLOCK as usize)
        .clamp(1, ELEMENTWISE_MAX_BLOCKS);
    LaunchShape::linear(blocks as u32, ELEMENTWISE_BLOCK)
}

/// Threads per block for kernels that give each row of `width` values one block: a
/// multiple of 32 (whole warps, as `block_sum` needs), about four values per thread,
/// between 32 and 1024.
pub(crate) fn row_block(width: usize) -> u32 {
    (width.div_ceil(4).div_ceil(32) * 32).clamp(32, 1024) as u32
}

/// One block of [`row_block`] threads per row, or an error when `rows` exceed a grid.
pub(crate) fn per_row(rows: usize, width: usize) -> Result<LaunchShape, String> {
    let grid = u32::try_from(rows).map_err(|_| format!("{rows} rows exceed a CUDA grid"))?;
    Ok(LaunchShape::linear(grid, row_block(width)))
}

/// Rows per chunk of the norms' parameter-gradient column sums (at least; more when the
/// chunks would exceed a grid's y dimension): at rows = 16k, d = 2048 that is 128 chunks
/// x 64 column tiles = 8192 blocks of 256 threads, and a 2 MiB f32 partial buffer.
const ROWS_PER_CHUNK: usize = 128;

/// Largest grid y dimension.
const MAX_GRID_Y: usize = 65_535;

/// `(rows per chunk, chunks)` of `norm_param_partials` over `rows` rows.
pub(crate) fn norm_param_chunks(rows: usize) -> (usize, usize) {
    let per_chunk = ROWS_PER_CHUNK.max(rows.div_ceil(MAX_GRID_Y));
    (per_chunk, rows.div_ceil(per_chunk))
}

/// `norm_param_partials` over `d` columns in `chunks` chunks: blocks of 32 x 8 threads
/// (32 adjacent columns, 8 rows at a time), one per 32 columns and chunk.
pub(crate) fn norm_param_partials(d: usize, chunks: usize) -> LaunchShape {
    LaunchShape {
        grid: (d.div_ceil(32) as u32, chunks as u32, 1),
        block: (32, 8, 1),
    }
}

/// `norm_param_finish` over `width` (k d) columns: one thread per column.
pub(crate) fn norm_param_finish(width: usize) -> LaunchShape {
    LaunchShape::linear(width.div_ceil(256) as u32, 256)
}

/// Threads per block of the element-wise AdamW update.
const UPDATE_BLOCK: u32 = 256;

/// Blocks (of 256 threads) per gradient in the gradient norm's first stage; fixed so the
/// reduction's order does not depend on the device (must match `kernels/adamw.cu`).
pub(crate) const NORM_BLOCKS: usize = 256;

/// `adamw_step` over `n` elements: one thread per element, or an error when the blocks
/// exceed a grid.
pub(crate) fn adamw_update(n: usize) -> Result<LaunchShape, String> {
    let blocks = u32::try_from(n.div_ceil(UPDATE_BLOCK as usize))
        .map_err(|_| format!("adamw_update_cuda: {n} elements exceed a grid"))?;
    Ok(LaunchShape::linear(blocks, UPDATE_BLOCK))
}

/// `sq_norm_partials` of one gradient: [`NORM_BLOCKS`] blocks of 256 threads.
pub(crate) fn sq_norm_partials() -> LaunchShape {
    LaunchShape::linear(NORM_BLOCKS as u32, 256)
}

/// `sq_norm_finish`: one block of 1024 threads.
pub(crate) fn sq_norm_finish() -> LaunchShape {
    LaunchShape::linear(1, 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_cover_their_sizes() {
        assert_eq!(row_block(1), 32);
        assert_eq!(row_block(2048), 512);
        assert_eq!(row_block(128_256), 1024);
        assert_eq!(elementwise(0).grid.0, 1);
        assert_eq!(elementwise(257).grid.0, 2);
        assert_eq!(
            elementwise(ELEMENTWISE_MAX_BLOCKS * 256 + 1).grid.0 as usize,
            ELEMENTWISE_MAX_BLOCKS
        );
        assert_eq!(norm_param_chunks(1), (128, 1));
        assert_eq!(norm_param_chunks(129), (128, 2));
        let (per_chunk, chunks) = norm_param_chunks(10_000_000);
        assert!(chunks <= MAX_GRID_Y && per_chunk * chunks >= 10_000_000);
        assert!(per_row(1 << 33, 8).is_err());
    }
}
