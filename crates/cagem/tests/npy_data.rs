//! NumPy data sets (written here with the npyz crate): what loads, what each split holds, and a
//! clear error, naming the file and what was expected, for everything that cannot work.

use std::path::Path;

use cagem::Likelihood;
use cagem::data::npy::{examples_for_model, from_dir};
use cagem::data::split::{hold_out, split_valid};
use cagem::data::{Standardizer, UNLABELLED};
use npyz::WriterBuilder;

fn save<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    save_ordered(path, shape, data, npyz::Order::C)
}

fn save_ordered<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T], order: npyz::Order) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).order(order).writer(f).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// A folder with 12 uint8 2×3 images, labels 0, 1, 2 on the first three and −1 elsewhere, and 4
/// test images with labels.
fn folder() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let x: Vec<u8> = (0..12 * 6).map(|i| (i * 7 % 256) as u8).collect();
    save(&p.join("train_x.npy"), &[12, 2, 3], &x);
    let y: Vec<i64> = (0..12).map(|i| if i < 3 { i } else { -1 }).collect();
    save(&p.join("train_y.npy"), &[12], &y);
    save(&p.join("test_x.npy"), &[4, 2, 3], &x[..24]);
    save(&p.join("test_y.npy"), &[4], &[2i32, 1, 0, -1]);
    d
}

#[track_caller]
fn fails(dir: &Path, likelihood: Likelihood, file: &str, needle: &str) {
    let e = from_dir(dir, likelihood).err().expect("should fail").to_string();
    assert!(e.contains(file) && e.contains(needle), "error lacks '{file}' or '{needle}': {e}");
    assert!(!e.contains('\n'), "not one line: {e}");
}

#[test]
fn a_folder_of_arrays_loads_with_partial_labels_and_its_image_shape() {
    let d = folder();
    let data = from_dir(d.path(), Likelihood::Bernoulli).unwrap();
    assert_eq!((data.n_train(), data.n_test(), data.height, data.width, data.n_classes), (12, 4, 2, 3, 3));
    assert!(data.partial_labels && data.train_values.is_none(), "uint8 stays 8-bit");
    assert_eq!(data.labelled_indices(), vec![0, 1, 2]);
    assert_eq!(data.train_labels[5], UNLABELLED);
    assert_eq!(data.test_labels, vec![2, 1, 0, UNLABELLED]);
    assert_eq!(data.train_features::<f64>()[1], 7.0 / 255.0);

    // Floats (here float64, N×D, no labels, no test set): unsupervised, values kept.
    let f = tempfile::tempdir().unwrap();
    save(&f.path().join("train_x.npy"), &[5, 4], &(0..20).map(|i| i as f64 * 0.5 - 3.0).collect::<Vec<_>>());
    let data = from_dir(f.path(), Likelihood::Gaussian).unwrap();
    assert_eq!((data.n_train(), data.n_test(), data.height, data.width, data.n_classes), (5, 0, 1, 4, 0));
    assert!(!data.partial_labels && data.train_labels.iter().all(|&l| l == UNLABELLED));
    assert_eq!(data.train_values.as_ref().unwrap()[3], -1.5);
    fails(f.path(), Likelihood::Bernoulli, "train_x.npy", "outside [0, 1]");

    // Fully labelled: not partial (the balanced subset of --labels applies).
    save(&f.path().join("train_y.npy"), &[5], &[0u8, 1, 0, 1, 1]);
    let data = from_dir(f.path(), Likelihood::Gaussian).unwrap();
    assert!(!data.partial_labels && data.n_classes == 2);
}

