//! BORIS exports saved as workbooks (XLSX, XLS, ODS): each worksheet is read with `calamine`
//! and handed to the table reader as tab-separated text, so workbooks and TSV/CSV exports
//! follow one set of rules.

use std::io::Cursor;

use calamine::{Reader, open_workbook_auto_from_rs};

/// The worksheets of a workbook as (sheet name, TSV bytes), or why it cannot be read.
pub fn sheets_as_tsv(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut book =
        open_workbook_auto_from_rs(Cursor::new(bytes.to_vec())).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for name in book.sheet_names() {
        let range = book
            .worksheet_range(&name)
            .map_err(|e| format!("sheet {name:?}: {e}"))?;
        let mut w = csv::WriterBuilder::new()
            .delimiter(b'\t')
            .from_writer(Vec::new());
        for row in range.rows() {
            let cells: Vec<String> = row.iter().map(|c| c.to_string()).collect();
            w.write_record(&cells).map_err(|e| e.to_string())?;
        }
        out.push((name, w.into_inner().map_err(|e| e.to_string())?));
    }
    Ok(out)
}
