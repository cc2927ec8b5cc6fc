//! A small reader for the comma-separated data files decompute ships under `data/` (and
//! that users may substitute): RFC 4180 quoting, a header row, and errors that name the
//! line, so a hand-edited factor table fails loudly instead of shifting columns.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CsvError {
    #[error("{file}: line {line}: {problem}")]
    Row {
        file: String,
        line: usize,
        problem: String,
    },
    #[error("{file}: missing column '{column}' in the header")]
    MissingColumn { file: String, column: String },
    #[error("{file}: empty file (a header row is required)")]
    Empty { file: String },
}

/// A parsed table: the header and the data rows, each with its 1-based line number.
#[derive(Debug)]
pub struct Table {
    pub file: String,
    pub header: Vec<String>,
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    /// Index of a named column, or an error naming it.
    pub fn column(&self, name: &str) -> Result<usize, CsvError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| CsvError::MissingColumn {
                file: self.file.clone(),
                column: name.to_string(),
            })
    }

    /// An error about one row, for callers that validate values.
    pub fn row_error(&self, line: usize, problem: impl Into<String>) -> CsvError {
        CsvError::Row {
            file: self.file.clone(),
            line,
            problem: problem.into(),
        }
    }

    /// Parses a float cell, naming the column and line when it is not one.
    pub fn float(&self, line: usize, row: &[String], col: usize) -> Result<f64, CsvError> {
        let cell = row.get(col).map(String::as_str).unwrap_or("");
        cell.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| {
                self.row_error(
                    line,
                    format!(
                        "'{}' in column '{}' is not a number",
                        cell, self.header[col]
                    ),
                )
            })
    }

    /// Parses a year cell (a whole number from 1900 to 2200), naming the column and line when
    /// it is not one.
    pub fn year(&self, line: usize, row: &[String], col: usize) -> Result<u32, CsvError> {
        let cell = row.get(col).map(String::as_str).unwrap_or("");
        cell.trim()
            .parse::<u32>()
            .ok()
            .filter(|y| (1900..=2200).contains(y))
            .ok_or_else(|| {
                self.row_error(
                    line,
                    format!("'{}' in column '{}' is not a year", cell, self.header[col]),
                )
            })
    }
}

/// Reads CSV records one at a time from any buffered reader, so a large file is never held
/// whole: blank lines and `#` comments skipped, a byte-order mark dropped, quoted cells
/// across lines joined. Each item is a record's first line number and its cells; a record
/// with an unterminated quote or a line that is not UTF-8 is an error naming the line.
pub struct Records<R> {
    file: String,
    reader: R,
    line: usize,
    buf: String,
    done: bool,
}

impl<R: std::io::BufRead> Records<R> {
    pub fn new(file: &str, reader: R) -> Records<R> {
        Records {
            file: file.to_string(),
            reader,
            line: 0,
            buf: String::new(),
            done: false,
        }
    }

    fn error(&self, line: usize, problem: impl Into<String>) -> CsvError {
        CsvError::Row {
            file: self.file.clone(),
            line,
            problem: problem.into(),
        }
    }

    /// The next physical line without its end, or None at the end of the input.
    fn next_line(&mut self) -> Option<Result<String, CsvError>> {
        self.buf.clear();
        match self.reader.read_line(&mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                let mut l = std::mem::take(&mut self.buf);
                if l.ends_with('\n') {
                    l.pop();
                    if l.ends_with('\r') {
                        l.pop();
                    }
                }
                if self.line == 1 {
                    if let Some(rest) = l.strip_prefix('\u{feff}') {
                        l = rest.to_string();
                    }
                }
                Some(Ok(l))
            }
            Err(e) => {
                let line = self.line + 1;
                Some(Err(self.error(line, format!("cannot read it ({e})"))))
            }
        }
    }
}

impl<R: std::io::BufRead> Iterator for Records<R> {
    type Item = Result<(usize, Vec<String>), CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut pending: Option<(usize, String)> = None;
        loop {
            let raw = match self.next_line() {
                Some(Ok(l)) => l,
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    return pending
                        .map(|(start, _)| Err(self.error(start, "unterminated quoted cell")));
                }
            };
            let (start, record) = match pending.take() {
                Some((start, mut acc)) => {
                    acc.push('\n');
                    acc.push_str(&raw);
                    (start, acc)
                }
                None => {
                    if raw.trim().is_empty() || raw.starts_with('#') {
                        continue;
                    }
                    (self.line, raw)
                }
            };
            // An odd number of quotes so far: a quoted cell goes on to the next line.
            if record.matches('"').count() % 2 == 1 {
                pending = Some((start, record));
                continue;
            }
            return Some(
                split_record(&record)
                    .map(|cells| (start, cells))
                    .map_err(|problem| self.error(start, problem)),
            );
        }
    }
}

/// The header of a table read with [`Records`]: trimmed cells, or an error for an empty
/// input.
pub fn header<R: std::io::BufRead>(records: &mut Records<R>) -> Result<Vec<String>, CsvError> {
    match records.next() {
        Some(Ok((_, h))) => Ok(h.into_iter().map(|c| c.trim().to_string()).collect()),
        Some(Err(e)) => Err(e),
        None => Err(CsvError::Empty {
            file: records.file.clone(),
        }),
    }
}