#[test]
fn every_bad_array_gets_an_error_naming_its_file() {
    let d = folder();
    let p = d.path();
    let g = Likelihood::Gaussian;
    let reset = || {
        let fresh = folder();
        for f in ["train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy"] {
            std::fs::copy(fresh.path().join(f), p.join(f)).unwrap();
        }
    };
    let e = from_dir(&p.join("nowhere"), g).err().unwrap().to_string();
    assert!(e.contains("nowhere") && e.contains("not a folder"), "{e}");

    save(&p.join("train_x.npy"), &[2, 2, 2, 2], &[0u8; 16]);
    fails(p, g, "train_x.npy", "expected N×H×W (images) or N×D");
    save(&p.join("train_x.npy"), &[0, 6], &[0u8; 0]);
    fails(p, g, "train_x.npy", "at least one non-empty example");
    save(&p.join("train_x.npy"), &[12, 6], &[3i16; 72]);
    fails(p, g, "train_x.npy", "expected uint8 (0–255) or float32/float64");
    save(&p.join("train_x.npy"), &[12, 6], &[true; 72]);
    fails(p, g, "train_x.npy", "expected uint8 or float32/float64");
    save_ordered(&p.join("train_x.npy"), &[12, 6], &[0.5f32; 72], npyz::Order::Fortran);
    fails(p, g, "train_x.npy", "expected C order");
    let mut x = vec![0.5f32; 72];
    x[7] = f32::NAN;
    save(&p.join("train_x.npy"), &[12, 6], &x);
    fails(p, g, "train_x.npy", "not finite");
    x[7] = 1.5;
    save(&p.join("train_x.npy"), &[12, 2, 3], &x);
    fails(p, Likelihood::Bernoulli, "train_x.npy", "outside [0, 1], which the Bernoulli likelihood needs");
    std::fs::write(p.join("train_x.npy"), b"\x93NUMPY garbage").unwrap();
    fails(p, g, "train_x.npy", "not a readable .npy file");
    std::fs::remove_file(p.join("train_x.npy")).unwrap();
    fails(p, g, "missing train_x.npy", "N×H×W or N×D");
    reset();

    save(&p.join("train_y.npy"), &[11], &[0i64; 11]);
    fails(p, g, "train_y.npy", "11 labels for the 12 examples of");
    save(&p.join("train_y.npy"), &[12, 1], &[0i64; 12]);
    fails(p, g, "train_y.npy", "expected one label per example, (12,)");
    save(&p.join("train_y.npy"), &[12], &[0.0f32; 12]);
    fails(p, g, "train_y.npy", "expected integer labels");
    let mut y = vec![-1i64; 12];
    y[4] = -2;
    save(&p.join("train_y.npy"), &[12], &y);
    fails(p, g, "train_y.npy", "label -2 at index 4 is invalid");
    y[4] = 0;
    y[6] = 2;
    save(&p.join("train_y.npy"), &[12], &y);
    fails(p, g, "train_y.npy", "class 1 has no labelled example, but class 2 does");
    reset();

    save(&p.join("test_y.npy"), &[4], &[0i64, 1, 5, 0]);
    fails(p, g, "test_y.npy", "label 5 at index 2 is not a class of train_y.npy (0..2)");
    save(&p.join("test_x.npy"), &[4, 3, 2], &[0u8; 24]);
    fails(p, g, "test_x.npy", "examples are 3×2, but those of train_x.npy are 2×3");
    std::fs::remove_file(p.join("test_x.npy")).unwrap();
    fails(p, g, "test_y.npy", "has no test_x.npy");
}

#[test]
fn held_out_test_sets_are_seeded_and_refused_where_there_is_a_test_set() {
    let d = folder();
    let data = from_dir(d.path(), Likelihood::Bernoulli).unwrap();
    let e = hold_out(&data, 0.25, 1).err().unwrap().to_string();
    assert!(e.contains("already has 4 test examples"), "{e}");
    let no_test = data.truncated(12, 0);
    let a = hold_out(&no_test, 0.25, 1).unwrap();
    assert_eq!((a.n_train(), a.n_test()), (9, 3));
    assert_eq!(a.train_images.len() + a.test_images.len(), 72);
    let b = hold_out(&no_test, 0.25, 1).unwrap();
    assert_eq!((a.test_images.clone(), a.test_labels.clone()), (b.test_images, b.test_labels), "seeded");
    let c = hold_out(&no_test, 0.25, 2).unwrap();
    assert_ne!(a.test_images, c.test_images, "another seed, another split");
    for f in [0.0, 1.0, 1.5, 0.95] {
        let e = hold_out(&no_test, f, 1).err().unwrap().to_string();
        assert!(e.contains("--valid-fraction"), "{f}: {e}");
    }
}

