//! The counter-based generator: Philox4x32-10 known-answer vectors (Random123's kat_vectors),
//! reproducibility from the seed, independence of streams, chunking-independence of the fills,
//! and the first two moments of the normal and uniform draws.

mod common;

use cagem_kernels::rng::{HostRng, RngStream, fill_normal, fill_uniform, normal_at, philox4x32_10, uniform_at};

#[test]
fn philox_known_answers() {
    assert_eq!(philox4x32_10([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    assert_eq!(
        philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

#[test]
fn same_seed_same_numbers_other_seed_or_stream_other_numbers() {
    let seed = common::fresh_seed();
    let n = 100_003;
    let draw = |seed, stream| {
        let mut v = vec![0f32; n];
        fill_normal(&mut v, RngStream::new(seed, stream));
        v
    };
    let a = draw(seed, 1);
    assert_eq!(a, draw(seed, 1), "seed {seed}");
    let b = draw(seed.wrapping_add(1), 1);
    let c = draw(seed, 2);
    let same = |x: &[f32], y: &[f32]| x.iter().zip(y).filter(|(p, q)| p == q).count();
    assert!(same(&a, &b) < 10 && same(&a, &c) < 10, "streams overlap (seed {seed})");
}

#[test]
fn parallel_fills_match_elementwise_draws() {
    let seed = common::fresh_seed();
    let s = RngStream::new(seed, u64::MAX - 3); // high stream words are part of the counter
    let n = 70_001; // several parallel chunks and a ragged tail
    let mut v = vec![0f64; n];
    fill_normal(&mut v, s);
    let mut u = vec![0f64; n];
    fill_uniform(&mut u, s);
    for i in (0..n).step_by(997).chain(n - 5..n) {
        assert_eq!(v[i], normal_at(s, i as u64), "normal {i} (seed {seed})");
        assert_eq!(u[i], uniform_at(s, i as u64), "uniform {i} (seed {seed})");
    }
}

#[test]
fn moments_of_normal_and_uniform_draws() {
    let seed = common::fresh_seed();
    let n = 1 << 20;
    let mut v = vec![0f64; n];
    fill_normal(&mut v, RngStream::new(seed, 0));
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    let kurt = v.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
    // 6σ bounds: standard error of the mean 1/√n ≈ 0.001, of the variance √(2/n) ≈ 0.0014.
    assert!(mean.abs() < 0.006, "normal mean {mean} (seed {seed})");
    assert!((var - 1.0).abs() < 0.009, "normal variance {var} (seed {seed})");
    assert!((kurt - 3.0).abs() < 0.05, "normal kurtosis {kurt} (seed {seed})");
    let mut u = vec![0f64; n];
    fill_uniform(&mut u, RngStream::new(seed, 1));
    assert!(u.iter().all(|&x| x > 0.0 && x < 1.0));
    let um = u.iter().sum::<f64>() / n as f64;
    assert!((um - 0.5).abs() < 0.0017, "uniform mean {um} (seed {seed})");
}

#[test]
fn host_rng_restores_its_position() {
    let seed = common::fresh_seed();
    let mut a = HostRng::new(seed, 4);
    for skip in [0usize, 1, 3, 4, 5, 11] {
        let mut b = a.clone();
        for _ in 0..skip {
            b.next_u32();
        }
        let (s, st, drawn) = b.position();
        let mut c = HostRng::at_position(s, st, drawn);
        for _ in 0..9 {
            assert_eq!(b.next_u32(), c.next_u32(), "after {skip} draws (seed {seed})");
        }
    }
    let mut idx: Vec<u32> = (0..1000).collect();
    a.shuffle(&mut idx);
    let mut sorted = idx.clone();
    sorted.sort();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_ne!(idx, sorted);
    for _ in 0..1000 {
        assert!(a.below(7) < 7);
        let f = a.next_f64();
        assert!((0.0..1.0).contains(&f));
    }
}
