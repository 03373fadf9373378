//! Learning curves of run folders: reading RUN/metrics.jsonl (and RUN/eval/*.json, the outputs of
//! `cagem eval --json`) and drawing them as one PNG, a grid of panels with one colour per run and
//! the paper's figures (crate::paper) as dashed lines. Drawn with plotters into memory with the
//! embedded DejaVu font of crate::pictures, written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::pictures::{class_color, encode_png, register_font};
use cagem::atomic::write_atomic;
use cagem::checkpoint::CONFIG_FILE;
use cagem::error::{Error, Result};
use cagem::train::metrics::METRICS_FILE;

/// The numbers of one epoch line of metrics.jsonl (or of one evaluation), by key; keys whose value
/// is not a number (null, strings, objects) are left out.
pub type Record = BTreeMap<String, f64>;

/// What the curves of one run folder are drawn from.
#[derive(Clone, Debug)]
pub struct RunCurves {
    /// The name shown in the legend: the folder's name.
    pub name: String,
    pub dir: PathBuf,
    /// From config.json, where it exists.
    pub dataset: Option<String>,
    pub labels: Option<usize>,
    pub clusters: Option<usize>,
    /// The epoch lines of metrics.jsonl in epoch order (event lines left out; of lines repeating an
    /// epoch, the last).
    pub epochs: Vec<Record>,
    /// The evaluations of RUN/eval/*.json, with their keys renamed to metrics.jsonl's test keys
    /// (log_likelihood → test_log_likelihood, ...) and their epoch under "epoch", in epoch order.
    pub evals: Vec<Record>,
}

/// `cagem eval --json` keys and the metrics.jsonl keys of the same quantities.
const EVAL_KEYS: [(&str, &str); 15] = [
    ("routing", "test_routing"),
    ("routing_sampled", "test_routing_sampled"),
    ("z2_separation", "test_z2_separation"),
    ("z2_separation_by_q", "test_z2_separation_by_q"),
    ("clusters_used", "test_clusters_used"),
    ("clusters_perplexity", "test_clusters_perplexity"),
    ("log_likelihood", "test_log_likelihood"),
    ("elbo", "test_elbo"),
    ("error_p", "test_error_p"),
    ("error_q", "test_error_q"),
    ("kl_z2", "test_kl_z2"),
    ("active_units_z1", "test_active_units_z1"),
    ("active_units_z2", "test_active_units_z2"),
    ("iw_k", "test_k"),
    ("n_test", "test_n"),
];

impl RunCurves {
    /// (epoch, value) of `key` over the epoch lines.
    pub fn train_series(&self, key: &str) -> Vec<(f64, f64)> {
        series_of(&self.epochs, key)
    }

    /// (epoch, value) of the test metric `key` (e.g. "test_elbo") over the epoch lines and the
    /// evaluations together, in epoch order.
    pub fn test_series(&self, key: &str) -> Vec<(f64, f64)> {
        let mut s = series_of(&self.epochs, key);
        s.extend(series_of(&self.evals, key));
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
        s
    }

    /// The paper's test log-likelihood (nats) and p(y|x) error (fraction) for this run's
    /// configuration, where the paper reports them.
    pub fn paper(&self) -> (Option<f64>, Option<f64>) {
        match (&self.dataset, self.labels, self.clusters) {
            (Some(d), Some(l), Some(k)) => crate::paper::reported_for(d, l, k),
            _ => (None, None),
        }
    }

    /// The authors' published q(y|x) error curve for this run's configuration (crate::paper's
    /// ADGM log), empty where there is none.
    pub fn authors_log_error_q(&self) -> &'static [(f64, f64)] {
        match (&self.dataset, self.labels, self.clusters) {
            (Some(d), Some(l), Some(k)) => crate::paper::authors_log_error_q(d, l, k),
            _ => &[],
        }
    }
}

fn series_of(records: &[Record], key: &str) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter_map(|r| Some((*r.get("epoch")?, *r.get(key)?)))
        .filter(|(e, v)| e.is_finite() && v.is_finite())
        .collect()
}

/// The numeric members of a JSON object.
fn numbers(obj: &serde_json::Map<String, serde_json::Value>) -> Record {
    obj.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect()
}