/// A data row's cells checked against the header's width.
pub fn fits(file: &str, header: &[String], line: usize, cells: &[String]) -> Result<(), CsvError> {
    if cells.len() != header.len() {
        return Err(CsvError::Row {
            file: file.to_string(),
            line,
            problem: format!(
                "{} cells, expected {} ({})",
                cells.len(),
                header.len(),
                header.join(",")
            ),
        });
    }
    Ok(())
}

/// A header line's cells, trimmed (for recognising a file by its first line).
pub fn split_header(line: &str) -> Vec<String> {
    split_record(line)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.trim().to_string())
        .collect()
}

/// Parses a whole CSV text into a [`Table`] (the shipped data files, small imports).
pub fn parse(file: &str, text: &str) -> Result<Table, CsvError> {
    let mut records = Records::new(file, text.as_bytes());
    let header = header(&mut records)?;
    let mut rows = Vec::new();
    for r in records {
        let (line, cells) = r?;
        fits(file, &header, line, &cells)?;
        rows.push((line, cells));
    }
    Ok(Table {
        file: file.to_string(),
        header,
        rows,
    })
}

fn split_record(line: &str) -> Result<Vec<String>, String> {
    if !line.contains('"') {
        // Most rows: no quoting, a plain split.
        return Ok(line.split(',').map(String::from).collect());
    }
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                cells.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            (false, '"') => return Err("stray quote inside an unquoted cell".into()),
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted cell".into());
    }
    cells.push(cur);
    Ok(cells)
}

/// Quotes a cell for CSV output when it needs it.
pub fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// A cell of text that came from users, made safe for spreadsheets: a cell starting with
/// `=`, `+`, `-`, `@`, tab or carriage return is prefixed with `'` so Excel or LibreOffice
/// never evaluate it as a formula (CSV injection, as OWASP advises), then quoted as needed.
pub fn text_cell(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        quote(&format!("'{cell}"))
    } else {
        quote(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cells_span_lines() {
        let t = parse("q", "a,b\n\"one\ntwo\",3\nx,4\n").expect("parses");
        assert_eq!(t.rows[0].1[0], "one\ntwo");
        assert_eq!(t.rows[1], (4, vec!["x".to_string(), "4".to_string()]));
        assert!(parse("q", "a\n\"open\n").is_err());
        assert_eq!(parse("q", "\u{feff}h\n1\n").expect("bom").header, vec!["h"]);
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(text_cell("=cmd|'/c calc'!A1"), "'=cmd|'/c calc'!A1");
        assert_eq!(text_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text_cell("-2+3"), "'-2+3");
        assert_eq!(text_cell("\tx"), "'\tx");
        assert_eq!(text_cell("plain, text"), "\"plain, text\"");
    }

    #[test]
    fn reads_quoted_cells_and_names_bad_lines() {
        let t = parse(
            "t.csv",
            "model,tdp_w\n\"Intel, Xeon \"\"X\"\"\",95\n# comment\nAMD,65\n",
        )
        .expect("parses");
        assert_eq!(t.rows[0].1, vec!["Intel, Xeon \"X\"", "95"]);
        assert_eq!(t.rows[1].0, 4);
        let err = parse("t.csv", "a,b\n1,2,3\n").expect_err("width");
        assert_eq!(err.to_string(), "t.csv: line 2: 3 cells, expected 2 (a,b)");
        assert!(parse("t.csv", "a,b\n\"1,2\n").is_err());
        assert!(parse("t.csv", "").is_err());
    }

    #[test]
    fn years_are_whole_plausible_numbers() {
        let t = parse("y.csv", "year\n2021\n 1990 \n2021.5\n20\n\n-2021\nMMXXI\n").expect("parses");
        let y = |i: usize| t.year(t.rows[i].0, &t.rows[i].1, 0);
        assert_eq!((y(0).ok(), y(1).ok()), (Some(2021), Some(1990)));
        for i in 2..t.rows.len() {
            let e = y(i).expect_err("refused").to_string();
            assert!(e.contains("y.csv") && e.contains("is not a year"), "{e}");
        }
    }

    #[test]
    fn quote_round_trips() {
        let cell = "a \"b\", c";
        let t = parse("q", &format!("x\n{}\n", quote(cell))).expect("parses");
        assert_eq!(t.rows[0].1[0], cell);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,120}") {
            if let Ok(t) = parse("f.csv", &s) {
                for (line, r) in &t.rows {
                    for c in 0..t.header.len() {
                        let _ = t.float(*line, r, c);
                    }
                }
            }
        }

        #[test]
        fn quoted_cells_never_panic(s in "([a-z\"é,]{0,6}\n?){0,6}") {
            let _ = parse("f.csv", &s);
        }

        #[test]
        fn quote_then_parse_gives_the_cell_back(cell in "\\PC{0,20}") {
            let text = format!("h\n{}\n", quote(&cell));
            if !cell.contains('\r') && !cell.trim().is_empty() && !cell.starts_with('#') {
                let t = parse("f.csv", &text).expect("round trip");
                proptest::prop_assert_eq!(&t.rows[0].1[0], &cell);
            }
        }
    }
}
