//! `cagem sample`, `reconstruct`, `latent` and `grid`: pictures of a trained run.

use std::path::Path;

use cagem::checkpoint;
use cagem::data::{Dataset, DeviceData};
use cagem::model::{Cagem, ClusterChoice, NoiseStreams};
use cagem::{Error, Result};
use cagem_autodiff::Tensor;
use cagem_report::pictures::{Panel, scatter_panels, side_by_side, tile};

use crate::args::{DeviceArgs, GridArgs, LatentArgs, ReconstructArgs, SampleArgs, checkpoint_file};
use crate::data_source;

/// Stream number of picture noise (under the user's seed).
const PICTURE_STREAM_BASE: u64 = 0x5049_4354; // "PICT"

fn load_run(run: &Path, which: &str, device: &DeviceArgs) -> Result<(Cagem<f32>, checkpoint::CheckpointMeta)> {
    let device = device.open()?;
    let (model, _, meta) = checkpoint::load_file::<f32>(run, checkpoint_file(which), &device)?;
    Ok((model, meta))
}

fn load_data(meta: &checkpoint::CheckpointMeta) -> Result<Dataset> {
    let data = data_source::for_run(&meta.train, &meta.model, None)?;
    if data.n_test() == 0 {
        return Err(data_source::no_test_set(&data));
    }
    Ok(data)
}

/// The first `n` test examples as the model sees them.
fn test_rows(model: &Cagem<f32>, data: &Dataset, n: usize) -> DeviceData<f32> {
    let st = model.standardizer();
    DeviceData::<f32>::for_model(&model.device(), &data.truncated(2, n), &model.cfg, st.as_ref())
}

fn check_zoom(z: usize) -> Result<()> {
    if (1..=16).contains(&z) { Ok(()) } else { Err(Error::config(format!("--zoom {z} must be between 1 and 16"))) }
}

fn check_class(class: Option<u32>, k: usize) -> Result<()> {
    match class {
        Some(c) if c as usize >= k => {
            Err(Error::config(format!("--class {c} is out of range: the model has {k} clusters (0..={})", k - 1)))
        }
        _ => Ok(()),
    }
}

fn cols_for(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).max(1)
}

fn done(path: &Path, w: usize, h: usize) -> Result<()> {
    println!("wrote {} ({w} × {h} pixels)", path.display());
    Ok(())
}

pub fn sample(a: SampleArgs) -> Result<()> {
    check_zoom(a.common.zoom)?;
    if a.n == 0 || a.n > 10_000 {
        return Err(Error::config("--n must be between 1 and 10000"));
    }
    let (mut model, _) = load_run(&a.common.run, &a.common.checkpoint, &a.common.device)?;
    check_class(a.class, model.cfg.clusters)?;
    let mut noise = NoiseStreams { seed: a.seed, next: PICTURE_STREAM_BASE };
    let z2 = match a.class {
        None => model.prior_z2(a.n, &mut noise),
        Some(c) => {
            // z2 ~ p(z2|y=c), so that the pictures are samples of p(x|y=c).
            let (z2, inexact) = model.class_z2(a.n, c, 100 * a.n * model.cfg.clusters, &mut noise);
            if inexact > 0 {
                eprintln!(
                    "warning: class {c} is so unlikely under p(y|z2) that {inexact} of the {} z2 are the prior \
                     draws most likely under it, not exact draws from p(z2|y={c})",
                    a.n
                );
            }
            z2
        }
    };
    let choice = a.class.map_or(ClusterChoice::Sample, ClusterChoice::Fixed);
    let g = model.generate(&z2, choice, &mut noise);
    let (h, w) = (model.cfg.height, model.cfg.width);
    let img = tile(&g.x, h, w, cols_for(a.n), a.common.zoom);
    img.save(&a.common.out)?;
    done(&a.common.out, img.width, img.height)
}