/// The epoch lines of a metrics.jsonl whose text is `text` (read from `path`, named in errors
/// with the line number): blank lines and lines with an "event" key are skipped.
pub fn parse_metrics(path: &Path, text: &str) -> Result<Vec<Record>> {
    let mut by_epoch = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::data(path, format!("line {n} is not JSON: {e}")))?;
        let Some(obj) = v.as_object() else {
            return Err(Error::data(path, format!("line {n} is not a JSON object")));
        };
        if obj.contains_key("event") {
            continue;
        }
        let Some(epoch) = obj.get("epoch").and_then(|e| e.as_u64()) else {
            return Err(Error::data(path, format!("line {n} has no \"event\" and no whole \"epoch\" number")));
        };
        by_epoch.insert(epoch, numbers(obj));
    }
    Ok(by_epoch.into_values().collect())
}

/// Reads the curves of run folder `dir`: metrics.jsonl (required), config.json and eval/*.json
/// (where they exist).
pub fn read_run(dir: &Path) -> Result<RunCurves> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, "read the run folder", e))?;
    if !meta.is_dir() {
        return Err(Error::config(format!(
            "{} is not a run folder (a folder written by `cagem train`)",
            dir.display()
        )));
    }
    let metrics_path = dir.join(METRICS_FILE);
    let text = std::fs::read_to_string(&metrics_path).map_err(|e| Error::io(&metrics_path, "read", e))?;
    let epochs = parse_metrics(&metrics_path, &text)?;

    let (mut dataset, mut labels, mut clusters) = (None, None, None);
    let config_path = dir.join(CONFIG_FILE);
    if config_path.exists() {
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, "read", e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::data(&config_path, format!("not JSON: {e}")))?;
        dataset = v.pointer("/train/dataset").and_then(|d| d.as_str()).map(str::to_string);
        labels = v.pointer("/train/labels").and_then(|d| d.as_u64()).map(|l| l as usize);
        clusters = v.pointer("/model/clusters").and_then(|d| d.as_u64()).map(|k| k as usize);
    }

    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| std::fs::canonicalize(dir).ok()?.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    Ok(RunCurves { name, dir: dir.to_path_buf(), dataset, labels, clusters, epochs, evals: read_evals(dir)? })
}

/// The evaluations of RUN/eval/*.json: each file's epoch is its "epochs" key, else the N of
/// epochN.json; files with neither, or without any metric, are not points.
fn read_evals(dir: &Path) -> Result<Vec<Record>> {
    let eval_dir = dir.join("eval");
    if !eval_dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(&eval_dir).map_err(|e| Error::io(&eval_dir, "read", e))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&eval_dir, "read", e))?.path();
        if path.extension().is_none_or(|x| x != "json") || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, "read", e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::data(&path, format!("not JSON (expected the output of `cagem eval --json`): {e}")))?;
        let Some(obj) = v.as_object() else { continue };
        let raw = numbers(obj);
        let from_name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix("epoch"))
            .and_then(|s| s.parse::<f64>().ok());
        let Some(epoch) = raw.get("epochs").copied().or(from_name) else { continue };
        let mut rec: Record =
            EVAL_KEYS.iter().filter_map(|(from, to)| Some((to.to_string(), *raw.get(*from)?))).collect();
        if rec.is_empty() {
            continue;
        }
        rec.insert("epoch".into(), epoch);
        out.push(rec);
    }
    out.sort_by(|a, b| a["epoch"].total_cmp(&b["epoch"]));
    Ok(out)
}

/// How a series is drawn.
#[derive(Clone, Copy, PartialEq)]
enum Marker {
    /// A line only.
    Line,
    /// Filled circles.
    Dot,
    /// Hollow circles.
    Ring,
    /// Filled triangles.
    Tri,
    /// Crosses (the authors' published figures).
    Cross,
}

struct SeriesSpec {
    key: &'static str,
    /// From the test keys (epoch lines and evaluations) rather than the training keys.
    test: bool,
    label: &'static str,
    dashed: bool,
    marker: Marker,
}

const fn train(key: &'static str, label: &'static str) -> SeriesSpec {
    SeriesSpec { key, test: false, label, dashed: false, marker: Marker::Line }
}

const fn test(key: &'static str, label: &'static str, dashed: bool, marker: Marker) -> SeriesSpec {
    SeriesSpec { key, test: true, label, dashed, marker }
}

/// Published points drawn beside a panel's curves (grey crosses on a dotted line), in the unit of
/// the series before the panel's scale.
struct Reference {
    label: &'static str,
    points: fn(&RunCurves) -> &'static [(f64, f64)],
}

/// How a panel chooses its y range.
#[derive(Clone, Copy)]
enum YRange {
    /// From the 5th percentile of the values after epoch 1 (the first epochs are far below the
    /// rest) to the largest.
    Clipped,
    /// From 0 to the largest.
    Zero,
    /// From the smallest to the largest.
    Data,
}

