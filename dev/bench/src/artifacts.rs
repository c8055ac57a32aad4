//! Figures other tools left on disk: the deployment zips of `cargo lambda build --output-format
//! zip`, and criterion's estimates (`cargo bench -p shared`).

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

/// A function's deployment package: the zip's size and its `bootstrap`'s (uncompressed) size.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub zip_bytes: u64,
    pub binary_bytes: u64,
}

/// `<dir>/<function>/bootstrap.zip`, as cargo-lambda lays it out.
pub fn package(dir: &Path, function: &str) -> Option<Package> {
    let path = dir.join(function).join("bootstrap.zip");
    let bytes = fs::read(&path).ok()?;
    Some(Package { zip_bytes: bytes.len() as u64, binary_bytes: zip_entry_size(&bytes, "bootstrap")? })
}

/// The uncompressed size of entry `name`, from the zip's central directory.
fn zip_entry_size(zip: &[u8], name: &str) -> Option<u64> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(zip.get(at..at + 2)?.try_into().ok()?) as usize);
    let u32_at = |at: usize| Some(u32::from_le_bytes(zip.get(at..at + 4)?.try_into().ok()?) as usize);
    // End of central directory: signature PK\x05\x06, within the last 64 KiB + 22 bytes.
    let search_from = zip.len().saturating_sub(65_557);
    let eocd =
        (search_from..zip.len().saturating_sub(21)).rev().find(|&at| u32_at(at) == Some(0x0605_4b50))?;
    let entries = u16_at(eocd + 10)?;
    let mut at = u32_at(eocd + 16)?;
    for _ in 0..entries {
        if u32_at(at)? != 0x0201_4b50 {
            return None;
        }
        let size = u32_at(at + 24)?;
        let (name_len, extra_len, comment_len) = (u16_at(at + 28)?, u16_at(at + 30)?, u16_at(at + 32)?);
        if zip.get(at + 46..at + 46 + name_len)? == name.as_bytes() {
            return Some(size as u64);
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    None
}

/// One criterion benchmark's estimate.
#[derive(Debug, Clone)]
pub struct Estimate {
    pub id: String,
    /// Median time per iteration, ns.
    pub median_ns: f64,
    /// Lower and upper bound of the median's 95 % confidence interval, ns.
    pub low_ns: f64,
    pub high_ns: f64,
}

/// Every `new/estimates.json` under criterion's output directory, sorted by id.
pub fn criterion_estimates(dir: &Path) -> Vec<Estimate> {
    let mut found = Vec::new();
    collect(dir, &mut found);
    let mut estimates: Vec<Estimate> = found
        .into_iter()
        .filter_map(|new| {
            let meta: Value =
                serde_json::from_str(&fs::read_to_string(new.join("benchmark.json")).ok()?).ok()?;
            let est: Value =
                serde_json::from_str(&fs::read_to_string(new.join("estimates.json")).ok()?).ok()?;
            let median = &est["median"];
            Some(Estimate {
                id: meta["full_id"].as_str()?.to_owned(),
                median_ns: median["point_estimate"].as_f64()?,
                low_ns: median["confidence_interval"]["lower_bound"].as_f64()?,
                high_ns: median["confidence_interval"]["upper_bound"].as_f64()?,
            })
        })
        .collect();
    estimates.sort_by(|a, b| a.id.cmp(&b.id));
    estimates
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") && path.join("estimates.json").is_file() {
            found.push(path);
        } else if path.file_name().is_none_or(|n| n != "report") {
            collect(&path, found);
        }
    }
}