#[test]
fn new_examples_must_have_the_model_input_shape() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("new.npy");
    save(&f, &[3, 2, 3], &[0.25f32; 18]);
    assert_eq!(examples_for_model(&f, 2, 3, Likelihood::Bernoulli).unwrap().len(), 18);
    save(&f, &[3, 6], &[200u8; 18]);
    let v = examples_for_model(&f, 2, 3, Likelihood::Bernoulli).unwrap();
    assert_eq!(v[0], 200.0 / 255.0);
    for (shape, n) in [(vec![3u64, 3, 2], 18), (vec![3, 5], 15), (vec![18], 18)] {
        save(&f, &shape, &vec![0.5f32; n]);
        let e = examples_for_model(&f, 2, 3, Likelihood::Gaussian).err().unwrap().to_string();
        assert!(e.contains("new.npy") && e.contains("the model expects examples of 2×3"), "{e}");
    }
    save(&f, &[1, 6], &[-0.5f32; 6]);
    let e = examples_for_model(&f, 2, 3, Likelihood::Bernoulli).err().unwrap().to_string();
    assert!(e.contains("outside [0, 1]"), "{e}");
    assert!(examples_for_model(&f, 2, 3, Likelihood::Gaussian).is_ok());
}

#[test]
fn standardisation_uses_training_statistics_and_reports_its_jacobian() {
    let x = [1.0f32, 10.0, 3.0, 10.0, 5.0, 10.0];
    let s = Standardizer::fit(&x, 2);
    assert_eq!(s.mean, vec![3.0, 10.0]);
    assert!((s.std[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(s.std[1], 1.0, "a constant feature is left unscaled");
    let mut y = x;
    s.apply(&mut y);
    assert!((y[0] as f64 + 2.0 / (8.0f64 / 3.0).sqrt()).abs() < 1e-6 && y[1] == 0.0);
    let mut back: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    s.invert(&mut back);
    assert!(back.iter().zip(&x).all(|(a, &b)| (a - b as f64).abs() < 1e-5));
    assert!((s.log_jacobian() + (8.0f64 / 3.0).sqrt().ln()).abs() < 1e-12);
}

#[test]
fn a_validation_split_beside_the_test_set_is_disjoint_from_training_and_seeded() {
    let d = folder();
    let data = from_dir(d.path(), Likelihood::Bernoulli).unwrap();
    let (train, valid) = split_valid(&data, 0.25, 1).unwrap();
    assert_eq!((train.n_train(), valid.n_test(), valid.n_train()), (9, 3, 0));
    assert_eq!(
        (train.test_images.clone(), train.test_labels.clone()),
        (data.test_images.clone(), data.test_labels.clone())
    );
    // Every training row (rows differ: row i starts with 42·i mod 256) is in exactly one part.
    let rows = |images: &[u8]| -> Vec<Vec<u8>> { images.chunks(6).map(|r| r.to_vec()).collect() };
    let (kept, held, all) = (rows(&train.train_images), rows(&valid.test_images), rows(&data.train_images));
    assert!(kept.iter().all(|r| !held.contains(r)), "disjoint");
    let mut both: Vec<Vec<u8>> = kept.iter().chain(&held).cloned().collect();
    both.sort();
    let mut all_sorted = all.clone();
    all_sorted.sort();
    assert_eq!(both, all_sorted, "together the training set");
    // The rows hold_out would move to the test set of the same data without one.
    let moved = hold_out(&data.truncated(12, 0), 0.25, 1).unwrap();
    assert_eq!(moved.test_images, valid.test_images);
    assert_eq!(moved.test_labels, valid.test_labels);
    let (_, other) = split_valid(&data, 0.25, 2).unwrap();
    assert_ne!(other.test_images, valid.test_images, "another seed, another split");
    assert!(split_valid(&data, 1.0, 1).is_err());
}

/// Arrays handed over in memory (the Python package) pass the checks a .npy file passes, and the
/// same values come out as from the file.
#[test]
fn arrays_in_memory_are_checked_as_files_are() {
    use cagem::data::npy::{NpyArray, examples_from_array};
    let values: Vec<f64> = (0..12).map(|i| f64::from(i) / 12.0).collect();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let arr = NpyArray::from_le_bytes("X", "<f8", vec![2, 6], &bytes).unwrap();
    let rows = examples_from_array(arr, 2, 3, Likelihood::Bernoulli).unwrap();
    assert_eq!(rows, values.iter().map(|&v| v as f32).collect::<Vec<_>>());

    let d = tempfile::tempdir().unwrap();
    save(&d.path().join("x.npy"), &[2, 6], &values);
    assert_eq!(examples_for_model(&d.path().join("x.npy"), 2, 3, Likelihood::Bernoulli).unwrap(), rows);

    let err = |descr: &str, shape: Vec<usize>, bytes: &[u8], h: usize, w: usize| {
        NpyArray::from_le_bytes("X", descr, shape, bytes)
            .and_then(|a| examples_from_array(a, h, w, Likelihood::Bernoulli))
            .expect_err("should fail")
            .to_string()
    };
    assert!(err(">f8", vec![2, 6], &bytes, 2, 3).contains("X: has dtype '>f8'"));
    assert!(err("<f8", vec![2, 7], &bytes, 2, 3).contains("but 96 bytes"));
    assert!(err("<f8", vec![2, 6], &bytes, 3, 3).contains("the model expects examples of 3×3"));
    assert!(err("<i8", vec![2, 6], &bytes, 2, 3).contains("holds integers other than uint8"));
    let huge: Vec<u8> = [1e300f64, 0.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert!(err("<f8", vec![1, 2], &huge, 1, 2).contains("overflows float32"));
    let nan: Vec<u8> = [f32::NAN, 0.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert!(err("<f4", vec![1, 2], &nan, 1, 2).contains("is not finite"));
    assert!(err("|u1", vec![usize::MAX, 2], &[0, 1], 1, 2).contains("bytes"));
}

#[test]
fn a_model_that_does_not_binarise_sees_the_grey_values_everywhere() {
    use cagem::ModelConfig;
    use cagem::data::DeviceData;
    use cagem_autodiff::{Device, RngStream};
    let d = folder();
    let data = from_dir(d.path(), Likelihood::Bernoulli).unwrap();
    let grey = ModelConfig { x_dim: 6, height: 2, width: 3, binarize: false, ..ModelConfig::default() };
    let binary = ModelConfig { binarize: true, ..grey.clone() };
    assert!(!grey.binarizes() && binary.binarizes());
    let train = data.train_features::<f32>();
    let rows = [4u32, 0, 11];
    let picked: Vec<f32> = rows.iter().flat_map(|&r| train[r as usize * 6..(r as usize + 1) * 6].to_vec()).collect();

    let dd = DeviceData::<f32>::for_model(&Device::Cpu, &data, &grey, None);
    assert_eq!(dd.train_batch(&rows, RngStream::new(3, 0)).to_vec(), picked, "a training batch");
    assert_eq!(dd.train_eval().to_vec(), train, "the training split as evaluated");
    assert_eq!(dd.test_batch(0, 4).to_vec(), data.test_features::<f32>(), "the test set");

    // The paper's way: binary draws, the same ones for a stream, and not the grey values.
    let dd = DeviceData::<f32>::for_model(&Device::Cpu, &data, &binary, None);
    let drawn = dd.train_batch(&rows, RngStream::new(3, 0)).to_vec();
    assert!(drawn.iter().all(|&v| v == 0.0 || v == 1.0) && drawn != picked, "{drawn:?}");
    assert_eq!(dd.train_batch(&rows, RngStream::new(3, 0)).to_vec(), drawn);
    assert!(dd.test_batch(0, 4).to_vec().iter().all(|&v| v == 0.0 || v == 1.0));
}

#[test]
fn binarize_is_saved_only_when_off_and_only_with_a_bernoulli_likelihood() {
    use cagem::ModelConfig;
    let on = serde_json::to_value(ModelConfig::default()).unwrap();
    assert!(on.get("binarize").is_none(), "the default keeps older checkpoints' bytes: {on}");
    let off = serde_json::to_value(ModelConfig { binarize: false, ..ModelConfig::default() }).unwrap();
    assert_eq!(off["binarize"], false);
    let back: ModelConfig = serde_json::from_value(off).unwrap();
    assert!(!back.binarize);
    let old: ModelConfig = serde_json::from_value(on).unwrap();
    assert!(old.binarize, "a checkpoint without the key binarises, as it was trained");
    let gaussian = ModelConfig { binarize: false, likelihood: Likelihood::Gaussian, ..ModelConfig::default() };
    let e = gaussian.validate().unwrap_err().to_string();
    assert!(e.contains("--binarize none") && e.contains("bernoulli"), "{e}");
    assert!(
        !gaussian.binarizes()
            && !ModelConfig { likelihood: Likelihood::Gaussian, ..ModelConfig::default() }.binarizes()
    );
}