/// Where a panel's legend goes: the first of its preferred place and the others (in this order)
/// that covers the fewest of the panel's drawn pixels.
#[derive(Clone, Copy, PartialEq)]
enum Corner {
    UpperRight,
    LowerRight,
    UpperLeft,
    LowerLeft,
    MiddleRight,
    MiddleLeft,
    UpperMiddle,
    LowerMiddle,
}

const CORNERS: [Corner; 8] = [
    Corner::UpperRight,
    Corner::LowerRight,
    Corner::UpperLeft,
    Corner::LowerLeft,
    Corner::MiddleRight,
    Corner::MiddleLeft,
    Corner::UpperMiddle,
    Corner::LowerMiddle,
];

struct PanelSpec {
    title: &'static str,
    y_desc: &'static str,
    series: Vec<SeriesSpec>,
    /// Multiplies every value (fractions drawn as %).
    scale: f64,
    /// Values drawn as log10 (the axis labels show the values).
    log: bool,
    /// The paper's figure for a run, in the unit of the series (scaled like them).
    paper: fn(&RunCurves) -> Option<f64>,
    reference: Option<Reference>,
    y_range: YRange,
    legend: Corner,
}

fn panels() -> Vec<PanelSpec> {
    vec![
        PanelSpec {
            title: "ELBO and test log-likelihood",
            y_desc: "nats",
            series: vec![
                train("elbo", "train ELBO"),
                test("test_elbo", "test ELBO", false, Marker::Ring),
                test("test_log_likelihood", "test log p(x), IW bound", false, Marker::Tri),
            ],
            scale: 1.0,
            log: false,
            paper: |r| r.paper().0,
            reference: None,
            y_range: YRange::Clipped,
            legend: Corner::LowerRight,
        },
        PanelSpec {
            title: "Test error",
            y_desc: "%",
            series: vec![
                test("test_error_p", "p(y|x)", false, Marker::Dot),
                test("test_error_q", "q(y|x)", true, Marker::Tri),
            ],
            scale: 100.0,
            log: false,
            paper: |r| r.paper().1,
            reference: Some(Reference { label: "authors' ADGM log, q(y|x)", points: RunCurves::authors_log_error_q }),
            y_range: YRange::Zero,
            legend: Corner::UpperRight,
        },
        PanelSpec {
            title: "Test KL(z2)",
            y_desc: "nats",
            series: vec![test("test_kl_z2", "KL(q(z2|x,y,z1) || p(z2|y))", false, Marker::Dot)],
            scale: 1.0,
            log: false,
            paper: |_| None,
            reference: None,
            y_range: YRange::Zero,
            legend: Corner::LowerRight,
        },
        PanelSpec {
            title: "Does z2 hold the clusters? (test)",
            y_desc: "fraction",
            series: vec![
                test("test_routing", "routing (posterior means)", false, Marker::Dot),
                test("test_routing_sampled", "routing (sampled)", true, Marker::Tri),
                test("test_z2_separation", "z2 class separation", true, Marker::Ring),
            ],
            scale: 1.0,
            log: false,
            paper: |_| None,
            reference: None,
            y_range: YRange::Zero,
            legend: Corner::LowerRight,
        },
        PanelSpec {
            title: "Clusters used (test)",
            y_desc: "clusters",
            series: vec![
                test("test_clusters_used", "argmax q(y|x) of >= 1 % of images", false, Marker::Dot),
                test("test_clusters_perplexity", "exp entropy of mean q(y|x)", true, Marker::Tri),
            ],
            scale: 1.0,
            log: false,
            paper: |_| None,
            reference: None,
            y_range: YRange::Zero,
            legend: Corner::LowerRight,
        },
        PanelSpec {
            title: "Active units (test)",
            y_desc: "units",
            series: vec![
                test("test_active_units_z1", "z1", false, Marker::Dot),
                test("test_active_units_z2", "z2", true, Marker::Tri),
            ],
            scale: 1.0,
            log: false,
            paper: |_| None,
            reference: None,
            y_range: YRange::Zero,
            legend: Corner::MiddleRight,
        },
        PanelSpec {
            title: "Learning rate (log scale)",
            y_desc: "lr",
            series: vec![train("lr", "Adam learning rate")],
            scale: 1.0,
            log: true,
            paper: |_| None,
            reference: None,
            y_range: YRange::Data,
            legend: Corner::LowerLeft,
        },
        PanelSpec {
            title: "KL temperature (warm-up)",
            y_desc: "temperature",
            series: vec![train("temperature", "temperature")],
            scale: 1.0,
            log: false,
            paper: |_| None,
            reference: None,
            y_range: YRange::Zero,
            legend: Corner::LowerRight,
        },
    ]
}

