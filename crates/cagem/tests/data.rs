//! Data loading: the bundled MNIST (checked against the facts in shared/data/README.md), the
//! IDX reader's errors on bad files, the balanced labelled subset, and the binarisations.

use std::path::Path;

use cagem::Error;
use cagem::data::idx::{IdxArray, IdxData, encode_idx, parse_idx, read_idx};
use cagem::data::{DeviceData, balanced_subset, mnist};
use cagem_autodiff::Device;

#[test]
fn bundled_mnist_is_the_real_thing() {
    let d = mnist::bundled().expect("bundled MNIST loads");
    assert_eq!((d.n_train(), d.n_test(), d.dim(), d.n_classes), (60_000, 10_000, 784, 10));
    assert_eq!(&d.train_labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(&d.test_labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let mut counts = [0usize; 10];
    d.train_labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    let mean = d.train_images.iter().map(|&p| p as f64).sum::<f64>() / d.train_images.len() as f64 / 255.0;
    assert!((mean - 0.1307).abs() < 1e-4, "pixel mean {mean}");
}

fn err_text(r: Result<impl Sized, Error>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn images(n: usize, h: usize, w: usize) -> IdxArray {
    IdxArray { dims: vec![n, h, w], data: IdxData::U8((0..n * h * w).map(|i| (i * 7 % 256) as u8).collect()) }
}

#[test]
fn idx_reader_rejects_bad_files_with_clear_messages() {
    let p = Path::new("some/file-idx3-ubyte");
    let good = encode_idx(&images(3, 28, 28));
    assert_eq!(parse_idx(&good, p).unwrap().dims, vec![3, 28, 28]);

    let t = err_text(parse_idx(&good[..good.len() - 5], p));
    assert!(t.contains("some/file-idx3-ubyte") && t.contains("truncated"), "{t}");
    let t = err_text(parse_idx(&good[..10], p));
    assert!(t.contains("truncated IDX header"), "{t}");
    let mut bad = good.clone();
    bad[0] = 0x1f;
    assert!(err_text(parse_idx(&bad, p)).contains("not an IDX file"));
    let mut bad = good.clone();
    bad[2] = 0x07;
    assert!(err_text(parse_idx(&bad, p)).contains("invalid IDX element type"));
    let mut bad = good.clone();
    bad.push(0);
    assert!(err_text(parse_idx(&bad, p)).contains("unexpected bytes"));
    assert!(err_text(parse_idx(&[0, 0], p)).contains("shorter than the 4-byte magic"));
    let labels = encode_idx(&IdxArray { dims: vec![2], data: IdxData::I32(vec![1, 2]) });
    assert!(err_text(parse_idx(&labels, p).unwrap().into_u8(p)).contains("expected unsigned-byte"));
}

/// Writes MNIST-named files into `dir` (gzipped when `gz`).
fn write_mnist_like(
    dir: &Path,
    train: IdxArray,
    train_labels: Vec<u8>,
    test: IdxArray,
    test_labels: Vec<u8>,
    gz: bool,
) {
    let files = [
        ("train-images-idx3-ubyte", encode_idx(&train)),
        (
            "train-labels-idx1-ubyte",
            encode_idx(&IdxArray { dims: vec![train_labels.len()], data: IdxData::U8(train_labels) }),
        ),
        ("t10k-images-idx3-ubyte", encode_idx(&test)),
        (
            "t10k-labels-idx1-ubyte",
            encode_idx(&IdxArray { dims: vec![test_labels.len()], data: IdxData::U8(test_labels) }),
        ),
    ];
    for (name, bytes) in files {
        if gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            std::fs::write(dir.join(format!("{name}.gz")), e.finish().unwrap()).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

#[test]
fn mnist_folder_loads_and_rejects_inconsistent_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_mnist_like(d, images(30, 28, 28), labels(30), images(10, 28, 28), labels(10), true);
    let ds = mnist::from_dir(d).expect("valid folder");
    assert_eq!((ds.n_train(), ds.n_test()), (30, 10));
    assert!(ds.provenance.contains("not the published MNIST"));

    // Raw (not gzipped) works too.
    let raw = tempfile::tempdir().unwrap();
    write_mnist_like(raw.path(), images(20, 28, 28), labels(20), images(10, 28, 28), labels(10), false);
    assert_eq!(mnist::from_dir(raw.path()).unwrap().n_train(), 20);

    write_mnist_like(d, images(30, 32, 32), labels(30), images(10, 28, 28), labels(10), true);
    let t = err_text(mnist::from_dir(d));
    assert!(t.contains("train-images-idx3-ubyte.gz") && t.contains("32×32, expected 28×28"), "{t}");

    let mut bad_labels = labels(30);
    bad_labels[17] = 12;
    write_mnist_like(d, images(30, 28, 28), bad_labels, images(10, 28, 28), labels(10), true);
    let t = err_text(mnist::from_dir(d));
    assert!(t.contains("label 12 at index 17"), "{t}");

    write_mnist_like(d, images(30, 28, 28), labels(29), images(10, 28, 28), labels(10), true);
    assert!(err_text(mnist::from_dir(d)).contains("29 labels for 30 images"));

    std::fs::remove_file(d.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert!(err_text(mnist::from_dir(d)).contains("missing t10k-labels-idx1-ubyte"));
    assert!(err_text(mnist::from_dir(&d.join("nowhere"))).contains("not a folder"));

    std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    assert!(err_text(mnist::from_dir(d)).contains("corrupt or truncated gzip"));

    let missing = err_text(read_idx(&d.join("absent.gz")));
    assert!(missing.contains("cannot read") && missing.contains("absent.gz"), "{missing}");
}

#[test]
fn labelled_subset_is_balanced_seeded_and_checked() {
    let labels: Vec<u32> = (0..1000).map(|i| (i * 7 % 10) as u32).collect();
    let s = balanced_subset(&labels, 10, 100, 3).unwrap();
    assert_eq!(s.len(), 100);
    for c in 0..10 {
        assert_eq!(s.iter().filter(|&&i| labels[i as usize] == c).count(), 10);
    }
    assert_eq!(s, balanced_subset(&labels, 10, 100, 3).unwrap());
    assert_ne!(s, balanced_subset(&labels, 10, 100, 4).unwrap());
    assert!(balanced_subset(&labels, 10, 0, 3).unwrap().is_empty());
    assert!(err_text(balanced_subset(&labels, 10, 25, 3)).contains("multiple of 10"));
    assert!(err_text(balanced_subset(&labels, 10, 1010, 3)).contains("only 100"));
}

#[test]
fn test_set_is_binarised_once_and_training_batches_afresh() {
    let d = mnist::bundled().unwrap().truncated(50, 20);
    let dev = Device::Cpu;
    let a = DeviceData::<f32>::new(&dev, &d);
    let b = DeviceData::<f32>::new(&dev, &d);
    assert_eq!(a.test.to_vec(), b.test.to_vec(), "the test binarisation must be fixed");
    assert!(a.test.to_vec().iter().all(|&v| v == 0.0 || v == 1.0));
    let rows = [3u32, 7, 7];
    let s = cagem_autodiff::RngStream::new(1, 1);
    let x1 = a.train_batch(&rows, s).to_vec();
    assert_eq!(x1, a.train_batch(&rows, s).to_vec());
    let x2 = a.train_batch(&rows, cagem_autodiff::RngStream::new(1, 2)).to_vec();
    assert_ne!(x1, x2, "new streams must give new draws");
    // Pixels that are 0 in the data are never on; the two draws of row 7 differ somewhere.
    for (i, &v) in x1.iter().enumerate() {
        let p = d.train_images[rows[i / 784] as usize * 784 + i % 784];
        assert!(p > 0 || v == 0.0);
    }
    assert_ne!(x1[784..1568], x1[1568..2352]);
}
