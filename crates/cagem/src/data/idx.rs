//! The IDX format of MNIST (LeCun & Cortes): a big-endian u32 magic 0x0000TTNN (TT the element
//! type, NN the number of dimensions), NN big-endian u32 sizes, then the elements row-major.
//! Files may be gzip-compressed (detected by the gzip magic, whatever the name).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The element types cagem reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdxData {
    U8(Vec<u8>),
    I32(Vec<i32>),
}

/// An n-dimensional array read from an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: IdxData,
}

impl IdxArray {
    /// The elements as u8, or an error naming the file if they are another type.
    pub fn into_u8(self, path: &Path) -> Result<Vec<u8>> {
        match self.data {
            IdxData::U8(v) => Ok(v),
            IdxData::I32(_) => {
                Err(Error::data(path, "expected unsigned-byte elements (type 0x08), found 32-bit integers (0x0C)"))
            }
        }
    }

    pub fn into_i32(self, path: &Path) -> Result<Vec<i32>> {
        match self.data {
            IdxData::I32(v) => Ok(v),
            IdxData::U8(_) => {
                Err(Error::data(path, "expected 32-bit integer elements (type 0x0C), found unsigned bytes (0x08)"))
            }
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads the raw bytes of a file, gunzipping them if they are gzip-compressed.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    decompress_if_gz(path, raw)
}

pub fn decompress_if_gz(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if raw.len() >= 2 && raw[..2] == GZIP_MAGIC {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("corrupt or truncated gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX file (raw or gzipped).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(&read_maybe_gz(path)?, path)
}

/// Parses IDX bytes; `path` only labels errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::data(
            path,
            format!("not an IDX file: {} bytes, shorter than the 4-byte magic", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::data(
            path,
            format!("not an IDX file: magic starts {:02x} {:02x}, expected 00 00", bytes[0], bytes[1]),
        ));
    }
    let (ty, ndim) = (bytes[2], bytes[3] as usize);
    let elem = match ty {
        0x08 => 1,
        0x0C => 4,
        0x09 | 0x0B | 0x0D | 0x0E => {
            return Err(Error::data(
                path,
                format!("IDX element type 0x{ty:02X} is not supported (cagem reads 0x08 and 0x0C)"),
            ));
        }
        _ => {
            return Err(Error::data(
                path,
                format!("invalid IDX element type 0x{ty:02X} in magic 0x0000{ty:02X}{:02X}", bytes[3]),
            ));
        }
    };
    if ndim == 0 || ndim > 4 {
        return Err(Error::data(path, format!("IDX file with {ndim} dimensions; expected 1 to 4")));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::data(path, format!("truncated IDX header: {} bytes, expected {header}", bytes.len())));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let expected =
        count.and_then(|c| c.checked_mul(elem)).ok_or_else(|| Error::data(path, "IDX dimensions overflow"))?;
    let body = &bytes[header..];
    if body.len() < expected {
        return Err(Error::data(
            path,
            format!(
                "truncated: dimensions {dims:?} need {expected} bytes of data, the file has {} (is the download complete?)",
                body.len()
            ),
        ));
    }
    if body.len() > expected {
        return Err(Error::data(
            path,
            format!(
                "{} unexpected bytes after the {expected} bytes that dimensions {dims:?} describe",
                body.len() - expected
            ),
        ));
    }
    let data = match elem {
        1 => IdxData::U8(body.to_vec()),
        _ => IdxData::I32(body.chunks_exact(4).map(|c| i32::from_be_bytes(c.try_into().expect("4 bytes"))).collect()),
    };
    Ok(IdxArray { dims, data })
}

/// Encodes an array as IDX bytes (used to bundle derived data sets and in tests).
pub fn encode_idx(array: &IdxArray) -> Vec<u8> {
    let (ty, mut body) = match &array.data {
        IdxData::U8(v) => (0x08u8, v.clone()),
        IdxData::I32(v) => (0x0Cu8, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
    };
    let mut out = vec![0, 0, ty, array.dims.len() as u8];
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.append(&mut body);
    out
}
