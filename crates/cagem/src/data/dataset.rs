//! A data set in memory: 8-bit images or real-valued features, with labels, split into training
//! and test examples.

use cagem_autodiff::Real;

/// The label of an example without one (−1 in a NumPy label file).
pub const UNLABELLED: u32 = u32::MAX;

/// Images as 8-bit intensities (probability of a black pixel = intensity / 255), or real-valued
/// features, with labels.
#[derive(Clone)]
pub struct Dataset {
    /// Short name, e.g. "mnist".
    pub name: String,
    /// Where it came from and how it was checked, for logs.
    pub provenance: String,
    /// Image height and width; the model sees height·width pixels.
    pub height: usize,
    pub width: usize,
    pub n_classes: usize,
    pub train_images: Vec<u8>,
    pub train_labels: Vec<u32>,
    pub test_images: Vec<u8>,
    pub test_labels: Vec<u32>,
    /// Real-valued features (n × dim, row-major) that replace the 8-bit images (float NumPy data);
    /// the images are then empty.
    pub train_values: Option<Vec<f32>>,
    pub test_values: Option<Vec<f32>>,
    /// With partial labels (UNLABELLED entries), the labelled set is exactly the labelled
    /// examples instead of a balanced subset drawn from a fully labelled set.
    pub partial_labels: bool,
}

impl Dataset {
    pub fn dim(&self) -> usize {
        self.height * self.width
    }

    pub fn n_train(&self) -> usize {
        self.train_labels.len()
    }

    pub fn n_test(&self) -> usize {
        self.test_labels.len()
    }

    /// Training rows as values in the data's own units (intensity / 255 for 8-bit images).
    pub fn train_features<T: Real>(&self) -> Vec<T> {
        features(&self.train_images, self.train_values.as_deref())
    }

    pub fn test_features<T: Real>(&self) -> Vec<T> {
        features(&self.test_images, self.test_values.as_deref())
    }

    /// Whether any training example carries a label (test labels alone train nothing).
    pub fn has_train_labels(&self) -> bool {
        self.train_labels.iter().any(|&l| l != UNLABELLED)
    }

    /// Indices of the training examples that carry a label.
    pub fn labelled_indices(&self) -> Vec<u32> {
        (0..self.n_train() as u32).filter(|&i| self.train_labels[i as usize] != UNLABELLED).collect()
    }

    /// A copy keeping the first `n_train` training and `n_test` test images (for quick runs).
    pub fn truncated(&self, n_train: usize, n_test: usize) -> Dataset {
        let (n_train, n_test) = (n_train.min(self.n_train()), n_test.min(self.n_test()));
        let d = self.dim();
        Dataset {
            // Float data keep their values in train_values/test_values and no 8-bit images.
            train_images: self.train_images.get(..n_train * d).unwrap_or_default().to_vec(),
            train_labels: self.train_labels[..n_train].to_vec(),
            test_images: self.test_images.get(..n_test * d).unwrap_or_default().to_vec(),
            test_labels: self.test_labels[..n_test].to_vec(),
            train_values: self.train_values.as_ref().map(|v| v[..n_train * d].to_vec()),
            test_values: self.test_values.as_ref().map(|v| v[..n_test * d].to_vec()),
            provenance: if n_test < self.n_test() {
                format!("{}, first {n_train} training and {n_test} test images", self.provenance)
            } else {
                format!("{}, first {n_train} training images", self.provenance)
            },
            ..self.clone()
        }
    }
}

fn features<T: Real>(images: &[u8], values: Option<&[f32]>) -> Vec<T> {
    match values {
        Some(v) => v.iter().map(|&x| T::from_f64(x as f64)).collect(),
        None => probabilities(images),
    }
}

/// Converts 8-bit intensities to probabilities.
pub fn probabilities<T: Real>(pixels: &[u8]) -> Vec<T> {
    pixels.iter().map(|&p| T::from_f64(p as f64 / 255.0)).collect()
}
