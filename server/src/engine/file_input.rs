//! Reads the file an admin uploads (emails or account IDs, in whatever shape Excel and HR tools
//! produce) into numbered entries, and says which column was read and why.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};
use model::deletion::{ColumnChoice, UnreadLines};

/// Larger uploads are refused before any parsing (a team's user list is far below this).
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Data rows (header excluded) one file may hold.
pub const MAX_ROWS: usize = 100_000;
/// Columns one row may hold; more means the file is not a user list (or the separator is wrong).
pub const MAX_COLUMNS: usize = 1_000;

/// The admin's file, read: one entry per non-blank data row, and the column the values came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminFile {
    pub entries: Vec<FileEntry>,
    pub column: ColumnChoice,
    /// The header row and the blank lines: every line of the file is an entry, part of one
    /// (a quoted cell over several lines) or one of these.
    pub unread_lines: UnreadLines,
}

/// One data row of the admin's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// 1-based line of the file where the row starts.
    pub line: usize,
    /// The cell as given, with surrounding spaces and invisible characters removed.
    pub raw: String,
    pub value: EntryValue,
}

/// What a cell holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryValue {
    /// An email address, trimmed, in its original case (matching ignores case).
    Email(String),
    /// A numeric account ID.
    AccountId(String),
    /// Neither; the reason is in plain words.
    Invalid(String),
}

/// Why a file could not be read at all. Row-level problems are [`EntryValue::Invalid`] instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("The file is empty: it has no email addresses or account IDs.")]
    Empty,
    #[error("The file is too large ({size} bytes); the most Offboard reads is {max} bytes. Split it into smaller files.")]
    TooLarge { size: usize, max: usize },
    #[error("The file has more than {max} rows; split it into smaller files.")]
    TooManyRows { max: usize },
    #[error("A row on line {line} has {columns} columns; the most Offboard reads is {max}. Is this the right file?")]
    TooManyColumns {
        line: usize,
        columns: usize,
        max: usize,
    },
    #[error("The file has a header row (\"{header}\") but no users below it.")]
    HeaderOnly { header: String },
    #[error("No column in the file holds email addresses or numeric account IDs.")]
    NoUsableColumn,
    #[error("Column {column} does not exist: the file has {columns} column(s).")]
    ColumnOutOfRange { column: usize, columns: usize },
}

/// Reads an uploaded file. `column` (0-based) overrides the column Offboard would pick itself.
pub fn read_admin_file(bytes: &[u8], column: Option<usize>) -> Result<AdminFile, FileError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge {
            size: bytes.len(),
            max: MAX_FILE_BYTES,
        });
    }
    let (text, encoding) = decode(bytes);
    let text = normalize_line_breaks(&text);
    let delimiter = detect_delimiter(&text);
    let rows = read_rows(&text, delimiter.byte())?;
    if rows.is_empty() {
        return Err(FileError::Empty);
    }
    let width = rows.iter().map(|r| r.cells.len()).max().unwrap_or(0);

    let pick = match column {
        Some(index) if index >= width => {
            return Err(FileError::ColumnOutOfRange {
                column: index + 1,
                columns: width,
            })
        }
        Some(index) => Pick {
            index,
            has_header: first_row_is_header(&rows, index),
            reason: "chosen by you".to_string(),
        },
        None => pick_by_header(&rows)
            .or_else(|| pick_by_content(&rows))
            .ok_or(FileError::NoUsableColumn)?,
    };

    let data_rows = if pick.has_header {
        &rows[1..]
    } else {
        &rows[..]
    };
    let header = pick
        .has_header
        .then(|| cell(&rows[0], pick.index).to_string());
    if data_rows.is_empty() {
        return Err(FileError::HeaderOnly {
            header: header.unwrap_or_default(),
        });
    }
    if data_rows.len() > MAX_ROWS {
        return Err(FileError::TooManyRows { max: MAX_ROWS });
    }

    let all_columns = (0..width)
        .map(|i| match pick.has_header.then(|| cell(&rows[0], i)) {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => format!("Column {}", i + 1),
        })
        .collect();
    let entries = data_rows
        .iter()
        .map(|row| entry_for(row, pick.index))
        .collect();
    let unread_lines = UnreadLines {
        header: pick.has_header.then_some(rows[0].line),
        blank: blank_runs(&rows, line_count(&text)),
    };
    Ok(AdminFile {
        entries,
        unread_lines,
        column: ColumnChoice {
            index: pick.index,
            header,
            all_columns,
            reason: pick.reason,
            delimiter: delimiter.label().to_string(),
            encoding: encoding.to_string(),
        },
    })
}

