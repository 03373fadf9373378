//! A model and schedule sized to the user's data (`--dataset npy` when the options are not
//! given). The paper's MNIST model (3.9 M parameters, z1 = 64, 1000 epochs) over-fits a set of a
//! few thousand examples and takes hours; the rule below scales it down with the data. For N
//! training examples of D features:
//!
//! - hidden widths h = clamp(2^⌈log₂ 2D⌉, 32, 512): q(·) [h, h/2], p(·) [h/2, h] (the paper's
//!   shape; MNIST's D = 784 would give 2048, capped at 512);
//! - z1 = clamp(⌈D/4⌉, 2, 64), z2 = clamp(⌈z1/2⌉, 2, 32) (the paper's z1 = 64, z2 = 32 is the cap);
//! - batch = clamp(⌈N/20⌉, 16, 100), at most N: about 20 steps per epoch on small sets;
//! - epochs: enough for about `TARGET_STEPS` steps, clamp(⌈6000/steps per epoch⌉, 20, 1000);
//!   the KL warm-up lasts a tenth of them and the learning rate decays by 0.75 every twentieth
//!   (the paper's 100 and 50 of 1000 epochs).
//!
//! Measured in docs/own-data.md: on sklearn's 8×8 digits with 5 labels per class it trains in
//! under a minute on one core to a q(y|x) test error of 7.4 % (mean of three seeds; the digits
//! are grey, so `cagem::defaults` also leaves them unbinarised: 15.6 % binarised).

use std::fmt;

/// Training steps the default schedule aims at.
pub const TARGET_STEPS: usize = 6000;

/// Sizes and schedule chosen for a data set (every one overridable on the command line).
#[derive(Clone, Debug, PartialEq)]
pub struct Sizing {
    pub n: usize,
    pub d: usize,
    pub z1: usize,
    pub z2: usize,
    pub q_hidden: [usize; 2],
    pub p_hidden: [usize; 2],
    pub batch: usize,
    pub epochs: usize,
}

/// The rule of the module documentation for `n` training examples of `d` features.
pub fn size_for(n: usize, d: usize) -> Sizing {
    let (n, d) = (n.max(1), d.max(1));
    let h = (2 * d).next_power_of_two().clamp(32, 512);
    let z1 = d.div_ceil(4).clamp(2, 64);
    let z2 = z1.div_ceil(2).clamp(2, 32);
    let batch = n.div_ceil(20).clamp(16, 100).min(n).max(2.min(n));
    let steps = (n / batch.max(1)).max(1);
    let epochs = TARGET_STEPS.div_ceil(steps).clamp(20, 1000);
    Sizing { n, d, z1, z2, q_hidden: [h, h / 2], p_hidden: [h / 2, h], batch, epochs }
}

/// The KL warm-up (epochs) and the learning-rate decay period (epochs) for a run of `epochs`:
/// a tenth and a twentieth of the run, the proportions of the paper's 100 and 50 of 1000.
pub fn schedule_for(epochs: usize) -> (f64, usize) {
    ((epochs as f64 / 10.0).max(1.0), (epochs / 20).max(1))
}

impl fmt::Display for Sizing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "z1 {}, z2 {}, q-hidden {},{}, p-hidden {},{}, batch {}, {} epochs",
            self.z1,
            self.z2,
            self.q_hidden[0],
            self.q_hidden[1],
            self.p_hidden[0],
            self.p_hidden[1],
            self.batch,
            self.epochs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_images_get_a_small_model_and_a_short_schedule() {
        // sklearn's 8×8 digits: 1437 training images of 64 pixels.
        let s = size_for(1437, 64);
        assert_eq!((s.z1, s.z2, s.q_hidden, s.p_hidden), (16, 8, [128, 64], [64, 128]));
        assert_eq!(s.batch, 72);
        assert_eq!(s.epochs, 316, "19 steps per epoch, ≈ 6000 steps");
        assert_eq!(schedule_for(s.epochs), (31.6, 15));
    }

    #[test]
    fn tiny_tabular_sets_hit_the_lower_clamps() {
        let s = size_for(100, 4);
        assert_eq!((s.z1, s.z2, s.q_hidden, s.p_hidden), (2, 2, [32, 16], [16, 32]));
        assert_eq!((s.batch, s.epochs), (16, 1000));
        // Fewer examples than the smallest batch: the batch is the whole set.
        assert_eq!(size_for(10, 3).batch, 10);
        assert_eq!(size_for(1, 3).batch, 1);
    }

    #[test]
    fn mnist_sized_data_hits_the_upper_clamps() {
        let s = size_for(60_000, 784);
        assert_eq!((s.z1, s.z2, s.q_hidden, s.p_hidden), (64, 32, [512, 256], [256, 512]));
        assert_eq!((s.batch, s.epochs), (100, 20));
        let s = size_for(5000, 784);
        assert_eq!((s.batch, s.epochs), (100, 120));
    }

    #[test]
    fn sizes_grow_with_the_data() {
        let mut last = size_for(10, 1);
        for (n, d) in [(50, 2), (300, 10), (2000, 50), (20_000, 300), (100_000, 3000)] {
            let s = size_for(n, d);
            assert!(s.z1 >= last.z1 && s.z2 >= last.z2 && s.q_hidden[0] >= last.q_hidden[0], "{s:?} after {last:?}");
            assert!(s.batch >= last.batch && s.epochs <= last.epochs, "{s:?} after {last:?}");
            last = s;
        }
    }
}
