//! Data sets: MNIST (bundled in the binary, checked by sha256; or any folder holding the four
//! MNIST-format files), the balanced labelled subset, and per-batch dynamic binarisation on the
//! compute device.

pub mod batches;
pub mod idx;
pub mod labelled;
pub mod mnist;
pub mod omniglot;

pub use batches::DeviceData;
pub use labelled::balanced_subset;

/// Images as 8-bit intensities (probability of a black pixel = intensity / 255) with labels.
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

    /// A copy keeping the first `n_train` training and `n_test` test images (for quick runs).
    pub fn truncated(&self, n_train: usize, n_test: usize) -> Dataset {
        let (n_train, n_test) = (n_train.min(self.n_train()), n_test.min(self.n_test()));
        let d = self.dim();
        Dataset {
            train_images: self.train_images[..n_train * d].to_vec(),
            train_labels: self.train_labels[..n_train].to_vec(),
            test_images: self.test_images[..n_test * d].to_vec(),
            test_labels: self.test_labels[..n_test].to_vec(),
            provenance: format!("{} (first {n_train} train, {n_test} test images)", self.provenance),
            ..self.clone()
        }
    }
}
