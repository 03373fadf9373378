//! Pictures: image sizes as documented, class-conditional samples that depend on the class,
//! PCA on known data, PNG files that decode.

use cagem::ModelConfig;
use cagem::model::{Cagem, ClusterChoice, NoiseStreams};
use cagem::pictures::{Panel, grid_size, pca2, scatter_panels, side_by_side, tile};
use cagem_autodiff::{Device, Tensor};

fn small_model(z2: usize) -> Cagem<f32> {
    let cfg = ModelConfig { z1: 6, z2, clusters: 10, q_hidden: [32, 16], p_hidden: [16, 32], ..ModelConfig::default() };
    Cagem::new(cfg, 3, &Device::Cpu)
}

fn decode(path: &std::path::Path) -> (u32, u32, png::ColorType) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let reader = dec.read_info().expect("a valid PNG");
    let info = reader.info();
    (info.width, info.height, info.color_type)
}

#[test]
fn sample_grids_have_the_documented_size_and_decode() {
    let mut m = small_model(4);
    let mut noise = NoiseStreams::new(1);
    let z2 = m.prior_z2(23, &mut noise);
    let g = m.generate(&z2, ClusterChoice::Sample, &mut noise);
    assert_eq!(g.x.len(), 23 * 784);
    assert!(g.x.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert!(g.y.iter().all(|&y| y < 10));
    let img = tile(&g.x, 28, 28, 5, 2);
    assert_eq!((img.width, img.height), grid_size(23, 28, 28, 5, 2));
    assert_eq!((img.width, img.height), (5 * 58 + 2, 5 * 58 + 2));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.png");
    img.save(&path).unwrap();
    assert_eq!(decode(&path), (img.width as u32, img.height as u32, png::ColorType::Grayscale));
    let both = side_by_side(&[img, tile(&g.x[..784], 28, 28, 1, 1)], 16);
    assert_eq!((both.width, both.height), (292 + 16 + 32, 292));
}

#[test]
fn class_conditional_samples_depend_on_the_class() {
    let mut m = small_model(4);
    let z2 = m.prior_z2(8, &mut NoiseStreams::new(2));
    let start = NoiseStreams::new(9);
    let a = m.generate(&z2, ClusterChoice::Fixed(0), &mut start.clone());
    let b = m.generate(&z2, ClusterChoice::Fixed(1), &mut start.clone());
    let a2 = m.generate(&z2, ClusterChoice::Fixed(0), &mut start.clone());
    assert!(a.y.iter().all(|&y| y == 0) && b.y.iter().all(|&y| y == 1));
    assert_eq!(a.x, a2.x, "same class, z2 and noise must give the same pictures");
    let diff: f64 = a.x.iter().zip(&b.x).map(|(p, q)| (p - q).abs()).sum::<f64>() / a.x.len() as f64;
    assert!(diff > 1e-3, "classes 0 and 1 give the same pictures (mean |Δ| = {diff})");
}

#[test]
fn reconstructions_and_latent_means_have_the_right_shapes() {
    let mut m = small_model(3);
    let x: Vec<f64> = (0..5 * 784).map(|i| ((i * 7919) % 13 == 0) as u8 as f64).collect();
    let x = Tensor::<f32>::from_f64(&Device::Cpu, 5, 784, &x);
    assert_eq!(m.reconstruct(&x).len(), 5 * 784);
    let (z1, z2) = m.latent_means(&x);
    assert_eq!((z1.len(), z2.len()), (5 * 6, 5 * 3));
}

#[test]
fn pca_finds_the_dominant_directions() {
    // Points spread along (1, 1, 0) far more than along (1, −1, 0), with a little noise in z.
    let mut data = Vec::new();
    for i in 0..200 {
        let (a, b) = ((i as f64 - 100.0) / 10.0, ((i * 37 % 11) as f64 - 5.0) / 10.0);
        data.extend([a + b, a - b, 0.01 * (i % 3) as f64]);
    }
    let (proj, var) = pca2(&data, 3);
    assert_eq!(proj.len(), 200);
    assert!(var[0] > 0.9 && var[0] + var[1] > 0.999, "explained variance {var:?}");
    // The first component is ±(a·√2): check it tracks a.
    let r = proj.iter().enumerate().map(|(i, p)| p[0] * (i as f64 - 100.0)).sum::<f64>();
    assert!(r.abs() > 0.0);
}

#[test]
fn latent_scatter_writes_a_png_of_the_given_size() {
    let pts: Vec<[f64; 2]> = (0..300).map(|i| [(i as f64).sin(), (i as f64 * 0.7).cos()]).collect();
    let labels: Vec<u32> = (0..300).map(|i| (i % 10) as u32).collect();
    let names: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    let axes = || ["PC 1".to_string(), "PC 2".to_string()];
    let panels = [
        Panel { title: "z1".into(), points: &pts, axes: axes() },
        Panel { title: "z2".into(), points: &pts, axes: axes() },
    ];
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("latent.png");
    scatter_panels(&path, &panels, &labels, &names, (800, 400)).unwrap();
    assert_eq!(decode(&path), (800, 400, png::ColorType::Rgb));
}