const HEADER: u32 = 44;
/// Height of each further line of the legend.
const LEGEND_LINE: u32 = 28;
const DARK: RGBColor = RGBColor(60, 60, 60);
/// The colour of published reference points: a bluish grey, apart from the runs, the paper lines
/// and anti-aliased text.
const REFERENCE: RGBColor = RGBColor(120, 120, 136);

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::config(format!("drawing {}: {e}", path.display()))
}

/// Draws the learning curves of `runs` into the PNG `path` (width × height pixels): a title
/// row naming the runs in their colours over a 4 × 2 grid of panels (ELBO and test log-likelihood,
/// test errors, test KL(z2), routing and z2 separation, clusters used, active units, learning
/// rate, KL temperature). Panels without data say so.
pub fn draw(path: &Path, runs: &[RunCurves], size: (u32, u32)) -> Result<()> {
    let (w, h) = size;
    if w < 200 || h < 200 {
        return Err(Error::config(format!("a curves picture of {w} × {h} pixels is too small (at least 200 × 200)")));
    }
    if runs.is_empty() {
        return Err(Error::config("no runs to draw"));
    }
    register_font();
    let names = legend_names(runs);
    let colors: Vec<RGBColor> = (0..runs.len()).map(|i| class_color(i, runs.len())).collect();
    // Every panel spans the same epochs, so that they line up.
    let specs = panels();
    let max_epoch = runs
        .iter()
        .flat_map(|r| r.epochs.iter().chain(&r.evals))
        .filter_map(|rec| rec.get("epoch").copied())
        .fold(1.0f64, f64::max);
    // A published point just past the runs' last epoch (the ADGM log's 210 beside a 200-epoch
    // run) widens the axis to it; later ones are left out rather than squeezing the curves.
    let max_epoch = specs
        .iter()
        .filter_map(|s| s.reference.as_ref())
        .flat_map(|r| runs.iter().flat_map(|run| (r.points)(run)))
        .map(|p| p.0)
        .filter(|&e| e <= 1.1 * max_epoch)
        .fold(max_epoch, f64::max);

    let mut buf = vec![0u8; (w as usize) * (h as usize) * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let legend = legend_layout(&root, &names).map_err(|e| plot_err(path, e))?;
        let lines = legend.iter().map(|p| p.1).max().unwrap_or(0) as u32 + 1;
        let (header, body) = root.split_vertically(HEADER + (lines - 1) * LEGEND_LINE);
        draw_header(&header, &names, &colors, &legend).map_err(|e| plot_err(path, e))?;
        let areas = body.split_evenly((4, 2));
        for (area, spec) in areas.iter().zip(&specs) {
            draw_panel(area, spec, runs, &colors, max_epoch).map_err(|e| plot_err(path, e))?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    write_atomic(path, &encode_png(w as usize, h as usize, png::ColorType::Rgb, &buf))
}

/// The runs' folder names, or their paths where two runs share a name.
fn legend_names(runs: &[RunCurves]) -> Vec<String> {
    runs.iter()
        .map(|r| {
            if runs.iter().filter(|o| o.name == r.name).count() > 1 {
                r.dir.display().to_string()
            } else {
                r.name.clone()
            }
        })
        .collect()
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawError<'a> = DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;
type DrawResult<'a> = std::result::Result<(), DrawError<'a>>;

fn title_font() -> TextStyle<'static> {
    ("sans-serif", 24).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center))
}

fn legend_font() -> TextStyle<'static> {
    ("sans-serif", 18).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center))
}

/// Where each run's legend entry goes: (x, line), after the title, wrapping to a new line
/// where the next entry would leave the picture (many runs).
fn legend_layout<'a>(area: &Area<'a>, names: &[String]) -> std::result::Result<Vec<(i32, i32)>, DrawError<'a>> {
    let width = area.dim_in_pixel().0 as i32;
    let start = 16 + area.estimate_text_size("Learning curves", &title_font())?.0 as i32 + 40;
    let (mut x, mut line) = (start, 0);
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let item = 36 + area.estimate_text_size(name, &legend_font())?.0 as i32;
        if x > start && x + item > width - 16 {
            (x, line) = (start, line + 1);
        }
        out.push((x, line));
        x += item + 28;
    }
    Ok(out)
}