/// Classifies one cell as the file reader does (the same cleaning, the same rules), so a
/// preview row's `input` can be re-read later with the same result.
pub fn classify_cell(cell: &str) -> EntryValue {
    let value = clean_value(cell);
    if value.is_empty() {
        return EntryValue::Invalid("the cell is empty".to_string());
    }
    if value.chars().all(|c| c.is_ascii_digit()) {
        return EntryValue::AccountId(value);
    }
    match email_problem(&value) {
        None => EntryValue::Email(value),
        Some(problem) => EntryValue::Invalid(problem),
    }
}

/// True when a cell holds an email address or an account ID.
fn is_usable(cell: &str) -> bool {
    !matches!(classify_cell(cell), EntryValue::Invalid(_))
}

fn is_email(cell: &str) -> bool {
    matches!(classify_cell(cell), EntryValue::Email(_))
}

/// Characters Excel, Outlook and web pages slip in that nobody can see: they must not make
/// `john@acme.com` differ from `john@acme.com`.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

fn is_padding(c: char) -> bool {
    c.is_whitespace() || is_invisible(c) || c.is_control()
}

/// The cell trimmed of spaces (non-breaking ones included) and invisible characters.
fn trim_cell(cell: &str) -> &str {
    cell.trim_matches(is_padding)
}

/// The value inside a cell: trimmed, one layer of stray quotes removed (from cells like
/// ` "a@b.com"` that the CSV reader keeps verbatim), invisible characters dropped anywhere.
fn clean_value(cell: &str) -> String {
    let mut value = trim_cell(cell);
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            value = trim_cell(&value[1..value.len() - 1]);
            break;
        }
    }
    value.chars().filter(|c| !is_invisible(*c)).collect()
}

/// Why `value` is not an email address, or None when it is one. Deliberately pragmatic: plus
/// addressing, subdomains and unusual but legal local parts are accepted.
fn email_problem(value: &str) -> Option<String> {
    let not_an_email = || {
        Some(format!(
            "\"{}\" is not an email address or a numeric account ID",
            shorten(value)
        ))
    };
    if looks_like_excel_number(value) {
        return Some(format!(
            "\"{value}\" looks like a number Excel reformatted; format the column as Text and export again"
        ));
    }
    if value.chars().any(char::is_whitespace) {
        return Some(format!("\"{}\" contains spaces", shorten(value)));
    }
    let Some((local, domain)) = value.split_once('@') else {
        return not_an_email();
    };
    if domain.contains('@') {
        return Some(format!("\"{}\" has more than one @", shorten(value)));
    }
    if local.is_empty() {
        return Some(format!("\"{}\" has nothing before the @", shorten(value)));
    }
    if value.chars().any(|c| {
        c.is_control()
            || matches!(
                c,
                ',' | ';' | '<' | '>' | '(' | ')' | '[' | ']' | '"' | '\\'
            )
    }) {
        return Some(format!(
            "\"{}\" contains characters an email address cannot have",
            shorten(value)
        ));
    }
    if !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Some(format!(
            "\"{}\" has no valid domain after the @ (like example.com)",
            shorten(value)
        ));
    }
    None
}

/// `1.23457E+11` and the like: what Excel shows (and saves) for long numeric IDs.
fn looks_like_excel_number(value: &str) -> bool {
    let upper = value.to_ascii_uppercase();
    let Some((mantissa, exponent)) = upper.split_once("E+") else {
        return false;
    };
    let digits_and_dot = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_digit() || c == '.')
            && s.matches('.').count() <= 1
    };
    digits_and_dot(mantissa) && !exponent.is_empty() && exponent.chars().all(|c| c.is_ascii_digit())
}

/// Keeps reasons readable when a cell holds a paragraph.
fn shorten(value: &str) -> String {
    const LIMIT: usize = 80;
    if value.chars().count() <= LIMIT {
        value.to_string()
    } else {
        let head: String = value.chars().take(LIMIT).collect();
        format!("{head}…")
    }
}

/// Text of the file, and the name of its encoding as the admin would recognise it.
fn decode(bytes: &[u8]) -> (String, &'static str) {
    // A byte order mark names the encoding (UTF-8, UTF-16LE or UTF-16BE) and is not text.
    if let Some((encoding, bom_length)) = Encoding::for_bom(bytes) {
        let label = if encoding == UTF_8 {
            "UTF-8 with BOM"
        } else {
            encoding.name()
        };
        let text = encoding.decode_without_bom_handling(&bytes[bom_length..]).0;
        return (text.into_owned(), label);
    }
    if let Some(little_endian) = utf16_without_bom(bytes) {
        let label = if little_endian {
            "UTF-16LE"
        } else {
            "UTF-16BE"
        };
        return (utf16(bytes, little_endian), label);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), "UTF-8"),
        // Windows-1252 maps every byte to a character, so a file in it always reads.
        Err(_) => (
            WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
            "Windows-1252",
        ),
    }
}

fn utf16(bytes: &[u8], little_endian: bool) -> String {
    let encoding = if little_endian { UTF_16LE } else { UTF_16BE };
    encoding.decode_without_bom_handling(bytes).0.into_owned()
}

