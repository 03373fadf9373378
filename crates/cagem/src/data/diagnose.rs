//! What a user's data may hide, said before training: 8-bit data far below 255 (cagem scales
//! uint8 by 1/255 whatever the maximum is), constant and near-constant features, features with
//! few distinct values, and the floor on the Gaussian likelihood's standard deviation that the
//! data suggest (`--min-std`). A Gaussian density of a feature that never varies, or that takes a
//! handful of values, grows without bound as σ shrinks: the floor keeps the bound honest.

use super::{Dataset, Standardizer};

/// 8-bit data whose maximum is at most this are flagged (a quarter of the 0–255 range).
pub const LOW_UINT8_MAX: u8 = 63;
/// Features with at most this many distinct training values are flagged.
pub const FEW_DISTINCT: usize = 20;
/// A feature whose standard deviation is below this share of the median one is near-constant.
pub const NEAR_CONSTANT: f64 = 1e-3;
/// The default σ floor is at least this share of the median feature's standard deviation.
pub const MIN_STD_SHARE: f64 = 0.01;

/// The findings on a training set, in the units the model sees (standardised with
/// `--standardize`).
#[derive(Clone, Debug, PartialEq)]
pub struct Findings {
    /// The largest 8-bit value, for uint8 data.
    pub uint8_max: Option<u8>,
    /// Features whose values never vary, and those that barely do.
    pub constant: Vec<usize>,
    pub near_constant: Vec<usize>,
    /// Features with at most `FEW_DISTINCT` distinct values, and the largest such count.
    pub few_distinct: Vec<usize>,
    pub most_distinct_of_few: usize,
    /// The default σ floor: max(MIN_STD_SHARE · median σ_d, median Δ_d/√12), where Δ_d is the
    /// smallest gap between distinct values of feature d (σ of a rounding to a grid of step Δ),
    /// over the features that vary.
    pub min_std: f64,
}

/// Examines the training rows of `data` (standardised by `st` where given); the features only
/// where `features` (the Gaussian likelihood: a copy of the data in f64 is made).
pub fn examine(data: &Dataset, st: Option<&Standardizer>, features: bool) -> Findings {
    let d = data.dim().max(1);
    let uint8_max = data.train_values.is_none().then(|| data.train_images.iter().copied().max().unwrap_or(0));
    if !features {
        let none = Vec::new();
        return Findings {
            uint8_max,
            constant: none.clone(),
            near_constant: none.clone(),
            few_distinct: none,
            most_distinct_of_few: 0,
            min_std: MIN_STD_SHARE,
        };
    }
    let mut values = data.train_features::<f64>();
    if let Some(st) = st {
        st.apply(&mut values);
    }
    let n = values.len() / d;
    let mut stds = Vec::with_capacity(d);
    let mut gaps = Vec::new();
    let (mut constant, mut few_distinct, mut most_distinct_of_few) = (Vec::new(), Vec::new(), 0);
    let mut column = Vec::with_capacity(n);
    for j in 0..d {
        column.clear();
        column.extend((0..n).map(|i| values[i * d + j]));
        let mean = column.iter().sum::<f64>() / n.max(1) as f64;
        let var = column.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64;
        stds.push(var.sqrt());
        column.sort_by(f64::total_cmp);
        column.dedup();
        if column.len() <= 1 {
            constant.push(j);
            continue;
        }
        if column.len() <= FEW_DISTINCT {
            few_distinct.push(j);
            most_distinct_of_few = most_distinct_of_few.max(column.len());
        }
        let gap = column.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
        gaps.push(gap);
    }
    let varying: Vec<f64> = stds.iter().enumerate().filter(|(j, _)| !constant.contains(j)).map(|(_, &s)| s).collect();
    let median_std = median(varying.clone()).unwrap_or(1.0);
    let near_constant = (0..d).filter(|j| !constant.contains(j) && stds[*j] < NEAR_CONSTANT * median_std).collect();
    let grid = median(gaps).map_or(0.0, |g| g / 12f64.sqrt());
    let min_std = (MIN_STD_SHARE * median_std).max(grid);
    let min_std = if min_std.is_finite() && min_std > 0.0 { min_std } else { MIN_STD_SHARE };
    Findings { uint8_max, constant, near_constant, few_distinct, most_distinct_of_few, min_std }
}

/// Values in [GREY_LOW, 1 − GREY_LOW] are clearly grey: a binary draw (the paper's dynamic
/// binarisation) makes them 0 or 1 at random, where values near 0 or 1 keep their colour.
pub const GREY_LOW: f64 = 0.1;