pub fn reconstruct(a: ReconstructArgs) -> Result<()> {
    check_zoom(a.common.zoom)?;
    let (mut model, meta) = load_run(&a.common.run, &a.common.checkpoint, &a.common.device)?;
    let data = load_data(&meta)?;
    if a.n == 0 || a.n > data.n_test() {
        return Err(Error::config(format!("--n must be between 1 and the {} test images", data.n_test())));
    }
    let dd = test_rows(&model, &data, a.n);
    let x = dd.test_batch(0, a.n);
    let recon = model.reconstruct(&x);
    // The originals in the data's units (binarised for Bernoulli, as the model sees them).
    let orig: Vec<f64> = match model.cfg.likelihood {
        cagem::Likelihood::Bernoulli => x.to_f64_vec(),
        cagem::Likelihood::Gaussian => data.test_features::<f64>()[..a.n * model.cfg.x_dim].to_vec(),
    };
    // Pairs in adjacent columns: original, reconstruction.
    let d = model.cfg.x_dim;
    let mut pairs = Vec::with_capacity(2 * a.n * d);
    for i in 0..a.n {
        pairs.extend_from_slice(&orig[i * d..(i + 1) * d]);
        pairs.extend_from_slice(&recon[i * d..(i + 1) * d]);
    }
    let cols = 2 * cols_for(a.n).min(10);
    let img = tile(&pairs, model.cfg.height, model.cfg.width, cols, a.common.zoom);
    img.save(&a.common.out)?;
    done(&a.common.out, img.width, img.height)
}

pub fn latent(a: LatentArgs) -> Result<()> {
    let (mut model, meta) = load_run(&a.run, &a.checkpoint, &a.device)?;
    let data = load_data(&meta)?;
    let n = a.n_test.unwrap_or(data.n_test());
    if n < 3 || n > data.n_test() {
        return Err(Error::config(format!("--n-test must be between 3 and {}", data.n_test())));
    }
    let dd = test_rows(&model, &data, n);
    let (z1, z2) = cagem::eval::posterior_means(&mut model, &dd.test, &mut |_| {});
    let (p1, v1) = cagem_report::pca::pca2(&z1, model.cfg.z1);
    let (p2, v2) = cagem_report::pca::pca2(&z2, model.cfg.z2);
    let mut names: Vec<String> = (0..data.n_classes).map(|c| c.to_string()).collect();
    let mut labels = data.test_labels[..n].to_vec();
    if labels.contains(&cagem::data::UNLABELLED) {
        // Unlabelled examples get a colour of their own.
        labels.iter_mut().filter(|l| **l == cagem::data::UNLABELLED).for_each(|l| *l = names.len() as u32);
        names.push("unlabelled".into());
    }
    let axes =
        |v: [f64; 2]| [format!("PC 1 ({:.0}% of variance)", 100.0 * v[0]), format!("PC 2 ({:.0}%)", 100.0 * v[1])];
    let panels = [
        Panel { title: format!("E[z1 | x], {} test images", n), points: &p1, axes: axes(v1) },
        Panel {
            title: format!("E[z2 | x], coloured by {}", if data.name == "omniglot" { "alphabet" } else { "label" }),
            points: &p2,
            axes: axes(v2),
        },
    ];
    let (w, h) = (1600, 800);
    scatter_panels(&a.out, &panels, &labels, &names, (w, h))?;
    done(&a.out, w as usize, h as usize)
}

pub fn grid(a: GridArgs) -> Result<()> {
    check_zoom(a.common.zoom)?;
    if !((2..=40).contains(&a.steps) && a.span > 0.0 && a.span.is_finite()) {
        return Err(Error::config("--steps must be between 2 and 40 and --span positive"));
    }
    let (mut model, _) = load_run(&a.common.run, &a.common.checkpoint, &a.common.device)?;
    if model.cfg.z2 != 2 {
        return Err(Error::config(format!(
            "the z2 grid needs a model trained with --z2 2; this run has z2 = {}",
            model.cfg.z2
        )));
    }
    check_class(a.class, model.cfg.clusters)?;
    let s = a.steps;
    // Row r (top to bottom) has z2[1] from +span to −span; column c has z2[0] from −span to +span.
    let coord = |i: usize| -a.span + 2.0 * a.span * i as f64 / (s - 1) as f64;
    let z: Vec<f64> = (0..s * s).flat_map(|i| [coord(i % s), coord(s - 1 - i / s)]).collect();
    let z2 = Tensor::<f32>::from_f64(&model.device(), s * s, 2, &z);
    let conditional = a.class.map_or(ClusterChoice::MostLikely, ClusterChoice::Fixed);
    let start = NoiseStreams { seed: a.seed, next: PICTURE_STREAM_BASE };
    // The same z1 noise in both panels, so they differ only by the choice of y.
    let random = model.generate(&z2, ClusterChoice::Sample, &mut start.clone());
    let cond = model.generate(&z2, conditional, &mut start.clone());
    let (h, w) = (model.cfg.height, model.cfg.width);
    let img = side_by_side(&[tile(&random.x, h, w, s, a.common.zoom), tile(&cond.x, h, w, s, a.common.zoom)], 16);
    img.save(&a.common.out)?;
    done(&a.common.out, img.width, img.height)
}
