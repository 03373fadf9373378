//! Pictures: image sizes as documented, class-conditional samples that depend on the class,
//! PCA on known data, PNG files that decode.

use cagem::ModelConfig;
use cagem::model::{Cagem, ClusterChoice, NoiseStreams};
use cagem_autodiff::{Device, Tensor};
use cagem_report::pca::pca2;
use cagem_report::pictures::{Panel, grid_size, scatter_panels, side_by_side, tile};

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
    // The first component is ±(a·√2) up to the small b and z parts: it must correlate with a.
    let a: Vec<f64> = (0..200).map(|i| (i as f64 - 100.0) / 10.0).collect();
    let pc1: Vec<f64> = proj.iter().map(|p| p[0]).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ma, mp) = (mean(&a), mean(&pc1));
    let cov: f64 = a.iter().zip(&pc1).map(|(x, y)| (x - ma) * (y - mp)).sum();
    let norm = |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>().sqrt();
    let corr = cov / (norm(&a, ma) * norm(&pc1, mp));
    assert!(corr.abs() > 0.99, "PC 1 does not track the dominant direction: correlation {corr}");
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

#[test]
fn class_z2_draws_come_from_the_class_posterior() {
    let mut m = small_model(4);
    // Sharpen p(y|z2) so that the class posterior p(z2|y) differs clearly from the prior.
    let id = m.store.find("p_y.logits.w").expect("p(y|z2) weight");
    let w = m.store.get(id);
    let sharp: Vec<f64> = w.to_f64_vec().iter().map(|v| 20.0 * v).collect();
    *m.store.get_mut(id) = Tensor::from_f64(&Device::Cpu, w.rows(), w.cols(), &sharp);

    let mean_p = |m: &mut Cagem<f32>, z2: &Tensor<f32>, c: usize| {
        let lp = m.log_p_y_given_z2(z2);
        lp.chunks_exact(10).map(|r| r[c].exp()).sum::<f64>() / z2.rows() as f64
    };
    let prior = m.prior_z2(2000, &mut NoiseStreams::new(4));
    for c in [0u32, 7] {
        let (z2, inexact) = m.class_z2(300, c, 1_000_000, &mut NoiseStreams::new(5));
        assert_eq!((z2.rows(), inexact), (300, 0));
        // E_{p(z2|c)} p(c|z2) = E_prior[p(c|z2)²] / p(c) exceeds p(c) = E_prior p(c|z2).
        let (posterior, marginal) = (mean_p(&mut m, &z2, c as usize), mean_p(&mut m, &prior, c as usize));
        assert!(posterior > marginal + 0.2, "class {c}: E p(c|z2) {posterior} under p(z2|c), {marginal} under p(z2)");
    }
}
