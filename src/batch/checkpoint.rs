//! Resuming: the output file is the checkpoint. The rows already written
//! are skipped; a half-written last line is cut; a checkpoint of another run
//! is refused.
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::summary::Counted;

/// What the checkpoint beside the output remembers, to refuse resuming a
/// different run into the same output.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(super) struct Checkpoint {
    pub(super) input: PathBuf,
    pub(super) input_bytes: u64,
    pub(super) purpose: String,
    pub(super) rows: u64,
}

pub(super) fn checkpoint_path(output: &Path) -> PathBuf {
    let mut p = output.as_os_str().to_owned();
    p.push(".checkpoint");
    PathBuf::from(p)
}

/// Opens the output for appending after the complete lines already there,
/// and returns the row numbers they hold; `each` sees every such line (the
/// summary counts the whole output, not only what this run adds).
pub(super) fn resume(
    output: &Path,
    mut each: impl FnMut(&Counted),
) -> anyhow::Result<(File, HashSet<u64>)> {
    let mut done = HashSet::new();
    let mut good_len = 0u64;
    if output.exists() {
        let mut reader = BufReader::new(File::open(output)?);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            let Some(counted) = Counted::read(&line) else {
                break;
            };
            let Some(row) = counted.row else {
                break;
            };
            each(&counted);
            done.insert(row);
            good_len += n as u64;
        }
    }
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).read(true).write(true);
    // The answers are personal data: private to the operator, like the ledger.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(output)?;
    // A line cut short by a crash is dropped; its row is done again.
    file.set_len(good_len)?;
    file.seek(SeekFrom::End(0))?;
    Ok((file, done))
}
