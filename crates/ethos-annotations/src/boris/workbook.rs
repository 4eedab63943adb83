//! BORIS exports saved as workbooks (XLSX, XLS, ODS): each worksheet is read with `calamine`
//! and handed to the table reader as tab-separated text, so workbooks and TSV/CSV exports
//! follow one set of rules.
//!
//! Workbooks are untrusted input. XLSX worksheets are read cell by cell and refused when a cell
//! lies outside Excel's grid or the used area would exceed [`MAX_CELLS`] (a forged cell reference
//! such as `XFD1048576` would otherwise make the reader allocate the whole grid); a panic inside
//! `calamine` on a damaged file (an integer overflow on an over-long cell reference, found by the
//! parser property test) becomes an error.

use std::io::Cursor;

use calamine::{Data, Reader, Sheets, Xlsx, open_workbook_auto_from_rs};

/// Rows of an Excel worksheet.
pub const MAX_ROWS: u32 = 1 << 20;
/// Columns of an Excel worksheet.
pub const MAX_COLS: u32 = 1 << 14;
/// Largest used area (rows x columns) of one XLSX worksheet: a BORIS export has a few thousand
/// rows of about 20 columns.
pub const MAX_CELLS: u64 = 20_000_000;

/// The worksheets of a workbook as (sheet name, TSV bytes), or why it cannot be read.
pub fn sheets_as_tsv(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    std::panic::catch_unwind(|| read_sheets(bytes)).unwrap_or_else(|_| {
        Err("the workbook reader failed on this file (damaged or forged cell data)".into())
    })
}

fn read_sheets(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut book =
        open_workbook_auto_from_rs(Cursor::new(bytes.to_vec())).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for name in book.sheet_names() {
        let rows = match &mut book {
            Sheets::Xlsx(x) => xlsx_rows(x, &name)?,
            other => other
                .worksheet_range(&name)
                .map_err(|e| format!("sheet {name:?}: {e}"))?
                .rows()
                .map(|row| row.iter().map(|c| c.to_string()).collect())
                .collect(),
        };
        let mut w = csv::WriterBuilder::new()
            .delimiter(b'\t')
            .from_writer(Vec::new());
        for cells in &rows {
            w.write_record(cells).map_err(|e| e.to_string())?;
        }
        out.push((name, w.into_inner().map_err(|e| e.to_string())?));
    }
    Ok(out)
}

/// The used area of an XLSX worksheet (from its first used row and column to its last), row by
/// row, as `calamine`'s `worksheet_range` gives it, read cell by cell within the bounds above.
fn xlsx_rows(x: &mut Xlsx<Cursor<Vec<u8>>>, name: &str) -> Result<Vec<Vec<String>>, String> {
    let mut reader = x
        .worksheet_cells_reader(name)
        .map_err(|e| format!("sheet {name:?}: {e}"))?;
    let mut cells: Vec<(u32, u32, String)> = Vec::new();
    while let Some(cell) = reader
        .next_cell()
        .map_err(|e| format!("sheet {name:?}: {e}"))?
    {
        let (r, c) = cell.get_position();
        if r >= MAX_ROWS || c >= MAX_COLS {
            return Err(format!(
                "sheet {name:?}: a cell at row {} column {} lies outside a worksheet ({MAX_ROWS} rows x {MAX_COLS} columns)",
                u64::from(r) + 1,
                u64::from(c) + 1
            ));
        }
        let value = Data::from(cell.get_value().clone());
        if value != Data::Empty {
            cells.push((r, c, value.to_string()));
        }
    }
    let Some(r0) = cells.iter().map(|c| c.0).min() else {
        return Ok(Vec::new());
    };
    let r1 = cells.iter().map(|c| c.0).max().unwrap_or(r0);
    let c0 = cells.iter().map(|c| c.1).min().unwrap_or(0);
    let c1 = cells.iter().map(|c| c.1).max().unwrap_or(c0);
    let (height, width) = (u64::from(r1 - r0) + 1, u64::from(c1 - c0) + 1);
    if height * width > MAX_CELLS {
        return Err(format!(
            "sheet {name:?}: its cells span {height} rows x {width} columns, more than the {MAX_CELLS} cells a BORIS export can have"
        ));
    }
    let mut rows = vec![vec![String::new(); width as usize]; height as usize];
    for (r, c, v) in cells {
        rows[(r - r0) as usize][(c - c0) as usize] = v;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal XLSX with the given `sheet1.xml` cells (inline strings).
    fn xlsx(cells: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        let files = [
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_string(),
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_string(),
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="events" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_string(),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_string(),
            ),
            (
                "xl/worksheets/sheet1.xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{}</sheetData></worksheet>"#,
                    cells
                        .iter()
                        .map(|(r, v)| format!(r#"<row><c r="{r}" t="inlineStr"><is><t>{v}</t></is></c></row>"#))
                        .collect::<String>()
                ),
            ),
        ];
        for (name, text) in files {
            zip.start_file(name, opts).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn the_used_area_is_read_row_by_row() {
        let sheets = sheets_as_tsv(&xlsx(&[("B2", "Time"), ("C3", "12.5")])).unwrap();
        assert_eq!(sheets.len(), 1);
        assert_eq!(sheets[0].0, "events");
        assert_eq!(
            String::from_utf8(sheets[0].1.clone()).unwrap(),
            "Time\t\n\t12.5\n"
        );
    }

    #[test]
    fn forged_cell_references_are_errors_not_panics_or_huge_allocations() {
        // Two cells at opposite corners of Excel's grid: 17 billion cells if allocated.
        let e = sheets_as_tsv(&xlsx(&[("A1", "x"), ("XFD1048576", "y")])).unwrap_err();
        assert!(e.contains("cells span") && e.contains("events"), "{e}");
        // A column name long enough to overflow a u32 (a panic inside calamine in debug builds).
        let e = sheets_as_tsv(&xlsx(&[("AAAAAAAAAAAAAAAAAAAA1", "x")])).unwrap_err();
        assert!(!e.is_empty());
    }
}
