//! Batch norm's CUDA launchers (kernels/batchnorm.cu), tested against the CPU reference.

use super::types::{BnAffine, BnGrads, BnStats, RunningStats};
use crate::cuda::CudaBuffer;
use crate::cuda::launch::{BN_ROWS_PER_BLOCK, column_blocks, dim, grid_1d, kname, launch};
use crate::real::Real;

fn row_blocks(rows: usize) -> u32 {
    let b = (dim(rows)).div_ceil(BN_ROWS_PER_BLOCK);
    assert!(b <= 65_535, "batch norm over {rows} rows exceeds the grid of kernels/batchnorm.cu");
    b
}

/// The row weights as a kernel argument: the buffer and 1, or a one-element stand-in and 0.
fn weight_arg<'a, T: Real>(
    weights: Option<&'a CudaBuffer<T>>,
    stand_in: &'a CudaBuffer<T>,
) -> (&'a CudaBuffer<T>, i32) {
    match weights {
        Some(w) => (w, 1),
        None => (stand_in, 0),
    }
}

pub fn forward_train<T: Real>(
    rows: usize,
    cols: usize,
    x: &CudaBuffer<T>,
    weights: Option<&CudaBuffer<T>>,
    affine: BnAffine<CudaBuffer<T>>,
    y: &mut CudaBuffer<T>,
    mean: &mut CudaBuffer<T>,
    rstd: &mut CudaBuffer<T>,
    running: Option<RunningStats<CudaBuffer<T>>>,
) {
    let dev = x.device().clone();
    let (r, c, rb) = (dim(rows), dim(cols), row_blocks(rows));
    let stand_in = dev.alloc::<T>(1);
    let (w, weighted) = weight_arg(weights, &stand_in);
    let (mut p1, mut p2) = (dev.scratch_f64(rb as usize * cols), dev.scratch_f64(rb as usize * cols));
    launch!(
        dev,
        kname::<T>("bn_moments"),
        column_blocks(c, rb),
        &x.slice,
        &w.slice,
        &weighted,
        &mut p1.slice,
        &mut p2.slice,
        &r,
        &c
    );
    let (mut scale, mut offset) = (dev.alloc::<T>(cols), dev.alloc::<T>(cols));
    let (mut dummy_m, mut dummy_v) = (dev.alloc::<T>(1), dev.alloc::<T>(1));
    let (update, momentum) = (running.is_some() as i32, running.as_ref().map_or(0.0, |r| r.momentum));
    let (run_mean, run_var) = match running {
        Some(r) => (&mut r.mean.slice, &mut r.var.slice),
        None => (&mut dummy_m.slice, &mut dummy_v.slice),
    };
    launch!(
        dev,
        kname::<T>("bn_finalize"),
        grid_1d(cols as u64),
        &p1.slice,
        &p2.slice,
        &rb,
        &x.slice,
        &w.slice,
        &weighted,
        &affine.gamma.slice,
        &affine.beta.slice,
        &mut mean.slice,
        &mut rstd.slice,
        &mut scale.slice,
        &mut offset.slice,
        run_mean,
        run_var,
        &r,
        &c,
        &affine.eps,
        &momentum,
        &update
    );
    apply(x, &scale, &offset, y, rows, cols, affine.relu);
}

/// y = max(0?, x·scale + offset) with per-column scale and offset.
fn apply<T: Real>(
    x: &CudaBuffer<T>,
    scale: &CudaBuffer<T>,
    offset: &CudaBuffer<T>,
    y: &mut CudaBuffer<T>,
    rows: usize,
    cols: usize,
    relu: bool,
) {
    let dev = x.device().clone();
    let (r, c, relu) = (dim(rows), dim(cols), relu as i32);
    launch!(
        dev,
        kname::<T>("bn_apply"),
        grid_1d((rows * cols) as u64),
        &x.slice,
        &scale.slice,
        &offset.slice,
        &mut y.slice,
        &r,
        &c,
        &relu
    );
}