fn draw_header<'a>(area: &Area<'a>, names: &[String], colors: &[RGBColor], legend: &[(i32, i32)]) -> DrawResult<'a> {
    let y = HEADER as i32 / 2;
    area.draw(&Text::new("Learning curves", (16, y), title_font()))?;
    for ((name, &c), &(x, line)) in names.iter().zip(colors).zip(legend) {
        let y = y + line * LEGEND_LINE as i32;
        area.draw(&Rectangle::new([(x, y - 8), (x + 28, y + 8)], c.filled()))?;
        area.draw(&Text::new(name.clone(), (x + 36, y), legend_font()))?;
    }
    Ok(())
}

/// The value drawn for `v` on a panel.
fn transform(spec: &PanelSpec, v: f64) -> Option<f64> {
    let v = v * spec.scale;
    let v = if spec.log { if v > 0.0 { v.log10() } else { return None } } else { v };
    v.is_finite().then_some(v)
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn y_bounds(spec: &PanelSpec, data: &[Vec<Vec<(f64, f64)>>], papers: &[f64]) -> (f64, f64) {
    let all: Vec<f64> = data.iter().flatten().flatten().map(|p| p.1).collect();
    let later: Vec<f64> = data.iter().flatten().flatten().filter(|p| p.0 >= 2.0).map(|p| p.1).collect();
    let max = all.iter().chain(papers).copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = match spec.y_range {
        YRange::Clipped => {
            // Short runs (a few epochs) show everything: there is no "later" to zoom in on.
            let last = data.iter().flatten().flatten().map(|p| p.0).fold(0.0, f64::max);
            let pool = if later.is_empty() || last < 10.0 { &all } else { &later };
            let lo = papers.iter().copied().fold(quantile(pool, 0.05), f64::min);
            (lo, max)
        }
        YRange::Zero => (0.0f64.min(all.iter().copied().fold(f64::INFINITY, f64::min)), max),
        YRange::Data => (all.iter().chain(papers).copied().fold(f64::INFINITY, f64::min), max),
    };
    let span = hi - lo;
    let m = if span > 1e-12 {
        0.06 * span
    } else if spec.log {
        0.15
    } else {
        0.06 * hi.abs().max(1.0)
    };
    let lo = if matches!(spec.y_range, YRange::Zero) && lo >= 0.0 { 0.0 } else { lo - m };
    (lo, hi + m)
}

/// The pieces of the polyline `points` inside lo ≤ y ≤ hi.
fn clip(points: &[(f64, f64)], lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let inside = |p: &(f64, f64)| (lo..=hi).contains(&p.1);
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false;
    if points.len() == 1 && inside(&points[0]) {
        return vec![points.to_vec()];
    }
    for s in points.windows(2) {
        let (p, q) = (s[0], s[1]);
        let dy = q.1 - p.1;
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        if dy == 0.0 {
            if !inside(&p) {
                open = false;
                continue;
            }
        } else {
            let (ta, tb) = ((lo - p.1) / dy, (hi - p.1) / dy);
            t0 = t0.max(ta.min(tb));
            t1 = t1.min(ta.max(tb));
            if t0 > t1 {
                open = false;
                continue;
            }
        }
        let at = |t: f64| (p.0 + t * (q.0 - p.0), (p.1 + t * dy).clamp(lo, hi));
        if open && t0 == 0.0 {
            pieces.last_mut().expect("an open piece").push(at(t1));
        } else {
            pieces.push(vec![at(t0), at(t1)]);
        }
        open = t1 == 1.0;
    }
    pieces
}

/// One line of a legend: the picture of a series (its line, dashed or not, with its marker) and
/// its label.
struct Entry {
    label: String,
    dashed: bool,
    marker: Marker,
    color: RGBColor,
}

/// Draws a line style's sample 30 pixels wide starting at (x, y).
fn draw_glyph<'a>(area: &Area<'a>, (x, y): (i32, i32), e: &Entry) -> DrawResult<'a> {
    let line = e.color.stroke_width(2);
    let segments: &[(i32, i32)] = if e.dashed { &[(0, 6), (12, 18), (24, 30)] } else { &[(0, 30)] };
    for &(a, b) in segments {
        area.draw(&PathElement::new(vec![(x + a, y), (x + b, y)], line))?;
    }
    let c = (x + 15, y);
    match e.marker {
        Marker::Line => Ok(()),
        Marker::Dot => area.draw(&Circle::new(c, 5, e.color.filled())),
        Marker::Ring => {
            area.draw(&Circle::new(c, 5, WHITE.filled()))?;
            area.draw(&Circle::new(c, 5, e.color.stroke_width(2)))
        }
        Marker::Tri => area.draw(&TriangleMarker::new(c, 7, e.color.filled())),
        Marker::Cross => area.draw(&Cross::new(c, 6, e.color.stroke_width(2))),
    }
}

