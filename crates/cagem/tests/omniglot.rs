//! The derived 28×28 OMNIGLOT: the documented split (drawers 1–15 train, 16–20 test), no
//! drawing of a character in both parts, 50 alphabets as labels, and an area-preserving
//! downsampling.

use std::collections::HashSet;

use cagem::data::omniglot::{self, CHARACTERS, CLASSES, SIDE, SOURCE_SIDE, TRAIN_DRAWERS, downsample};

#[test]
fn split_has_the_stated_counts_and_no_drawing_in_both_parts() {
    let (train, test) = omniglot::bundled_labels().expect("bundled OMNIGLOT labels");
    assert_eq!(train.len(), 24_345);
    assert_eq!(test.len(), 8_115);
    assert!(train.iter().all(|r| (r[2] as usize) < TRAIN_DRAWERS), "a test drawer in the training part");
    assert!(test.iter().all(|r| (r[2] as usize) >= TRAIN_DRAWERS), "a training drawer in the test part");
    let key = |r: &[i32; 3]| (r[0], r[2]);
    let train_keys: HashSet<_> = train.iter().map(key).collect();
    let test_keys: HashSet<_> = test.iter().map(key).collect();
    assert_eq!(train_keys.len(), train.len(), "a (character, drawer) repeated in training");
    assert!(train_keys.is_disjoint(&test_keys), "a character's drawing is in both parts");
    // Every character: 15 drawings to train, 5 to test; every alphabet in both parts.
    let chars = |rows: &Vec<[i32; 3]>| rows.iter().map(|r| r[0]).collect::<HashSet<_>>();
    assert_eq!(chars(&train).len(), CHARACTERS);
    assert_eq!(chars(&test).len(), CHARACTERS);
    let alphabets = |rows: &Vec<[i32; 3]>| rows.iter().map(|r| r[1]).collect::<HashSet<_>>();
    assert_eq!(alphabets(&train).len(), CLASSES);
    assert_eq!(alphabets(&test).len(), CLASSES);

    let d = omniglot::bundled().expect("bundled OMNIGLOT");
    assert_eq!((d.n_train(), d.n_test(), d.dim(), d.n_classes), (24_345, 8_115, 784, 50));
    assert!(d.train_labels.iter().all(|&l| (l as usize) < CLASSES));
    // Enough of every alphabet for --labels 500 (10 per alphabet).
    let mut per = vec![0usize; CLASSES];
    d.train_labels.iter().for_each(|&l| per[l as usize] += 1);
    assert!(per.iter().all(|&n| n >= 10), "{per:?}");
}

#[test]
fn downsampling_preserves_ink_area() {
    let full = vec![1u8; SOURCE_SIDE * SOURCE_SIDE];
    assert!(downsample(&full).iter().all(|&v| v == 255));
    assert!(downsample(&vec![0u8; SOURCE_SIDE * SOURCE_SIDE]).iter().all(|&v| v == 0));
    // One ink pixel at (50, 50): it lies inside output pixel (13, 13) (3.75·13 = 48.75 ≤ 50 < 52.5),
    // which therefore holds 1/3.75² of ink, i.e. round(255/14.0625) = 18.
    let mut one = vec![0u8; SOURCE_SIDE * SOURCE_SIDE];
    one[50 * SOURCE_SIDE + 50] = 1;
    let d = downsample(&one);
    assert_eq!(d[13 * SIDE + 13], 18);
    assert_eq!(d.iter().filter(|&&v| v > 0).count(), 1);
    // A pixel straddling two output columns (source column 48: [48, 49) vs the boundary 48.75)
    // splits its ink 3:1.
    let mut edge = vec![0u8; SOURCE_SIDE * SOURCE_SIDE];
    edge[50 * SOURCE_SIDE + 48] = 1;
    let d = downsample(&edge);
    let (left, right) = (d[13 * SIDE + 12] as f64, d[13 * SIDE + 13] as f64);
    assert!(
        (left / 255.0 - 0.75 / 14.0625).abs() < 0.5 / 255.0 && (right / 255.0 - 0.25 / 14.0625).abs() < 0.5 / 255.0
    );
}
