//! A list's lines and CSV records, read into buffers of a bounded size: a
//! line or record longer than a row may be is skipped as it is read and
//! comes out as its length alone, never held.
use std::io::BufRead;

use super::{MAX_ROW_BYTES, cell_text};

/// The next line of a list into `line` (without its `\n`): `Ok(())`, or
/// the line's length in bytes when it is longer than a row may be (then it
/// is skipped as it is read, never held: a file with no newline is one
/// such line, however large); `None` at the end.
pub(super) fn next_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<Result<(), usize>>> {
    line.clear();
    let (mut read, mut any) = (0usize, false);
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        any = true;
        let (text, used) = match buf.iter().position(|&b| b == b'\n') {
            Some(end) => (&buf[..end], end + 1),
            None => (buf, buf.len()),
        };
        read += text.len();
        // One byte more for a `\r` before the newline.
        if read <= MAX_ROW_BYTES + 1 {
            line.extend_from_slice(text);
        } else {
            line.clear();
        }
        let ended = used > text.len();
        input.consume(used);
        if ended {
            break;
        }
    }
    let line_or_length = if read > MAX_ROW_BYTES + 1 {
        Err(read)
    } else {
        Ok(())
    };
    Ok(any.then_some(line_or_length))
}

/// A CSV list's records, read by csv_core (the csv crate's own parser)
/// into buffers of a bounded size: a record longer than that is skipped as
/// it is read and comes out as its length alone. csv's reader grows a
/// record to whatever the file holds (a 200 MB line took 760 MB).
pub(super) struct CsvRecords<R> {
    core: csv_core::Reader,
    input: R,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl<R: BufRead> CsvRecords<R> {
    /// The most bytes of a record read before it is skipped: a row's cells
    /// (`MAX_ROW_BYTES`, counted after reading) and as many again for
    /// their quotes and delimiters, and a line ending.
    const HELD: usize = 2 * MAX_ROW_BYTES + 2;

    pub(super) fn new(delimiter: u8, input: R) -> Self {
        CsvRecords {
            core: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            input,
            // Each byte read writes at most one byte and ends at most one cell.
            out: vec![0; Self::HELD],
            ends: vec![0; Self::HELD + 1],
        }
    }

    /// The next record's cells (rows may have fewer or more than the
    /// header), or its length in bytes when it is too long; `None` at the end.
    pub(super) fn next(&mut self) -> std::io::Result<Option<Result<Vec<String>, usize>>> {
        use csv_core::ReadRecordResult as Read;
        let (mut read, mut written, mut ended) = (0, 0, 0);
        let (mut spare_out, mut spare_ends) = ([0u8; 1024], [0usize; 256]);
        loop {
            let buf = self.input.fill_buf()?;
            let held = read < Self::HELD;
            let (result, used, out, ends) = if held {
                // Never more than fits: an empty input would mean the end.
                let room = buf.len().min(Self::HELD - read);
                self.core.read_record(
                    &buf[..room],
                    &mut self.out[written..],
                    &mut self.ends[ended..],
                )
            } else {
                self.core.read_record(buf, &mut spare_out, &mut spare_ends)
            };
            self.input.consume(used);
            read += used;
            if held {
                (written, ended) = (written + out, ended + ends);
            }
            match result {
                Read::InputEmpty | Read::OutputFull | Read::OutputEndsFull => {}
                Read::Record if !held => return Ok(Some(Err(read))),
                Read::Record => {
                    let mut start = 0;
                    let cells = self.ends[..ended]
                        .iter()
                        .map(|&end| {
                            let cell = cell_text(&self.out[start..end]);
                            start = end;
                            cell
                        })
                        .collect();
                    return Ok(Some(Ok(cells)));
                }
                Read::End => return Ok(None),
            }
        }
    }
}
