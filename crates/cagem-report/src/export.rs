//! Per-example results written as named arrays: `.npz` (NumPy's zip of .npy files, one per name,
//! written with npyz; read with `numpy.load`) or `.csv` (a header row, one row per example; an
//! N × K array becomes the columns name_0 … name_{K−1}). Written atomically.

use std::io::{Cursor, Write};
use std::path::Path;

use npyz::WriterBuilder;

use cagem::atomic::write_atomic;
use cagem::error::{Error, Result};

/// The values of one array.
pub enum Values {
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// A named array of `rows` examples × `cols` values (`cols` None: a vector of shape (rows,)).
pub struct Column {
    pub name: &'static str,
    pub rows: usize,
    pub cols: Option<usize>,
    pub values: Values,
}

impl Column {
    pub fn vector(name: &'static str, values: Values) -> Self {
        let rows = match &values {
            Values::F64(v) => v.len(),
            Values::I64(v) => v.len(),
        };
        Column { name, rows, cols: None, values }
    }

    pub fn matrix(name: &'static str, cols: usize, values: Vec<f64>) -> Self {
        Column { name, rows: values.len() / cols.max(1), cols: Some(cols), values: Values::F64(values) }
    }

    fn width(&self) -> usize {
        self.cols.unwrap_or(1)
    }
}

/// The output formats, by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Npz,
    Csv,
}

/// The format `path` asks for by its extension.
pub fn format_of(path: &Path) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("npz") => Ok(Format::Npz),
        Some("csv") => Ok(Format::Csv),
        _ => Err(Error::config(format!("--out {}: expected a file name ending in .npz or .csv", path.display()))),
    }
}

/// Writes `columns` (all with the same number of rows) to `path` in the format of its extension.
pub fn write(path: &Path, columns: &[Column]) -> Result<()> {
    let bytes = match format_of(path)? {
        Format::Npz => npz_bytes(columns).map_err(|e| Error::io(path, "write", e))?,
        Format::Csv => csv_bytes(columns),
    };
    write_atomic(path, &bytes)
}

fn npz_bytes(columns: &[Column]) -> std::io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // Stored (uncompressed), as numpy.savez writes; large_file allows arrays beyond 4 GiB.
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(true);
    for c in columns {
        zip.start_file(format!("{}.npy", c.name), options).map_err(std::io::Error::other)?;
        let shape: Vec<u64> = match c.cols {
            None => vec![c.rows as u64],
            Some(k) => vec![c.rows as u64, k as u64],
        };
        match &c.values {
            Values::F64(v) => {
                let mut w = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut zip).begin_nd()?;
                w.extend(v.iter().copied())?;
                w.finish()?;
            }
            Values::I64(v) => {
                let mut w = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut zip).begin_nd()?;
                w.extend(v.iter().copied())?;
                w.finish()?;
            }
        }
    }
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

fn csv_bytes(columns: &[Column]) -> Vec<u8> {
    let mut out = Vec::new();
    let header: Vec<String> = columns
        .iter()
        .flat_map(|c| match c.cols {
            None => vec![c.name.to_string()],
            Some(k) => (0..k).map(|j| format!("{}_{j}", c.name)).collect(),
        })
        .collect();
    writeln!(out, "{}", header.join(",")).expect("write to memory");
    let rows = columns.first().map_or(0, |c| c.rows);
    let mut line = String::new();
    for r in 0..rows {
        line.clear();
        for c in columns {
            let w = c.width();
            for j in 0..w {
                if !line.is_empty() {
                    line.push(',');
                }
                match &c.values {
                    Values::F64(v) => line += &v[r * w + j].to_string(),
                    Values::I64(v) => line += &v[r * w + j].to_string(),
                }
            }
        }
        line.push('\n');
        out.extend_from_slice(line.as_bytes());
    }
    out
}
