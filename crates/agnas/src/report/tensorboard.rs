//! TensorBoard event files, so that `tensorboard --logdir runs` shows a run's curves beside the user's other
//! experiments.
//!
//! A file is a sequence of TFRecords (`[len u64][masked crc32c of len][data][masked crc32c of data]`, little endian)
//! holding `tensorflow.Event` messages: first the file version, then one event per scalar, as PyTorch's
//! `SummaryWriter.add_scalar` writes them. The messages are encoded with the `protobuf` crate's stream writer (the
//! ONNX export's runtime) rather than with a TensorBoard crate: the maintained one (`tboard`) compiles its `.proto`
//! files with `protoc`, a system package every user would need for three small messages.
use crate::error::{Context, Result};
use protobuf::CodedOutputStream;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The writer named in the file-version event's source metadata (PyTorch's names its own module there).
const WRITER: &str = "agnas";

/// Appends events to one file of a run folder; each session of a run (a resume) starts a file of its own, as
/// `SummaryWriter` does, and TensorBoard reads them in order.
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Creates `events.out.tfevents.<seconds>.<host>.<pid>` in `dir`, starting with the file-version event.
    pub fn create(dir: &Path, wall_time: f64) -> Result<EventWriter> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let name = format!("events.out.tfevents.{}.{}.{}", wall_time as u64, host.trim(), std::process::id());
        let path = dir.join(name);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = EventWriter { file, path };
        writer.append(&[file_version_event(wall_time, WRITER)?])?;
        Ok(writer)
    }

    /// Appends one event per scalar at `step`, and flushes them to the file.
    pub fn scalars(&mut self, step: i64, wall_time: f64, scalars: &[(String, f64)]) -> Result<()> {
        let events: Vec<Vec<u8>> = scalars
            .iter()
            .map(|(tag, value)| scalar_event(step, wall_time, tag, *value as f32))
            .collect::<Result<_>>()?;
        self.append(&events)
    }

    /// Appends the numbers of one `metrics.jsonl` row at `step` (its epoch), under their dotted paths with `/` for `.`
    /// (TensorBoard groups tags by what comes before a `/`).
    pub fn row(&mut self, step: i64, row: &impl serde::Serialize) -> Result<()> {
        let mut numbers = std::collections::BTreeMap::new();
        super::numbers(&serde_json::to_value(row)?, "", &mut numbers);
        let scalars: Vec<(String, f64)> =
            numbers.into_iter().filter(|(k, _)| k != "epoch").map(|(k, v)| (k.replace('.', "/"), v)).collect();
        self.scalars(step, now(), &scalars)
    }

    fn append(&mut self, events: &[Vec<u8>]) -> Result<()> {
        let mut bytes = Vec::new();
        for event in events {
            record(event, &mut bytes);
        }
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// The seconds since the Unix epoch, TensorBoard's wall time.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Frames `data` as a TFRecord.
fn record(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// TFRecord's checksum: CRC-32C, rotated and offset so that a CRC of data holding CRCs stays informative.
fn masked_crc(data: &[u8]) -> u32 {
    const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    CRC32C.checksum(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

// Field numbers of tensorflow/core/util/event.proto and framework/summary.proto.
const EVENT_WALL_TIME: u32 = 1;
const EVENT_STEP: u32 = 2;
const EVENT_FILE_VERSION: u32 = 3;
const EVENT_SUMMARY: u32 = 5;
const EVENT_SOURCE_METADATA: u32 = 10;
const SOURCE_METADATA_WRITER: u32 = 1;
const SUMMARY_VALUE: u32 = 1;
const VALUE_TAG: u32 = 1;
const VALUE_SIMPLE_VALUE: u32 = 2;

fn file_version_event(wall_time: f64, writer: &str) -> Result<Vec<u8>> {
    let metadata = encode(|s| s.write_string(SOURCE_METADATA_WRITER, writer))?;
    encode(|s| {
        event_header(s, wall_time, 0)?;
        s.write_string(EVENT_FILE_VERSION, "brain.Event:2")?;
        s.write_bytes(EVENT_SOURCE_METADATA, &metadata)
    })
}

fn scalar_event(step: i64, wall_time: f64, tag: &str, value: f32) -> Result<Vec<u8>> {
    // `simple_value` sits in a oneof, so proto3 writes it even when it is zero.
    let value = encode(|s| {
        s.write_string(VALUE_TAG, tag)?;
        s.write_float(VALUE_SIMPLE_VALUE, value)
    })?;
    let summary = encode(|s| s.write_bytes(SUMMARY_VALUE, &value))?;
    encode(|s| {
        event_header(s, wall_time, step)?;
        s.write_bytes(EVENT_SUMMARY, &summary)
    })
}

/// Proto3 leaves out fields at their default value.
fn event_header(s: &mut CodedOutputStream, wall_time: f64, step: i64) -> protobuf::Result<()> {
    if wall_time != 0.0 {
        s.write_double(EVENT_WALL_TIME, wall_time)?;
    }
    if step != 0 {
        s.write_int64(EVENT_STEP, step)?;
    }
    Ok(())
}

fn encode(fields: impl FnOnce(&mut CodedOutputStream) -> protobuf::Result<()>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut s = CodedOutputStream::vec(&mut bytes);
    fields(&mut s)?;
    s.flush()?;
    drop(s);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's `SummaryWriter` wrote the fixture (tools/make_tensorboard_fixture.py) with these scalars and times.
    #[test]
    fn events_match_pytorch_summary_writer_byte_for_byte() {
        const START: f64 = 1_765_000_000.25;
        type Epoch<'a> = (i64, f64, &'a [(&'a str, f64)]);
        let epochs: [Epoch; 3] = [
            (0, 1_765_000_001.5, &[("train_loss", 2.25), ("lr", 0.0)]),
            (1, 1_765_000_060.125, &[("train_loss", 1.75), ("valid/top1", 0.4375), ("delta", -3.5e-7)]),
            (2, 1_765_000_120.0, &[("valid/top1", 0.5), ("attention/µ", 1e30)]),
        ];
        let mut ours = Vec::new();
        record(&file_version_event(START, "tensorboard.summary.writer.event_file_writer").unwrap(), &mut ours);
        for (step, wall, scalars) in epochs {
            for (tag, value) in scalars {
                record(&scalar_event(step, wall, tag, *value as f32).unwrap(), &mut ours);
            }
        }
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tensorboard/events.out.tfevents.fixture");
        assert_eq!(ours, std::fs::read(fixture).unwrap());
    }

    #[test]
    fn a_writer_appends_whole_records_to_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), 1_765_000_000.0).unwrap();
        w.scalars(1, 1_765_000_001.0, &[("a".into(), 1.0), ("b/c".into(), 2.0)]).unwrap();
        let bytes = std::fs::read(&w.path).unwrap();
        let mut at = 0;
        let mut records = 0;
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            assert_eq!(masked_crc(&bytes[at..at + 8]).to_le_bytes(), bytes[at + 8..at + 12]);
            let data = &bytes[at + 12..at + 12 + len];
            assert_eq!(masked_crc(data).to_le_bytes(), bytes[at + 12 + len..at + 16 + len]);
            at += 16 + len;
            records += 1;
        }
        assert_eq!(records, 3);
        assert!(w.path.file_name().unwrap().to_str().unwrap().starts_with("events.out.tfevents.1765000000."));
    }
}