/// A boxed legend in `area` (a chart's plotting area), at `preferred` unless another place covers
/// fewer of the pixels `ink` (relative to the area) that the curves drew.
fn draw_legend<'a>(area: &Area<'a>, entries: &[Entry], preferred: Corner, ink: &[(i32, i32)]) -> DrawResult<'a> {
    if entries.is_empty() {
        return Ok(());
    }
    let font = ("sans-serif", 15).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    let (line_h, pad, glyph_w) = (22, 8, 30);
    let mut text_w = 0;
    for e in entries {
        text_w = text_w.max(area.estimate_text_size(&e.label, &font)?.0 as i32);
    }
    let (bw, bh) = (pad + glyph_w + 8 + text_w + pad, pad + line_h * entries.len() as i32 + pad / 2);
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let m = 10;
    let place = |at: Corner| {
        let (left, mid_x, right) = (m, (w - bw) / 2, w - bw - m);
        let (top, mid_y, bottom) = (m, (h - bh) / 2, h - bh - m);
        match at {
            Corner::UpperRight => (right, top),
            Corner::LowerRight => (right, bottom),
            Corner::UpperLeft => (left, top),
            Corner::LowerLeft => (left, bottom),
            Corner::MiddleRight => (right, mid_y),
            Corner::MiddleLeft => (left, mid_y),
            Corner::UpperMiddle => (mid_x, top),
            Corner::LowerMiddle => (mid_x, bottom),
        }
    };
    let covered = |(x0, y0): (i32, i32)| {
        let g = 6;
        ink.iter().filter(|p| (x0 - g..=x0 + bw + g).contains(&p.0) && (y0 - g..=y0 + bh + g).contains(&p.1)).count()
    };
    let mut best = (place(preferred), covered(place(preferred)));
    for at in CORNERS {
        let c = covered(place(at));
        if c < best.1 {
            best = (place(at), c);
        }
    }
    let (x0, y0) = best.0;
    area.draw(&Rectangle::new([(x0, y0), (x0 + bw, y0 + bh)], WHITE.mix(0.9).filled()))?;
    area.draw(&Rectangle::new([(x0, y0), (x0 + bw, y0 + bh)], RGBColor(180, 180, 180).stroke_width(1)))?;
    for (i, e) in entries.iter().enumerate() {
        let y = y0 + pad + line_h * i as i32 + line_h / 2;
        draw_glyph(area, (x0 + pad, y), e)?;
        area.draw(&Text::new(e.label.clone(), (x0 + pad + glyph_w + 8, y), font.clone()))?;
    }
    Ok(())
}