/// Some tools write UTF-16 without a BOM. Text files in UTF-8 or Windows-1252 have no zero
/// bytes, while UTF-16 text of user lists (mostly ASCII) has one in nearly every pair: a fair
/// share of zeros, almost all on one side, decides, and the side gives the byte order.
fn utf16_without_bom(bytes: &[u8]) -> Option<bool> {
    let sample = &bytes[..bytes.len().min(4096)];
    if sample.len() < 2 || !sample.len().is_multiple_of(2) {
        return None;
    }
    let pairs = sample.len() / 2;
    let zeros_at = |offset: usize| {
        sample
            .iter()
            .skip(offset)
            .step_by(2)
            .filter(|b| **b == 0)
            .count()
    };
    let (even, odd) = (zeros_at(0), zeros_at(1));
    let one_sided = |many: usize, few: usize| many * 5 >= pairs && few * 4 < many;
    if one_sided(odd, even) {
        Some(true)
    } else if one_sided(even, odd) {
        Some(false)
    } else {
        None
    }
}

/// Old Mac files end lines with a lone CR; the CSV reader counts lines by LF only.
fn normalize_line_breaks(text: &str) -> String {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if !text.contains('\r') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() != Some(&'\n') {
                out.push('\n');
            } else {
                out.push('\r');
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delimiter {
    Comma,
    Semicolon,
    Tab,
}

impl Delimiter {
    const ALL: [Delimiter; 3] = [Delimiter::Comma, Delimiter::Semicolon, Delimiter::Tab];

    fn byte(self) -> u8 {
        match self {
            Delimiter::Comma => b',',
            Delimiter::Semicolon => b';',
            Delimiter::Tab => b'\t',
        }
    }

    fn label(self) -> &'static str {
        match self {
            Delimiter::Comma => "comma",
            Delimiter::Semicolon => "semicolon",
            Delimiter::Tab => "tab",
        }
    }
}

/// Picks the separator that splits the first rows into the most email/ID cells (so a name
/// like `Doe, John` in a `;` file does not mislead it), then into the most rows of several
/// filled columns. On a tie (one column, nothing to split) it is a comma.
fn detect_delimiter(text: &str) -> Delimiter {
    const SAMPLE_ROWS: usize = 200;
    let mut best = (Delimiter::Comma, 0usize, 0usize);
    for delimiter in Delimiter::ALL {
        let rows = sample_rows(text, delimiter.byte(), SAMPLE_ROWS);
        let usable = rows
            .iter()
            .flat_map(|r| r.iter())
            .filter(|c| is_usable(c))
            .count();
        let multi_column = multi_column_rows(&rows);
        if (usable, multi_column) > (best.1, best.2) {
            best = (delimiter, usable, multi_column);
        }
    }
    best.0
}

fn sample_rows(text: &str, delimiter: u8, limit: usize) -> Vec<Vec<String>> {
    csv_reader(text, delimiter)
        .records()
        .filter_map(Result::ok)
        .filter(|r| r.iter().any(|c| !trim_cell(c).is_empty()))
        .take(limit)
        // A line of a million separators must not become a million strings per guess.
        .map(|r| r.iter().take(MAX_COLUMNS + 1).map(str::to_string).collect())
        .collect()
}

/// Rows split into two or more non-blank cells: real columns, not padding around one value
/// (a comma file with tab-padded cells must not read as a tab file).
fn multi_column_rows(rows: &[Vec<String>]) -> usize {
    rows.iter()
        .filter(|r| r.iter().filter(|c| !trim_cell(c).is_empty()).count() > 1)
        .count()
}

fn csv_reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes())
}

/// A non-blank row and the file lines it spans (more than one for a quoted multi-line cell).
struct Row {
    line: usize,
    last_line: usize,
    cells: Vec<String>,
}

/// Line breaks inside a record's bytes, not counting those before or after it.
fn inner_line_breaks(record: &[u8]) -> usize {
    let is_break = |b: &u8| matches!(b, b'\r' | b'\n');
    let first = record.iter().position(|b| !is_break(b));
    let last = record.iter().rposition(|b| !is_break(b));
    match (first, last) {
        (Some(first), Some(last)) => record[first..=last].iter().filter(|b| **b == b'\n').count(),
        _ => 0,
    }
}

/// How many lines the text has (a final line break does not start another line).
fn line_count(text: &str) -> usize {
    let breaks = text.bytes().filter(|b| *b == b'\n').count();
    if text.is_empty() || text.ends_with('\n') {
        breaks
    } else {
        breaks + 1
    }
}

/// The runs of lines no row covers, first and last line of each: blank lines, and lines
/// whose cells are all empty (`,,`).
fn blank_runs(rows: &[Row], lines: usize) -> Vec<[usize; 2]> {
    let mut runs = Vec::new();
    let mut next = 1;
    for row in rows {
        if row.line > next {
            runs.push([next, row.line - 1]);
        }
        next = next.max(row.last_line + 1);
    }
    if lines >= next {
        runs.push([next, lines]);
    }
    runs
}

