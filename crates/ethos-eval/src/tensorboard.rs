//! A small writer of TensorBoard event files (`events.out.tfevents.*`), so training runs can be
//! watched with TensorBoard without Python in the run.
//!
//! **Format.** A file is a sequence of records: the data length as a little-endian `u64`, the
//! masked CRC-32C of those 8 bytes (`u32` LE), the data, the masked CRC-32C of the data (`u32` LE);
//! a masked CRC is `((crc >> 15) | (crc << 17)) + 0xa282ead8` (wrapping). Each record's data is an
//! `Event` protocol buffer: `wall_time` (field 1, double), `step` (2, int64), and either
//! `file_version` (3, string; the first record says `brain.Event:2`) or `summary` (5): a `Summary`
//! whose repeated `value` (1) each hold `tag` (1, string) and `simple_value` (2, float) or `image`
//! (4: `height` 1, `width` 2, `colorspace` 3, `encoded_image_string` 4 = PNG bytes). The few fields
//! are encoded here by hand.
//!
//! The file is a log that grows while training runs: records are appended and flushed one event at
//! a time (TensorBoard reads a file being written and ignores a truncated last record), never
//! rewritten.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One summary value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar (stored as float32, as TensorBoard does).
    Scalar(f64),
    /// An RGB PNG image.
    Image {
        /// PNG bytes.
        png: Vec<u8>,
        /// Width, pixels.
        width: u32,
        /// Height, pixels.
        height: u32,
    },
}

/// Appends events to one event file.
pub struct EventWriter {
    file: std::fs::File,
    path: PathBuf,
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(field: u32, wire: u32, out: &mut Vec<u8>) {
    varint(u64::from((field << 3) | wire), out);
}

fn bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn summary_value(tag: &str, value: &Value) -> Vec<u8> {
    let mut v = Vec::new();
    bytes_field(1, tag.as_bytes(), &mut v);
    match value {
        Value::Scalar(x) => {
            key(2, 5, &mut v);
            v.extend_from_slice(&(*x as f32).to_le_bytes());
        }
        Value::Image { png, width, height } => {
            let mut img = Vec::new();
            key(1, 0, &mut img);
            varint(u64::from(*height), &mut img);
            key(2, 0, &mut img);
            varint(u64::from(*width), &mut img);
            key(3, 0, &mut img);
            varint(3, &mut img);
            bytes_field(4, png, &mut img);
            bytes_field(4, &img, &mut v);
        }
    }
    v
}

/// The `Event` bytes: wall time, step and either a file version or a summary.
pub fn encode_event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    values: &[(&str, Value)],
) -> Vec<u8> {
    let mut e = Vec::new();
    key(1, 1, &mut e);
    e.extend_from_slice(&wall_time.to_le_bytes());
    key(2, 0, &mut e);
    varint(step as u64, &mut e);
    if let Some(v) = file_version {
        bytes_field(3, v.as_bytes(), &mut e);
    }
    if !values.is_empty() {
        let mut s = Vec::new();
        for (tag, value) in values {
            bytes_field(1, &summary_value(tag, value), &mut s);
        }
        bytes_field(5, &s, &mut e);
    }
    e
}

/// The masked CRC-32C of TFRecord files.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One framed record.
pub fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut r = Vec::with_capacity(data.len() + 16);
    r.extend_from_slice(&len);
    r.extend_from_slice(&masked_crc(&len).to_le_bytes());
    r.extend_from_slice(data);
    r.extend_from_slice(&masked_crc(data).to_le_bytes());
    r
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl EventWriter {
    /// Creates `dir` and a new event file in it
    /// (`events.out.tfevents.<seconds>.<host>.<pid>.ethos`), with the file-version record.
    pub fn create(dir: &Path) -> std::io::Result<EventWriter> {
        std::fs::create_dir_all(dir)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let t = now();
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}.ethos",
            t as u64,
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let mut w = EventWriter { file, path };
        w.append(&encode_event(t, 0, Some("brain.Event:2"), &[]))?;
        Ok(w)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, event: &[u8]) -> std::io::Result<()> {
        self.file.write_all(&frame_record(event))?;
        self.file.flush()
    }

    /// Writes one event holding `values` at `step`.
    pub fn write(&mut self, step: i64, values: &[(&str, Value)]) -> std::io::Result<()> {
        self.append(&encode_event(now(), step, None, values))
    }

    /// Writes scalars at `step` (one event).
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> std::io::Result<()> {
        let v: Vec<(&str, Value)> = values
            .iter()
            .map(|(k, x)| (*k, Value::Scalar(*x)))
            .collect();
        self.write(step, &v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_masking_match_known_values() {
        // CRC-32C check value (RFC 3720): "123456789" -> 0xE3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let crc = 0xE306_9283u32;
        assert_eq!(
            masked_crc(b"123456789"),
            crc.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn events_are_framed_and_encoded_by_hand() {
        let e = encode_event(1.5, 300, None, &[("loss", Value::Scalar(0.25))]);
        // wall_time, step 300 (varint ac 02), summary { value { tag "loss", simple_value 0.25 } }.
        let mut want = vec![0x09];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 0xac, 0x02, 0x2a, 13, 0x0a, 11, 0x0a, 4]);
        want.extend_from_slice(b"loss");
        want.push(0x15);
        want.extend_from_slice(&0.25f32.to_le_bytes());
        assert_eq!(e, want);
        let r = frame_record(&e);
        assert_eq!(&r[..8], &(e.len() as u64).to_le_bytes());
        assert_eq!(r.len(), e.len() + 16);
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(1, &[("a", 1.0)]).unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let first = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(
            bytes.len(),
            16 + first + 16 + encode_event(0.0, 1, None, &[("a", Value::Scalar(1.0))]).len()
        );
    }
}