fn fmt_tick(log: bool) -> impl Fn(&f64) -> String {
    move |v| {
        if log {
            format!("{:.1e}", 10f64.powf(*v))
        } else if v.abs() >= 100.0 || *v == v.round() {
            format!("{v:.0}")
        } else {
            let s = format!("{v:.2}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

fn draw_panel<'a>(
    area: &Area<'a>,
    spec: &PanelSpec,
    runs: &[RunCurves],
    colors: &[RGBColor],
    max_epoch: f64,
) -> DrawResult<'a> {
    // data[run][series] = points, transformed into the panel's unit.
    let data: Vec<Vec<Vec<(f64, f64)>>> = runs
        .iter()
        .map(|r| {
            spec.series
                .iter()
                .map(|s| {
                    let raw = if s.test { r.test_series(s.key) } else { r.train_series(s.key) };
                    raw.into_iter().filter_map(|(e, v)| Some((e, transform(spec, v)?))).collect()
                })
                .collect()
        })
        .collect();
    let title_font = ("sans-serif", 22).into_font();
    if data.iter().flatten().all(|s| s.is_empty()) {
        let (w, h) = area.dim_in_pixel();
        let center = Pos::new(HPos::Center, VPos::Center);
        area.draw(&Text::new(spec.title, (w as i32 / 2, 24), title_font.color(&BLACK).pos(center)))?;
        let font = ("sans-serif", 18).into_font().color(&RGBColor(140, 140, 140)).pos(center);
        area.draw(&Text::new("no data", (w as i32 / 2, h as i32 / 2), font))?;
        return Ok(());
    }
    // The paper's figures, one line per distinct value: in the run's colour when one run has it,
    // dark grey when several share it.
    let mut papers: Vec<(f64, Option<usize>)> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        if let Some(v) = (spec.paper)(r).and_then(|v| transform(spec, v)) {
            match papers.iter_mut().find(|(p, _)| *p == v) {
                Some(entry) => entry.1 = None,
                None => papers.push((v, Some(i))),
            }
        }
    }
    // The published points within the epochs drawn, once however many runs share them.
    let mut reference: Vec<(f64, f64)> = Vec::new();
    if let Some(r) = &spec.reference {
        for run in runs {
            for &(e, v) in (r.points)(run) {
                if let Some(v) = transform(spec, v).filter(|_| e <= max_epoch * 1.02)
                    && !reference.contains(&(e, v))
                {
                    reference.push((e, v));
                }
            }
        }
        reference.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let paper_values: Vec<f64> = papers.iter().map(|p| p.0).chain(reference.iter().map(|p| p.1)).collect();
    let (lo, hi) = y_bounds(spec, &data, &paper_values);

    let mut chart = ChartBuilder::on(area)
        .caption(spec.title, title_font)
        .margin(10)
        .margin_right(22)
        .x_label_area_size(40)
        .y_label_area_size(if spec.log { 78 } else { 64 })
        .build_cartesian_2d(0.0..max_epoch * 1.02, lo..hi)?;
    let ticks = fmt_tick(spec.log);
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(spec.y_desc)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .y_label_formatter(&ticks)
        .x_label_formatter(&|v| if max_epoch < 10.0 { format!("{v:.1}") } else { format!("{v:.0}") })
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(246, 246, 246))
        .draw()?;

    let one_run = runs.len() == 1;
    for (ri, run_data) in data.iter().enumerate() {
        let c = colors[ri];
        for (s, points) in spec.series.iter().zip(run_data) {
            let width = if s.test { 2 } else { 3 };
            for piece in clip(points, lo, hi) {
                if piece.len() == 1 {
                    chart.draw_series(std::iter::once(Circle::new(piece[0], 3, c.filled())))?;
                } else if s.dashed {
                    chart.draw_series(std::iter::once(DashedPathElement::new(piece, 8, 5, c.stroke_width(width))))?;
                } else {
                    chart.draw_series(std::iter::once(PathElement::new(piece, c.stroke_width(width))))?;
                }
            }
            let shown = points.iter().copied().filter(|p| (lo..=hi).contains(&p.1));
            match s.marker {
                Marker::Line => {}
                Marker::Dot => {
                    chart.draw_series(shown.map(|p| Circle::new(p, 5, c.filled())))?;
                }
                Marker::Ring => {
                    chart.draw_series(shown.map(|p| {
                        EmptyElement::at(p)
                            + Circle::new((0, 0), 5, WHITE.filled())
                            + Circle::new((0, 0), 5, c.stroke_width(2))
                    }))?;
                }
                Marker::Tri => {
                    chart.draw_series(shown.map(|p| TriangleMarker::new(p, 7, c.filled())))?;
                }
                Marker::Cross => {
                    chart.draw_series(shown.map(|p| Cross::new(p, 6, c.stroke_width(2))))?;
                }
            }
        }
    }
    if !reference.is_empty() {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            reference.clone(),
            3,
            4,
            REFERENCE.stroke_width(1),
        )))?;
        chart.draw_series(reference.iter().map(|&p| Cross::new(p, 6, REFERENCE.stroke_width(2))))?;
    }
    // Pixels of the plotting area, for the paper labels and the legend.
    let plot_px = chart.plotting_area().strip_coord_spec();
    let base = chart.plotting_area().get_base_pixel();
    let px = |p: (f64, f64)| {
        let q = chart.backend_coord(&p);
        (q.0 - base.0, q.1 - base.1)
    };
    // The paper's lines, labelled at their left end (where curves are still far from them),
    // side by side when there are several.
    let mut label_boxes = Vec::new();
    let label_font = ("sans-serif", 15).into_font();
    let mut label_x = 8;
    for &(v, owner) in &papers {
        let c = match owner {
            Some(i) if !one_run => colors[i],
            _ => DARK,
        };
        chart.plotting_area().draw(&DashedPathElement::new(
            vec![(0.0, v), (max_epoch * 1.02, v)],
            10,
            6,
            c.stroke_width(2),
        ))?;
        let label = if spec.log { format!("paper {:.1e}", 10f64.powf(v)) } else { format!("paper {v:.2}") };
        let font = label_font.clone().color(&c).pos(Pos::new(HPos::Left, VPos::Bottom));
        let (tw, th) = plot_px.estimate_text_size(&label, &font)?;
        let y = px((0.0, v)).1 - 3;
        // On a white ground, so that curves passing under the label leave it readable.
        let ground = [(label_x - 3, y - th as i32 - 1), (label_x + tw as i32 + 3, y + 1)];
        plot_px.draw(&Rectangle::new(ground, WHITE.mix(0.85).filled()))?;
        plot_px.draw(&Text::new(label, (label_x, y), font))?;
        label_boxes.push((label_x, y - th as i32, label_x + tw as i32, y));
        label_x += tw as i32 + 16;
    }

    // The legend says what each line style means (in the run's colour for one run, else grey;
    // the title row says which colour is which run).
    let legend_color = if one_run { colors[0] } else { DARK };
    let mut entries: Vec<Entry> = spec
        .series
        .iter()
        .enumerate()
        .filter(|(si, _)| data.iter().any(|d| !d[*si].is_empty()))
        .map(|(_, s)| Entry { label: s.label.to_string(), dashed: s.dashed, marker: s.marker, color: legend_color })
        .collect();
    if !papers.is_empty() {
        entries.push(Entry { label: "paper".into(), dashed: true, marker: Marker::Line, color: DARK });
    }
    if let (Some(r), false) = (&spec.reference, reference.is_empty()) {
        entries.push(Entry { label: r.label.into(), dashed: true, marker: Marker::Cross, color: REFERENCE });
    }
    // Where the curves, markers and paper labels are, in pixels of the plotting area.
    let mut ink = Vec::new();
    let trace = |ink: &mut Vec<(i32, i32)>, points: &[(f64, f64)]| {
        for s in points.windows(2) {
            let (a, b) = (px(s[0]), px(s[1]));
            let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) / 3).max(1);
            ink.extend((0..=n).map(|i| (a.0 + (b.0 - a.0) * i / n, a.1 + (b.1 - a.1) * i / n)));
        }
        ink.extend(points.iter().map(|&p| px(p)));
    };
    for points in data.iter().flatten() {
        for piece in clip(points, lo, hi) {
            trace(&mut ink, &piece);
        }
    }
    for &(v, _) in &papers {
        trace(&mut ink, &[(0.0, v), (max_epoch * 1.02, v)]);
    }
    trace(&mut ink, &reference);
    for &(x0, y0, x1, y1) in &label_boxes {
        ink.extend((x0..=x1).step_by(4).flat_map(|x| (y0..=y1).step_by(4).map(move |y| (x, y))));
    }
    draw_legend(&plot_px, &entries, spec.legend, &ink)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_legend_wraps_inside_the_picture() {
        register_font();
        let (w, h) = (1600u32, 100u32);
        let mut buf = vec![0u8; (w * h * 3) as usize];
        let area = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let names: Vec<String> = (0..12).map(|i| format!("a-rather-long-ablation-name-{i}")).collect();
        let layout = legend_layout(&area, &names).unwrap();
        let lines = layout.iter().map(|p| p.1).max().unwrap() + 1;
        assert!(lines >= 3, "{lines} legend lines for 12 long names");
        for (name, &(x, _)) in names.iter().zip(&layout) {
            let end = x + 36 + area.estimate_text_size(name, &legend_font()).unwrap().0 as i32;
            assert!(end <= w as i32 - 16, "{name} ends at {end}");
        }
        let few = legend_layout(&area, &names[..2]).unwrap();
        assert!(few.iter().all(|p| p.1 == 0), "two names wrapped: {few:?}");
    }

    #[test]
    fn curves_skip_events_and_name_bad_lines() {
        let p = Path::new("run/metrics.jsonl");
        let text = "{\"epoch\":1,\"elbo\":-200.0,\"test_error_p\":null}\n{\"event\":\"resume\",\"epoch\":1}\n\n\
                    {\"epoch\":2,\"elbo\":-150.0}\n";
        let recs = parse_metrics(p, text).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(!recs[0].contains_key("test_error_p"));
        let err = parse_metrics(p, "{\"epoch\":1}\n{\"epoch\":2,\n").unwrap_err().to_string();
        assert!(err.contains("run/metrics.jsonl") && err.contains("line 2"), "{err}");
        let err = parse_metrics(p, "{\"elbo\":1}\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn curves_clip_to_the_range() {
        let pieces = clip(&[(1.0, -200.0), (2.0, -100.0), (3.0, -90.0), (4.0, -300.0)], -150.0, -80.0);
        assert_eq!(pieces.len(), 1);
        let piece = &pieces[0];
        assert_eq!(piece.first().unwrap(), &(1.5, -150.0));
        assert_eq!(piece[1..3], [(2.0, -100.0), (3.0, -90.0)]);
        assert!((piece.last().unwrap().0 - (3.0 + 60.0 / 210.0)).abs() < 1e-12);
        assert!(clip(&[(1.0, 0.0), (2.0, 0.0)], 1.0, 2.0).is_empty());
    }
}
