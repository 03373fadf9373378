//! Plain elementwise work: fill, copy, a + b, a − b, a ∘ b, and the scaled accumulations that
//! backward passes are made of.

use crate::buffer::{Buffer, GradOut};
use crate::par::for_elems;
use crate::real::Real;

/// Elementwise binary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
}

impl BinaryOp {
    #[inline(always)]
    pub fn apply<T: Real>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
        }
    }

    /// The integer code the CUDA kernel switches on.
    pub fn code(self) -> i32 {
        match self {
            BinaryOp::Add => 0,
            BinaryOp::Sub => 1,
            BinaryOp::Mul => 2,
        }
    }
}

pub fn fill<T: Real>(x: &mut Buffer<T>, value: T) {
    match x {
        Buffer::Host(x) => cpu::fill(x, value),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(x) => cuda::fill(x, value),
    }
}

pub fn copy<T: Real>(src: &Buffer<T>, dst: &mut Buffer<T>) {
    assert_eq!(src.len(), dst.len(), "copy: length mismatch");
    match dst {
        Buffer::Host(d) => d.copy_from_slice(src.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(d) => cuda::copy(src.cuda(), d),
    }
}

/// The element-wise ops a buffer offers as methods; here rather than in buffer.rs so that the
/// buffer does not import the kernels that take it.
impl<T: Real> Buffer<T> {
    /// A copy on the same device.
    pub fn duplicate(&self) -> Self {
        let mut out = Self::uninit(&self.device(), self.len());
        copy(self, &mut out);
        out
    }

    pub fn fill(&mut self, value: T) {
        fill(self, value);
    }
}

/// out = a ∘ b (same lengths).
pub fn binary<T: Real>(op: BinaryOp, a: &Buffer<T>, b: &Buffer<T>, out: &mut Buffer<T>) {
    assert!(a.len() == b.len() && a.len() == out.len(), "binary op: length mismatch");
    match out {
        Buffer::Host(o) => cpu::binary(op, a.host(), b.host(), o),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(o) => cuda::binary(op, a.cuda(), b.cuda(), o),
    }
}

/// dst (=|+=) s·x.
pub fn scale_into<T: Real>(x: &Buffer<T>, s: T, dst: GradOut<Buffer<T>>) {
    assert_eq!(x.len(), dst.buf.len(), "scale_into: length mismatch");
    match &*dst.buf {
        Buffer::Host(_) => cpu::scale_into(x.host(), s, dst.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::scale_into(x.cuda(), s, dst.cuda()),
    }
}

/// dst (=|+=) s·(a ∘ b).
pub fn mul_into<T: Real>(a: &Buffer<T>, b: &Buffer<T>, s: T, dst: GradOut<Buffer<T>>) {
    assert!(a.len() == b.len() && a.len() == dst.buf.len(), "mul_into: length mismatch");
    match &*dst.buf {
        Buffer::Host(_) => cpu::mul_into(a.host(), b.host(), s, dst.host()),
        #[cfg(feature = "cuda")]
        Buffer::Cuda(_) => cuda::mul_into(a.cuda(), b.cuda(), s, dst.cuda()),
    }
}

pub mod cpu {
    use super::*;

    pub fn fill<T: Real>(x: &mut [T], value: T) {
        for_elems(x, 1, |_, c| c.fill(value));
    }

    pub fn binary<T: Real>(op: BinaryOp, a: &[T], b: &[T], out: &mut [T]) {
        for_elems(out, 1, |o, c| {
            let (a, b) = (&a[o..o + c.len()], &b[o..o + c.len()]);
            match op {
                BinaryOp::Add => c.iter_mut().zip(a).zip(b).for_each(|((y, &a), &b)| *y = a + b),
                BinaryOp::Sub => c.iter_mut().zip(a).zip(b).for_each(|((y, &a), &b)| *y = a - b),
                BinaryOp::Mul => c.iter_mut().zip(a).zip(b).for_each(|((y, &a), &b)| *y = a * b),
            }
        });
    }

    pub fn scale_into<T: Real>(x: &[T], s: T, dst: GradOut<[T]>) {
        let acc = dst.accumulate;
        for_elems(dst.buf, 1, |o, c| {
            let x = &x[o..o + c.len()];
            if acc {
                c.iter_mut().zip(x).for_each(|(d, &v)| *d = *d + s * v);
            } else {
                c.iter_mut().zip(x).for_each(|(d, &v)| *d = s * v);
            }
        });
    }

    pub fn mul_into<T: Real>(a: &[T], b: &[T], s: T, dst: GradOut<[T]>) {
        let acc = dst.accumulate;
        for_elems(dst.buf, 1, |o, c| {
            let (a, b) = (&a[o..o + c.len()], &b[o..o + c.len()]);
            if acc {
                c.iter_mut().zip(a).zip(b).for_each(|((d, &a), &b)| *d = *d + s * a * b);
            } else {
                c.iter_mut().zip(a).zip(b).for_each(|((d, &a), &b)| *d = s * a * b);
            }
        });
    }
}

#[cfg(feature = "cuda")]
pub(crate) mod cuda {
    use super::BinaryOp;
    use crate::buffer::GradOut;
    use crate::cuda::CudaBuffer;
    use crate::cuda::launch::{grid_1d, kname, launch};
    use crate::real::Real;

    pub fn fill<T: Real>(x: &mut CudaBuffer<T>, value: T) {
        let (dev, n) = (x.device().clone(), x.len() as u64);
        launch!(dev, kname::<T>("fill"), grid_1d(n), &mut x.slice, &value, &n);
    }

    pub fn copy<T: Real>(src: &CudaBuffer<T>, dst: &mut CudaBuffer<T>) {
        dst.copy_from(src);
    }

    pub fn binary<T: Real>(op: BinaryOp, a: &CudaBuffer<T>, b: &CudaBuffer<T>, out: &mut CudaBuffer<T>) {
        let (dev, n, code) = (out.device().clone(), out.len() as u64, op.code());
        launch!(dev, kname::<T>("binary"), grid_1d(n), &a.slice, &b.slice, &mut out.slice, &n, &code);
    }

    pub fn scale_into<T: Real>(x: &CudaBuffer<T>, s: T, dst: GradOut<CudaBuffer<T>>) {
        let (dev, n, acc) = (x.device().clone(), x.len() as u64, dst.accumulate as i32);
        launch!(dev, kname::<T>("scale_into"), grid_1d(n), &x.slice, &s, &mut dst.buf.slice, &n, &acc);
    }

    pub fn mul_into<T: Real>(a: &CudaBuffer<T>, b: &CudaBuffer<T>, s: T, dst: GradOut<CudaBuffer<T>>) {
        let (dev, n, acc) = (a.device().clone(), a.len() as u64, dst.accumulate as i32);
        launch!(dev, kname::<T>("mul_into"), grid_1d(n), &a.slice, &b.slice, &s, &mut dst.buf.slice, &n, &acc);
    }
}