fn read_rows(text: &str, delimiter: u8) -> Result<Vec<Row>, FileError> {
    let mut rows = Vec::new();
    let mut reader = csv_reader(text, delimiter);
    let mut record = csv::StringRecord::new();
    let mut lines = LineCounter::new(text);
    // The text is already valid UTF-8, so the reader's only possible error is a UTF-8 one;
    // should one appear anyway, the rest of the file is treated as ended rather than guessed at.
    while let Ok(true) = reader.read_record(&mut record) {
        let start = record.position().map_or(0, |p| p.byte() as usize);
        let line = lines.line_of_record_at(start);
        // The record's own text (without the line break that ends it) tells how many lines a
        // quoted cell carried it over.
        let end = (reader.position().byte() as usize).clamp(start, text.len());
        let extra_lines = inner_line_breaks(&text.as_bytes()[start..end]);
        if record.len() > MAX_COLUMNS {
            return Err(FileError::TooManyColumns {
                line,
                columns: record.len(),
                max: MAX_COLUMNS,
            });
        }
        if record.iter().all(|c| trim_cell(c).is_empty()) {
            continue;
        }
        // One extra row for a header, one more to know the limit is passed; no need to hold
        // millions of rows to say so.
        if rows.len() > MAX_ROWS + 1 {
            return Err(FileError::TooManyRows { max: MAX_ROWS });
        }
        rows.push(Row {
            line,
            last_line: line + extra_lines,
            cells: record.iter().map(str::to_string).collect(),
        });
    }
    Ok(rows)
}

/// File line numbers for records. The CSV reader's own line count goes wrong around the blank
/// lines it skips, so the line is counted here from the record's byte offset: the record really
/// starts after any line breaks the reader skipped.
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// `byte` must not decrease between calls (records come in file order).
    fn line_of_record_at(&mut self, byte: usize) -> usize {
        let mut start = byte.min(self.text.len());
        while matches!(self.text.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        if start >= self.offset {
            self.line += self.text[self.offset..start]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.offset = start;
        }
        self.line
    }
}

fn cell(row: &Row, index: usize) -> &str {
    row.cells.get(index).map_or("", |c| trim_cell(c))
}

struct Pick {
    index: usize,
    has_header: bool,
    reason: String,
}

/// The first row is a header when its cell in `index` is not an email or ID (and has no `@`:
/// a mistyped address is a bad row to report, not a header to hide) while a later row's is.
fn first_row_is_header(rows: &[Row], index: usize) -> bool {
    let first = cell(&rows[0], index);
    !is_usable(first) && !first.contains('@') && rows[1..].iter().any(|r| is_usable(cell(r, index)))
}

/// How well a header names the column Offboard wants: lower is better, None = not wanted.
/// "User ID" and plain "ID" are deliberately absent: Stack's user ID (in profile URLs) is not
/// the account ID that SCIM deletes, and an HR "ID" is neither.
fn header_rank(header: &str) -> Option<u8> {
    let key: String = header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    const EMAIL: [&str; 10] = [
        "email",
        "emails",
        "emailaddress",
        "emailaddresses",
        "mail",
        "emailadresse",
        "mailadresse",
        "adresseemail",
        "courriel",
        "correoelectronico",
    ];
    const ACCOUNT_ID: [&str; 5] = [
        "accountid",
        "accountids",
        "stackaccountid",
        "scimid",
        "accountnumber",
    ];
    // Columns about someone else, or a second address, lose to the person's main email.
    const SECONDARY: [&str; 10] = [
        "manager",
        "secondary",
        "alternate",
        "alternative",
        "backup",
        "supervisor",
        "personal",
        "other",
        "owner",
        "lead",
    ];
    if EMAIL.contains(&key.as_str()) {
        Some(0)
    } else if ACCOUNT_ID.contains(&key.as_str()) {
        Some(1)
    } else if key.contains("mail") && !SECONDARY.iter().any(|w| key.contains(w)) {
        Some(2)
    } else if key.contains("mail") {
        Some(3)
    } else {
        None
    }
}

fn pick_by_header(rows: &[Row]) -> Option<Pick> {
    let first = &rows[0];
    let usable_below = |i: usize| rows[1..].iter().filter(|r| is_usable(cell(r, i))).count();
    (0..first.cells.len())
        .filter_map(|i| header_rank(cell(first, i)).map(|rank| (rank, i)))
        .filter(|(_, i)| !is_usable(cell(first, *i)))
        // Best rank, then most usable values, then leftmost.
        .map(|(rank, i)| (rank, std::cmp::Reverse(usable_below(i)), i))
        // A lone row is a header only if nothing in it is usable ("Email" alone, not
        // "Mail Smith,a@x.com").
        .filter(|(_, usable, _)| {
            usable.0 > 0 || (rows.len() == 1 && !first.cells.iter().any(|c| is_usable(c)))
        })
        .min()
        .map(|(_, _, index)| Pick {
            index,
            has_header: true,
            reason: format!("header \"{}\"", cell(first, index)),
        })
}

