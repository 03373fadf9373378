//! Pictures: grids of generated or reconstructed images as grey PNGs, and two-panel scatter
//! plots of latent-space PCA projections (crate::pca) (plotters, rendered into memory with an embedded
//! DejaVu font, so no system fonts are needed). Files are written atomically.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use cagem::atomic::write_atomic;
use cagem::error::{Error, Result};

/// An 8-bit grey image.
pub struct GrayImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Grey level of the gaps between tiles.
const GAP: u8 = 64;

impl GrayImage {
    pub fn new(width: usize, height: usize, fill: u8) -> Self {
        GrayImage { width, height, pixels: vec![fill; width * height] }
    }

    /// Draws an h × w picture with values in [0, 1] (1 = ink, drawn white) at (x0, y0),
    /// each pixel a zoom × zoom square.
    pub fn blit(&mut self, x0: usize, y0: usize, img: &[f64], h: usize, w: usize, zoom: usize) {
        for r in 0..h * zoom {
            for c in 0..w * zoom {
                let v = img[(r / zoom) * w + c / zoom];
                self.pixels[(y0 + r) * self.width + x0 + c] = (255.0 * v.clamp(0.0, 1.0)).round() as u8;
            }
        }
    }

    pub fn png_bytes(&self) -> Vec<u8> {
        encode_png(self.width, self.height, png::ColorType::Grayscale, &self.pixels)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.png_bytes())
    }
}

pub(crate) fn encode_png(width: usize, height: usize, color: png::ColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().expect("PNG header to memory");
    w.write_image_data(data).expect("PNG data to memory");
    w.finish().expect("PNG to memory");
    out
}

/// Width and height of a grid of `n` tiles of h × w pixels in `cols` columns.
pub fn grid_size(n: usize, h: usize, w: usize, cols: usize, zoom: usize) -> (usize, usize) {
    let rows = n.div_ceil(cols.max(1));
    (cols * (w * zoom + 2) + 2, rows * (h * zoom + 2) + 2)
}

/// `n` pictures (n × h·w values in [0, 1]) in a grid of `cols` columns with 2-pixel gaps.
pub fn tile(images: &[f64], h: usize, w: usize, cols: usize, zoom: usize) -> GrayImage {
    let n = images.len() / (h * w);
    let (gw, gh) = grid_size(n, h, w, cols, zoom);
    let mut img = GrayImage::new(gw, gh, GAP);
    for i in 0..n {
        let (r, c) = (i / cols, i % cols);
        img.blit(2 + c * (w * zoom + 2), 2 + r * (h * zoom + 2), &images[i * h * w..(i + 1) * h * w], h, w, zoom);
    }
    img
}

/// Images placed left to right with `gap` pixels between them (tops aligned).
pub fn side_by_side(parts: &[GrayImage], gap: usize) -> GrayImage {
    let width = parts.iter().map(|p| p.width).sum::<usize>() + gap * parts.len().saturating_sub(1);
    let height = parts.iter().map(|p| p.height).max().unwrap_or(0);
    let mut out = GrayImage::new(width, height, 255);
    let mut x0 = 0;
    for p in parts {
        for r in 0..p.height {
            out.pixels[r * width + x0..r * width + x0 + p.width]
                .copy_from_slice(&p.pixels[r * p.width..(r + 1) * p.width]);
        }
        x0 += p.width + gap;
    }
    out
}

/// The colour of class c of n (tab10 for up to 10 classes, evenly spaced hues beyond).
pub(crate) fn class_color(c: usize, n: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    if n <= 10 {
        let (r, g, b) = TAB10[c];
        RGBColor(r, g, b)
    } else {
        let rgb = HSLColor(c as f64 / n as f64, 0.75, 0.45).to_rgba();
        RGBColor(rgb.0, rgb.1, rgb.2)
    }
}

pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// One scatter panel: a title, the points and their axis labels.
pub struct Panel<'a> {
    pub title: String,
    pub points: &'a [[f64; 2]],
    pub axes: [String; 2],
}

/// Scatter plots side by side (width × height pixels in all), points coloured by `labels`,
/// with a legend naming the classes when there are at most 20.
pub fn scatter_panels(
    path: &Path,
    panels: &[Panel],
    labels: &[u32],
    class_names: &[String],
    size: (u32, u32),
) -> Result<()> {
    register_font();
    let (w, h) = size;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let plot_err = |e: String| Error::config(format!("drawing {}: {e}", path.display()));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(e.to_string()))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        let n_classes = class_names.len();
        for (area, panel) in areas.iter().zip(panels) {
            let bounds = |k: usize| {
                let (lo, hi) = panel
                    .points
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p[k]), hi.max(p[k])));
                let m = 0.05 * (hi - lo).max(1e-9);
                (lo - m)..(hi + m)
            };
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(bounds(0), bounds(1))
                .map_err(|e| plot_err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc(panel.axes[0].as_str())
                .y_desc(panel.axes[1].as_str())
                .label_style(("sans-serif", 14))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| plot_err(e.to_string()))?;
            for c in 0..n_classes {
                let color = class_color(c, n_classes);
                let series = chart
                    .draw_series(
                        panel
                            .points
                            .iter()
                            .zip(labels)
                            .filter(|(_, l)| **l as usize == c)
                            .map(|(p, _)| Circle::new((p[0], p[1]), 2, color.mix(0.6).filled())),
                    )
                    .map_err(|e| plot_err(e.to_string()))?;
                if n_classes <= 20 {
                    series.label(class_names[c].as_str()).legend(move |(x, y)| Circle::new((x, y), 5, color.filled()));
                }
            }
            if n_classes <= 20 {
                chart
                    .configure_series_labels()
                    .label_font(("sans-serif", 14))
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(|e| plot_err(e.to_string()))?;
            }
        }
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    write_atomic(path, &encode_png(w as usize, h as usize, png::ColorType::Rgb, &buf))
}