pub fn forward_eval<T: Real>(
    rows: usize,
    cols: usize,
    x: &CudaBuffer<T>,
    affine: BnAffine<CudaBuffer<T>>,
    running_mean: &CudaBuffer<T>,
    running_var: &CudaBuffer<T>,
    y: &mut CudaBuffer<T>,
) {
    let dev = x.device().clone();
    let c = dim(cols);
    let (mut scale, mut offset) = (dev.alloc::<T>(cols), dev.alloc::<T>(cols));
    launch!(
        dev,
        kname::<T>("bn_eval_affine"),
        grid_1d(cols as u64),
        &affine.gamma.slice,
        &affine.beta.slice,
        &running_mean.slice,
        &running_var.slice,
        &mut scale.slice,
        &mut offset.slice,
        &c,
        &affine.eps
    );
    apply(x, &scale, &offset, y, rows, cols, affine.relu);
}

pub fn backward<T: Real>(
    rows: usize,
    cols: usize,
    g: &CudaBuffer<T>,
    x: &CudaBuffer<T>,
    weights: Option<&CudaBuffer<T>>,
    affine: BnAffine<CudaBuffer<T>>,
    stats: BnStats<CudaBuffer<T>>,
    grads: BnGrads<CudaBuffer<T>>,
) {
    let dev = x.device().clone();
    let stand_in = dev.alloc::<T>(1);
    let (w, weighted) = weight_arg(weights, &stand_in);
    let (r, c, relu) = (dim(rows), dim(cols), affine.relu as i32);
    let (mean, stat, running) = match stats {
        BnStats::Batch { mean, rstd } => (mean, rstd, 0i32),
        BnStats::Running { mean, var } => (mean, var, 1i32),
    };
    let batch = 1 - running;
    let (mut scale, mut offset, mut rr) = (dev.alloc::<T>(cols), dev.alloc::<T>(cols), dev.alloc::<T>(cols));
    launch!(
        dev,
        kname::<T>("bn_backward_affine"),
        grid_1d(cols as u64),
        &affine.gamma.slice,
        &affine.beta.slice,
        &mean.slice,
        &stat.slice,
        &mut scale.slice,
        &mut offset.slice,
        &mut rr.slice,
        &c,
        &affine.eps,
        &running
    );
    let (mut mean_g, mut mean_gx) = (dev.alloc::<T>(cols), dev.alloc::<T>(cols));
    let need_sums = grads.dgamma.is_some() || grads.dbeta.is_some() || (batch == 1 && grads.dx.is_some());
    if need_sums {
        let rb = row_blocks(rows);
        let (mut pg, mut pgx) = (dev.scratch_f64(rb as usize * cols), dev.scratch_f64(rb as usize * cols));
        launch!(
            dev,
            kname::<T>("bn_backward_sums"),
            column_blocks(c, rb),
            &g.slice,
            &x.slice,
            &scale.slice,
            &offset.slice,
            &mean.slice,
            &rr.slice,
            &mut pg.slice,
            &mut pgx.slice,
            &r,
            &c,
            &relu
        );
        let (mut dummy_g, mut dummy_b) = (dev.alloc::<T>(1), dev.alloc::<T>(1));
        let (want_g, acc_g) = grads.dgamma.as_ref().map_or((0, 0), |o| (1, o.accumulate as i32));
        let (want_b, acc_b) = grads.dbeta.as_ref().map_or((0, 0), |o| (1, o.accumulate as i32));
        let dgamma = match grads.dgamma {
            Some(o) => &mut o.buf.slice,
            None => &mut dummy_g.slice,
        };
        let dbeta = match grads.dbeta {
            Some(o) => &mut o.buf.slice,
            None => &mut dummy_b.slice,
        };
        launch!(
            dev,
            kname::<T>("bn_backward_finalize"),
            grid_1d(cols as u64),
            &pg.slice,
            &pgx.slice,
            &rb,
            dgamma,
            dbeta,
            &mut mean_g.slice,
            &mut mean_gx.slice,
            &r,
            &c,
            &want_g,
            &acc_g,
            &want_b,
            &acc_b,
            &batch
        );
    } else {
        crate::elementwise::cuda::fill(&mut mean_g, T::zero());
        crate::elementwise::cuda::fill(&mut mean_gx, T::zero());
    }
    if let Some(dx) = grads.dx {
        let acc = dx.accumulate as i32;
        launch!(
            dev,
            kname::<T>("bn_backward_dx"),
            grid_1d((rows * cols) as u64),
            &g.slice,
            &x.slice,
            &scale.slice,
            &offset.slice,
            &mean.slice,
            &rr.slice,
            &w.slice,
            &weighted,
            &mean_g.slice,
            &mean_gx.slice,
            &mut dx.buf.slice,
            &r,
            &c,
            &relu,
            &acc
        );
    }
}