/// No header names the column: take the one with the most emails, or, when no column has an
/// email, the one with the most numeric account IDs. Emails win because a column of numbers
/// may be employee numbers, and a wrong number could match some other account. The first
/// rows decide (plenty to tell columns apart; keeps wide, long files fast).
fn pick_by_content(rows: &[Row]) -> Option<Pick> {
    const SAMPLE_ROWS: usize = 2_000;
    let sample = &rows[..rows.len().min(SAMPLE_ROWS)];
    let width = sample.iter().map(|r| r.cells.len()).max().unwrap_or(0);
    let count =
        |i: usize, test: fn(&str) -> bool| sample.iter().filter(|r| test(cell(r, i))).count();
    let best = |test: fn(&str) -> bool| {
        (0..width)
            .map(|i| (count(i, test), std::cmp::Reverse(i)))
            .max()
            .filter(|(n, _)| *n > 0)
            .map(|(_, std::cmp::Reverse(i))| i)
    };
    let (index, reason) = match best(is_email) {
        Some(i) => (i, "most values look like email addresses"),
        None => (best(is_usable)?, "most values look like account IDs"),
    };
    Some(Pick {
        index,
        has_header: first_row_is_header(rows, index),
        reason: reason.to_string(),
    })
}

fn entry_for(row: &Row, index: usize) -> FileEntry {
    let Some(raw) = row.cells.get(index).map(|c| trim_cell(c)) else {
        return FileEntry {
            line: row.line,
            raw: String::new(),
            value: EntryValue::Invalid(format!(
                "the row has only {} column(s), so column {} is missing",
                row.cells.len(),
                index + 1
            )),
        };
    };
    FileEntry {
        line: row.line,
        raw: raw.to_string(),
        value: classify_cell(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> AdminFile {
        read_admin_file(text.as_bytes(), None).expect("file should read")
    }

    fn values(file: &AdminFile) -> Vec<(usize, EntryValue)> {
        file.entries
            .iter()
            .map(|e| (e.line, e.value.clone()))
            .collect()
    }

    fn email(s: &str) -> EntryValue {
        EntryValue::Email(s.to_string())
    }

    /// Emails read at these line numbers.
    fn emails_at(lines: &[(usize, &str)]) -> Vec<(usize, EntryValue)> {
        lines.iter().map(|(line, e)| (*line, email(e))).collect()
    }

    fn id(s: &str) -> EntryValue {
        EntryValue::AccountId(s.to_string())
    }

    fn is_invalid(v: &EntryValue) -> bool {
        matches!(v, EntryValue::Invalid(_))
    }

    fn utf16le(text: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xFF, 0xFE] } else { vec![] };
        out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        out
    }

    #[test]
    fn stack_template_one_email_per_line_crlf() {
        let file = read("a@x.com\r\nB@Example.org\r\n");
        assert_eq!(
            values(&file),
            emails_at(&[(1, "a@x.com"), (2, "B@Example.org")])
        );
        assert_eq!(file.column.index, 0);
        assert_eq!(file.column.header, None);
        assert_eq!(file.column.all_columns, vec!["Column 1"]);
        assert_eq!(file.column.delimiter, "comma");
        assert_eq!(file.column.encoding, "UTF-8");
        assert_eq!(file.column.reason, "most values look like email addresses");
    }

    #[test]
    fn header_names_are_recognised() {
        for header in [
            "Email",
            "email address",
            "E-mail",
            "EMAIL_ADDRESS",
            "E-Mail-Adresse",
        ] {
            let file = read(&format!("{header}\na@x.com\n"));
            assert_eq!(file.column.header.as_deref(), Some(header), "{header}");
            assert_eq!(file.column.reason, format!("header \"{header}\""));
            assert_eq!(values(&file), emails_at(&[(2, "a@x.com")]), "{header}");
        }
        for header in ["Account ID", "accountId", "account_id"] {
            let file = read(&format!("{header}\n123\n456\n"));
            assert_eq!(file.column.header.as_deref(), Some(header));
            assert_eq!(values(&file), vec![(2, id("123")), (3, id("456"))]);
        }
    }

    #[test]
    fn exact_email_header_beats_manager_and_secondary_email() {
        let text = "Name,Manager Email,Secondary email,Email,Work Email\n\
                    Ann,boss@x.com,ann@home.net,ann@x.com,ann.w@x.com\n";
        let file = read(text);
        assert_eq!(file.column.index, 3);
        assert_eq!(values(&file), emails_at(&[(2, "ann@x.com")]));
        assert_eq!(
            file.column.all_columns,
            vec![
                "Name",
                "Manager Email",
                "Secondary email",
                "Email",
                "Work Email"
            ]
        );
        // Without an exact one, "Work Email" beats "Manager Email".
        let file = read("Manager Email,Work Email\nboss@x.com,ann@x.com\n");
        assert_eq!(file.column.index, 1);
    }

    #[test]
    fn user_id_header_is_not_taken_for_account_ids() {
        // Stack's user ID is not the account ID: with no email anywhere, content decides, and
        // the reason says so (the admin sees it and can pick another column).
        let file = read("User ID,Name\n17,Ann\n");
        assert_eq!(file.column.reason, "most values look like account IDs");
        assert_eq!(file.column.header.as_deref(), Some("User ID"));
    }

    #[test]
    fn content_decides_without_header_names() {
        let file = read("Ann,12,ann@x.com\nBob,13,bob@x.com\n");
        assert_eq!(file.column.index, 2);
        assert_eq!(file.column.header, None);
        assert_eq!(file.column.reason, "most values look like email addresses");
        let file = read("Who,Login\nAnn,ann@x.com\nBob,bob@x.com\n");
        assert_eq!(file.column.index, 1);
        assert_eq!(file.column.header.as_deref(), Some("Login"));
        assert_eq!(file.entries.len(), 2);
    }

    #[test]
    fn emails_beat_a_fuller_column_of_numbers() {
        let file = read("1,ann@x.com\n2,\n3,\n4,bob@x.com\n");
        assert_eq!(file.column.index, 1);
        assert!(is_invalid(&file.entries[1].value));
    }

    #[test]
    fn column_override() {
        let file = read_admin_file(b"Email,Account ID\na@x.com,12\n", Some(1)).unwrap();
        assert_eq!(file.column.reason, "chosen by you");
        assert_eq!(file.column.header.as_deref(), Some("Account ID"));
        assert_eq!(values(&file), vec![(2, id("12"))]);
        let err = read_admin_file(b"Email,Account ID\na@x.com,12\n", Some(2)).unwrap_err();
        assert_eq!(
            err,
            FileError::ColumnOutOfRange {
                column: 3,
                columns: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "Column 3 does not exist: the file has 2 column(s)."
        );
        // A chosen column of non-emails is read as given: every row invalid, nothing guessed.
        let file = read_admin_file(b"Name,Email\nAnn,a@x.com\n", Some(0)).unwrap();
        assert_eq!(file.entries.len(), 2);
        assert!(file.entries.iter().all(|e| is_invalid(&e.value)));
    }

    #[test]
    fn semicolon_and_tab_files() {
        let file = read("Name;Email\n\"Doe, John\";john@x.com\nDoe, Jane;jane@x.com\n");
        assert_eq!(file.column.delimiter, "semicolon");
        assert_eq!(
            values(&file),
            emails_at(&[(2, "john@x.com"), (3, "jane@x.com")])
        );
        let file = read("Email\tName\na@x.com\tAnn, A\n");
        assert_eq!(file.column.delimiter, "tab");
        assert_eq!(values(&file), emails_at(&[(2, "a@x.com")]));
    }

    #[test]
    fn tab_padding_does_not_make_a_tab_file() {
        let file = read("a@x.com\n\tb@x.com\t\n");
        assert_eq!(file.column.delimiter, "comma");
        assert_eq!(values(&file), emails_at(&[(1, "a@x.com"), (2, "b@x.com")]));
    }

    #[test]
    fn encodings() {
        let mut bom = b"\xEF\xBB\xBFEmail\r\na@x.com\r\n".to_vec();
        let file = read_admin_file(&bom, None).unwrap();
        assert_eq!(file.column.encoding, "UTF-8 with BOM");
        assert_eq!(file.column.header.as_deref(), Some("Email"));
        assert_eq!(values(&file), emails_at(&[(2, "a@x.com")]));

        // Excel "Unicode Text": UTF-16LE, BOM, tabs.
        let bytes = utf16le("Name\tE-mail\r\nZoë\tzoe@x.com\r\n", true);
        let file = read_admin_file(&bytes, None).unwrap();
        assert_eq!(file.column.encoding, "UTF-16LE");
        assert_eq!(file.column.delimiter, "tab");
        assert_eq!(values(&file), emails_at(&[(2, "zoe@x.com")]));

        let mut be = vec![0xFE, 0xFF];
        be.extend("a@x.com\n".encode_utf16().flat_map(u16::to_be_bytes));
        let file = read_admin_file(&be, None).unwrap();
        assert_eq!(file.column.encoding, "UTF-16BE");
        assert_eq!(values(&file), emails_at(&[(1, "a@x.com")]));

        let file = read_admin_file(&utf16le("a@x.com\nb@x.com\n", false), None).unwrap();
        assert_eq!(file.column.encoding, "UTF-16LE");
        assert_eq!(file.entries.len(), 2);
        // Tiny, and padded with zero-width spaces (no zero byte in their pairs).
        let file = read_admin_file(&utf16le("\u{200B}00\u{200B}", false), None).unwrap();
        assert_eq!(file.column.encoding, "UTF-16LE");
        assert_eq!(values(&file), vec![(1, id("00"))]);
        let mut be = vec![];
        be.extend("7\n".encode_utf16().flat_map(u16::to_be_bytes));
        let file = read_admin_file(&be, None).unwrap();
        assert_eq!(file.column.encoding, "UTF-16BE");
        assert_eq!(values(&file), vec![(1, id("7"))]);

        // Windows-1252: "Zoë" with a single 0xEB byte is not UTF-8.
        bom.clear();
        bom.extend_from_slice(b"Name,Email\nZo\xEB,zoe@x.com\n");
        let file = read_admin_file(&bom, None).unwrap();
        assert_eq!(file.column.encoding, "Windows-1252");
        assert_eq!(values(&file), emails_at(&[(2, "zoe@x.com")]));
    }

    #[test]
    fn padding_invisible_characters_and_case() {
        let file =
            read("  \u{00A0}A@X.com\u{200B} \n\u{FEFF}b@x.com\n\t\"c@x.com\" \nd\u{200B}@x.com\n");
        assert_eq!(
            values(&file),
            emails_at(&[
                (1, "A@X.com"),
                (2, "b@x.com"),
                (3, "c@x.com"),
                (4, "d@x.com")
            ])
        );
        assert_eq!(file.entries[0].raw, "A@X.com");
        assert_eq!(file.entries[2].raw, "\"c@x.com\"");
    }

    #[test]
    fn blank_lines_are_skipped_and_line_numbers_stay_true() {
        let file = read("\n\nEmail\n\n  \n,,\na@x.com\r\n\r\n\"b@x.com\"\n");
        assert_eq!(file.column.header.as_deref(), Some("Email"));
        assert_eq!(values(&file), emails_at(&[(7, "a@x.com"), (9, "b@x.com")]));
    }

    /// The lines an entry starts on, the header and the blank lines, in order.
    fn accounted_lines(file: &AdminFile) -> Vec<usize> {
        let mut lines: Vec<usize> = file.entries.iter().map(|e| e.line).collect();
        lines.extend(file.unread_lines.header);
        for [first, last] in &file.unread_lines.blank {
            lines.extend(*first..=*last);
        }
        lines.sort_unstable();
        lines
    }

    #[test]
    fn the_header_and_the_blank_lines_are_kept_as_unread_lines() {
        let text = "\n\nEmail\n\n  \n,,\na@x.com\r\n\r\n\"b@x.com\"\n\n";
        let file = read(text);
        assert_eq!(file.unread_lines.header, Some(3));
        assert_eq!(
            file.unread_lines.blank,
            vec![[1, 2], [4, 6], [8, 8], [10, 10]]
        );
        assert_eq!(accounted_lines(&file), (1..=10).collect::<Vec<_>>());
        // No header, no blank line: nothing unread.
        let file = read("a@x.com\nb@x.com");
        assert_eq!(file.unread_lines, UnreadLines::default());
    }

    #[test]
    fn a_multi_line_cell_is_not_taken_for_blank_lines() {
        let text = "Email,Note\na@x.com,\"two\n\nlines\"\n\nb@x.com,x";
        let file = read(text);
        assert_eq!(file.unread_lines.header, Some(1));
        // Lines 3 and 4 are inside the quoted note of line 2; line 5 is blank.
        assert_eq!(file.unread_lines.blank, vec![[5, 5]]);
        assert_eq!(values(&file), emails_at(&[(2, "a@x.com"), (6, "b@x.com")]));
        // Old Mac line ends count the same way.
        let file = read("a@x.com\r\rb@x.com\r");
        assert_eq!(file.unread_lines.blank, vec![[2, 2]]);
    }

    #[test]
    fn quoted_multiline_cells_keep_line_numbers() {
        let file = read("Email,Note\na@x.com,\"two\nlines\"\nb@x.com,x\n");
        assert_eq!(values(&file), emails_at(&[(2, "a@x.com"), (4, "b@x.com")]));
    }

    #[test]
    fn old_mac_line_endings() {
        let file = read("a@x.com\rb@x.com\r\rc@x.com");
        assert_eq!(
            values(&file),
            emails_at(&[(1, "a@x.com"), (2, "b@x.com"), (4, "c@x.com")])
        );
    }

    #[test]
    fn duplicates_are_kept() {
        let file = read("a@x.com\nA@X.COM\na@x.com\n");
        assert_eq!(file.entries.len(), 3);
    }

    #[test]
    fn invalid_rows_say_why_with_their_line() {
        let file = read("Email,Name\na@x.com,Ann\nnot an email,Bob\njohn.doe,C\n,Dan\nx@@y.com,E\n@x.com,F\na@localhost,G\n1.23457E+11,H\n");
        let invalid: Vec<(usize, String)> = file
            .entries
            .iter()
            .filter_map(|e| match &e.value {
                EntryValue::Invalid(r) => Some((e.line, r.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            invalid,
            vec![
                (3, "\"not an email\" contains spaces".to_string()),
                (4, "\"john.doe\" is not an email address or a numeric account ID".to_string()),
                (5, "the cell is empty".to_string()),
                (6, "\"x@@y.com\" has more than one @".to_string()),
                (7, "\"@x.com\" has nothing before the @".to_string()),
                (8, "\"a@localhost\" has no valid domain after the @ (like example.com)".to_string()),
                (9, "\"1.23457E+11\" looks like a number Excel reformatted; format the column as Text and export again".to_string()),
            ]
        );
    }

    #[test]
    fn ragged_rows_are_invalid() {
        let file = read("Name,Email\nAnn,a@x.com\nBob\n");
        assert_eq!(file.entries[1].line, 3);
        assert_eq!(
            file.entries[1].value,
            EntryValue::Invalid("the row has only 1 column(s), so column 2 is missing".into())
        );
    }

    #[test]
    fn accepts_plus_addressing_subdomains_and_ids() {
        assert_eq!(
            classify_cell("ann+off@mail.eu.x.co.uk"),
            email("ann+off@mail.eu.x.co.uk")
        );
        assert_eq!(classify_cell(" 0042 "), id("0042"));
        assert!(is_invalid(&classify_cell("-1")));
        assert!(is_invalid(&classify_cell("12 34")));
        assert!(is_invalid(&classify_cell("Ann <a@x.com>")));
    }

    #[test]
    fn mixed_emails_and_ids_in_one_column() {
        let file = read("a@x.com\n123\n");
        assert_eq!(values(&file), vec![(1, email("a@x.com")), (2, id("123"))]);
    }

    #[test]
    fn a_single_data_row_is_not_taken_for_a_header() {
        let file = read("Mail Smith,a@x.com\n");
        assert_eq!(file.column.index, 1);
        assert_eq!(values(&file), emails_at(&[(1, "a@x.com")]));
    }

    #[test]
    fn a_mistyped_first_row_is_reported_not_hidden_as_a_header() {
        let file = read("ann@x\nbob@x.com\n");
        assert_eq!(file.column.header, None);
        assert_eq!(file.entries.len(), 2);
        assert!(is_invalid(&file.entries[0].value));
    }

    #[test]
    fn file_level_errors() {
        assert_eq!(read_admin_file(b"", None), Err(FileError::Empty));
        assert_eq!(
            read_admin_file(b"\r\n \r\n\xEF\xBB\xBF", None),
            Err(FileError::Empty)
        );
        assert_eq!(
            read_admin_file(b"\xEF\xBB\xBF", None),
            Err(FileError::Empty)
        );
        assert_eq!(
            read_admin_file(b"hello\nworld\n", None),
            Err(FileError::NoUsableColumn)
        );
        assert_eq!(
            read_admin_file(b"Email\r\n", None),
            Err(FileError::HeaderOnly {
                header: "Email".into()
            })
        );
        let big = vec![b'a'; MAX_FILE_BYTES + 1];
        assert!(matches!(
            read_admin_file(&big, None),
            Err(FileError::TooLarge { .. })
        ));
        let many: String = (0..=MAX_ROWS).map(|i| format!("{i}\n")).collect();
        assert_eq!(
            read_admin_file(many.as_bytes(), None),
            Err(FileError::TooManyRows { max: MAX_ROWS })
        );
        // Exactly the limit, plus a header, is fine.
        let limit: String = std::iter::once("Account ID\n".to_string())
            .chain((0..MAX_ROWS).map(|i| format!("{i}\n")))
            .collect();
        assert_eq!(
            read_admin_file(limit.as_bytes(), None)
                .unwrap()
                .entries
                .len(),
            MAX_ROWS
        );
        let wide = ",".repeat(MAX_COLUMNS + 1);
        assert!(matches!(
            read_admin_file(format!("a@x.com{wide}\n").as_bytes(), None),
            Err(FileError::TooManyColumns { line: 1, .. })
        ));
    }

    #[test]
    fn files_at_the_size_limit_are_refused() {
        // What is refused, not how fast: speed is the benchmark's business.
        let commas = vec![b','; MAX_FILE_BYTES];
        assert!(matches!(
            read_admin_file(&commas, None),
            Err(FileError::TooManyColumns { .. })
        ));
        let lines = "a@x.com\n".repeat(MAX_FILE_BYTES / 8);
        assert_eq!(
            read_admin_file(lines.as_bytes(), None),
            Err(FileError::TooManyRows { max: MAX_ROWS })
        );
    }

    #[test]
    fn classify_cell_agrees_with_the_file_reader() {
        let file = read("Email\n \"A@x.com\" \n  42\nbad one\n");
        for e in &file.entries {
            assert_eq!(classify_cell(&e.raw), e.value);
        }
    }
}
