//! Launch configurations shared by the kernel launchers, and the `launch!` macro.

use cudarc::driver::LaunchConfig;

/// Threads per block of 1-D launches (kernels/common.cuh: BLOCK).
pub const BLOCK: u32 = 256;
/// Rows per block of the batch-norm reductions (kernels/batchnorm.cu: BN_ROWS_PER_BLOCK).
pub const BN_ROWS_PER_BLOCK: u32 = 128;
/// Cap on the blocks of a grid-stride launch (the kernels loop over the rest).
const MAX_BLOCKS: u64 = 1 << 16;

/// A grid-stride launch over `n` items.
pub fn grid_1d(n: u64) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as u64).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// One warp per row, eight rows per block.
pub fn warp_per_row(rows: u32) -> LaunchConfig {
    let per_block = BLOCK / 32;
    LaunchConfig { grid_dim: (rows.div_ceil(per_block).max(1), 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// Column reductions: blocks of 32 columns × 8 row stripes; `ys` blocks down the rows, capped by
/// the grid limit (fold_rows and scatter_add_rows loop over the rest; the batch-norm reductions
/// assert that they fit).
pub fn column_blocks(cols: u32, ys: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (cols.div_ceil(32).max(1), ys.clamp(1, 65_535), 1),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    }
}

/// Launches kernel `$name` on `$dev`'s stream with the given arguments, panicking with the
/// driver's message if the launch fails (which may be an earlier kernel's fault: see error.rs).
macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
        use cudarc::driver::PushKernelArg;
        let name: String = $name;
        let cfg: cudarc::driver::LaunchConfig = $cfg;
        let f = $dev.function(&name);
        let mut b = $dev.stream().launch_builder(&f);
        $( b.arg($arg); )*
        unsafe { b.launch(cfg) }.unwrap_or_else(|e| {
            panic!("{}", $crate::cuda::error::launch_failure(&name, e.0, &$crate::cuda::error::describe(e.0)))
        });
    }};
}
pub(crate) use launch;

/// `name_f32` or `name_f64`.
pub fn kname<T: crate::real::Real>(name: &str) -> String {
    format!("{name}_{}", T::NAME)
}

/// A dimension as the kernels' 32-bit `unsigned int`, refusing sizes that would truncate.
pub fn dim(n: usize) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| panic!("dimension {n} exceeds the 32-bit range of the CUDA kernels"))
}