/// The share of the training values (in [0, 1], uint8 scaled by 1/255) that are clearly grey.
/// MNIST's pen strokes: 8.7 %; sklearn's 8×8 digits, grey levels of 0–16: 34.6 %.
pub fn grey_share(data: &Dataset) -> f64 {
    let total = data.n_train() * data.dim();
    if total == 0 {
        return 0.0;
    }
    let grey = |v: f64| (GREY_LOW..=1.0 - GREY_LOW).contains(&v);
    let n = match &data.train_values {
        Some(values) => values.iter().filter(|&&v| grey(v as f64)).count(),
        None => data.train_images.iter().filter(|&&v| grey(v as f64 / 255.0)).count(),
    };
    n as f64 / total as f64
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Up to eight feature indices, and how many more.
fn list(ix: &[usize]) -> String {
    let shown: Vec<String> = ix.iter().take(8).map(|i| i.to_string()).collect();
    let more = if ix.len() > 8 { format!(", … ({} in all)", ix.len()) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

impl Findings {
    /// The warnings to print before training (`gaussian`: the likelihood is Gaussian, whose
    /// densities the feature findings concern; `file`: the training file's name).
    pub fn warnings(&self, gaussian: bool, file: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = self.uint8_max.filter(|&m| m <= LOW_UINT8_MAX) {
            out.push(format!(
                "{file} is uint8 with values 0–{m}, far below 255: cagem scales uint8 by 1/255, so every feature lies \
                 in [0, {:.3}]; if {m} is the real maximum, save x / {m} as float32 (or use --likelihood gaussian \
                 --standardize)",
                m as f64 / 255.0
            ));
        }
        if !gaussian {
            return out;
        }
        if !self.constant.is_empty() {
            out.push(format!(
                "{} feature(s) are constant in the training set (index {}): their Gaussian density is bounded only \
                 by the σ floor (--min-std); consider dropping them",
                self.constant.len(),
                list(&self.constant)
            ));
        }
        if !self.near_constant.is_empty() {
            out.push(format!(
                "{} feature(s) are nearly constant (σ below {NEAR_CONSTANT} of the median feature's; index {})",
                self.near_constant.len(),
                list(&self.near_constant)
            ));
        }
        if !self.few_distinct.is_empty() {
            out.push(format!(
                "{} feature(s) take at most {} distinct values (index {}): a Gaussian density of discrete values \
                 is high only up to the σ floor; the bound is not a likelihood of the discrete data",
                self.few_distinct.len(),
                self.most_distinct_of_few,
                list(&self.few_distinct)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(n: usize, d: usize, f: impl Fn(usize, usize) -> f32) -> Dataset {
        Dataset {
            name: "npy".into(),
            provenance: "test".into(),
            height: 1,
            width: d,
            n_classes: 0,
            train_images: Vec::new(),
            train_labels: vec![super::super::UNLABELLED; n],
            test_images: Vec::new(),
            test_labels: Vec::new(),
            train_values: Some((0..n * d).map(|k| f(k / d, k % d)).collect()),
            test_values: Some(Vec::new()),
            partial_labels: false,
        }
    }

    #[test]
    fn grey_share_counts_the_clearly_grey_values_of_floats_and_bytes() {
        // Of 0, 0.05, 0.1, 0.5, 0.9, 0.95, 1 (and the eighth value 0), three are within [0.1, 0.9].
        let v = [0.0, 0.05, 0.1, 0.5, 0.9, 0.95, 1.0, 0.0];
        assert_eq!(grey_share(&floats(2, 4, |i, j| v[i * 4 + j])), 3.0 / 8.0);
        // Bytes scaled by 1/255: 25 is 0.098, 26 is 0.102, 229 is 0.898, 230 is 0.902.
        let mut bytes = floats(1, 6, |_, _| 0.0);
        bytes.train_values = None;
        bytes.train_images = vec![0, 25, 26, 128, 229, 230];
        assert_eq!(grey_share(&bytes), 3.0 / 6.0);
        assert_eq!(grey_share(&floats(0, 4, |_, _| 0.5)), 0.0, "no data, no grey");
    }

    #[test]
    fn constant_and_discrete_features_are_named_and_the_floor_follows_the_grid() {
        // Feature 0 continuous, 1 constant, 2 integers 0..4 (step 1).
        let data = floats(200, 3, |i, j| match j {
            0 => (i as f32 * 0.37).sin() * 3.0,
            1 => 5.0,
            _ => (i % 5) as f32,
        });
        let f = examine(&data, None, true);
        assert_eq!(f.constant, [1]);
        assert_eq!(f.few_distinct, [2]);
        assert_eq!(f.most_distinct_of_few, 5);
        assert_eq!(f.uint8_max, None);
        // Median of the two gaps (tiny for the continuous feature, 1 for the integers) is 1.
        assert!((f.min_std - 1.0 / 12f64.sqrt()).abs() < 1e-9, "{}", f.min_std);
        let w = f.warnings(true, "train_x.npy");
        assert!(w.iter().any(|l| l.contains("constant") && l.contains("index 1")), "{w:?}");
        assert!(w.iter().any(|l| l.contains("at most 5 distinct values")), "{w:?}");
        // The Bernoulli likelihood has no σ: nothing to say about the features.
        assert!(f.warnings(false, "train_x.npy").is_empty());
    }

    #[test]
    fn continuous_data_get_a_floor_of_a_hundredth_of_the_median_std() {
        let data = floats(500, 2, |i, j| ((i * 7919 + j * 104_729) % 1000) as f32 / 1000.0 * (1.0 + j as f32));
        let f = examine(&data, None, true);
        assert!(f.constant.is_empty() && f.few_distinct.is_empty());
        // Uniform on [0, 1) and [0, 2): σ ≈ 0.289 and 0.577; the upper median is 0.577.
        assert!((f.min_std - 0.01 * 0.577).abs() < 5e-4, "{}", f.min_std);
        let st = Standardizer::fit(data.train_values.as_ref().unwrap(), 2);
        let g = examine(&data, Some(&st), true);
        assert!((g.min_std - 0.01).abs() < 1e-6, "standardised: σ = 1 for every feature, {}", g.min_std);
    }

    #[test]
    fn uint8_data_far_below_255_are_flagged_with_their_range() {
        let mut data = floats(4, 2, |_, _| 0.0);
        data.train_values = None;
        data.test_values = None;
        data.train_images = vec![0, 16, 3, 7, 0, 0, 12, 1];
        let f = examine(&data, None, true);
        assert_eq!(f.uint8_max, Some(16));
        let w = f.warnings(false, "train_x.npy");
        assert!(w.len() == 1 && w[0].contains("values 0–16") && w[0].contains("x / 16"), "{w:?}");
        data.train_images[1] = 255;
        assert!(examine(&data, None, true).warnings(false, "train_x.npy").is_empty());
    }
}
