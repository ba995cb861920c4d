//! Property tests for reading admin files: no input makes the reader panic, and a list of
//! emails or account IDs written in any of the shapes admins bring reads back exactly, on the
//! lines where it was written.

use proptest::prelude::*;
use server::engine::file_input::{classify_cell, read_admin_file, EntryValue};

#[derive(Clone, Copy, Debug)]
enum Encoding {
    Utf8,
    Utf8Bom,
    Utf16LeBom,
    Utf16BeBom,
    Utf16LeNoBom,
    Windows1252,
}

fn encode(text: &str, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Utf8 => text.as_bytes().to_vec(),
        Encoding::Utf8Bom => [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat(),
        Encoding::Utf16LeBom => [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
        Encoding::Utf16BeBom => [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect(),
        Encoding::Utf16LeNoBom => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Encoding::Windows1252 => encoding_rs::WINDOWS_1252.encode(text).0.into_owned(),
    }
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        Just(Encoding::Utf8),
        Just(Encoding::Utf8Bom),
        Just(Encoding::Utf16LeBom),
        Just(Encoding::Utf16BeBom),
        Just(Encoding::Utf16LeNoBom),
        Just(Encoding::Windows1252),
    ]
}

/// Emails as HR exports hold them: mixed case, plus addressing, dots, subdomains.
fn email() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._%+-]{0,15}@[A-Za-z0-9][A-Za-z0-9-]{0,10}(\\.[A-Za-z]{2,6}){1,3}"
}

/// A person's name; may hold the separators, accents (Windows-1252 has them) and, when
/// `multiline`, a line break inside its quoted cell.
fn name() -> impl Strategy<Value = String> {
    "[A-Z][a-zéü]{0,8}(, [A-Z][a-z]{0,6})?(; Jr)?"
}

#[derive(Clone, Debug)]
struct Row {
    value: String,
    name: String,
    multiline_name: bool,
    blank_lines_before: usize,
    padding: &'static str,
}

fn row(value: BoxedStrategy<String>) -> impl Strategy<Value = Row> {
    (
        value,
        name(),
        prop::bool::weighted(0.1),
        prop_oneof![6 => Just(0usize), 1 => 1usize..3],
        prop::sample::select(vec![
            "", " ", "  ", "\u{00A0}", "\u{200B}", "\u{FEFF}", "\t",
        ]),
    )
        .prop_map(
            |(value, name, multiline_name, blank_lines_before, padding)| Row {
                value,
                name,
                multiline_name,
                blank_lines_before,
                padding,
            },
        )
}

#[derive(Clone, Debug)]
struct Form {
    header: Option<&'static str>,
    delimiter: char,
    crlf: bool,
    /// None: one column; Some(true): name column before the value; Some(false): after.
    name_column: Option<bool>,
    encoding: Encoding,
    trailing_newline: bool,
}

fn form(headers: Vec<&'static str>) -> impl Strategy<Value = Form> {
    (
        prop::option::weighted(0.6, prop::sample::select(headers)),
        prop::sample::select(vec![',', ';', '\t']),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        encoding(),
        any::<bool>(),
    )
        .prop_map(
            |(header, delimiter, crlf, name_column, encoding, trailing_newline)| Form {
                header,
                delimiter,
                crlf,
                name_column,
                encoding,
                trailing_newline,
            },
        )
}

/// Writes the file and returns its text and the line each row starts on.
fn write_file(form: &Form, rows: &[Row]) -> (String, Vec<usize>) {
    let newline = if form.crlf { "\r\n" } else { "\n" };
    let d = form.delimiter;
    let mut lines: Vec<String> = Vec::new();
    let mut starts = Vec::new();
    let line_of = |value: &str, name: &str| match form.name_column {
        None => value.to_string(),
        Some(true) => format!("{name}{d}{value}"),
        Some(false) => format!("{value}{d}{name}"),
    };
    if let Some(header) = form.header {
        lines.push(line_of(header, "Name"));
    }
    for row in rows {
        lines.extend(std::iter::repeat_n(String::new(), row.blank_lines_before));
        starts.push(lines.len() + 1);
        // A tab pad would be a separator in a tab file; Windows-1252 has no zero-width chars.
        let unwritable = (d == '\t' && row.padding == "\t")
            || (matches!(form.encoding, Encoding::Windows1252)
                && !row.padding.is_ascii()
                && row.padding != "\u{00A0}");
        let pad = if unwritable { " " } else { row.padding };
        let value = format!("{pad}{}{pad}", row.value);
        let name = if row.multiline_name {
            format!("\"{}{newline}second line\"", row.name)
        } else {
            format!("\"{}\"", row.name)
        };
        let text = line_of(&value, &name);
        if form.name_column.is_some() && row.multiline_name {
            // The quoted cell spans two physical lines.
            let mut parts = text.splitn(2, newline);
            lines.push(parts.next().unwrap_or_default().to_string());
            lines.push(parts.next().unwrap_or_default().to_string());
        } else {
            lines.push(text);
        }
    }
    let mut text = lines.join(newline);
    if form.trailing_newline {
        text.push_str(newline);
    }
    (text, starts)
}

fn check_round_trip(
    form: &Form,
    rows: &[Row],
    expect: impl Fn(&str) -> EntryValue,
) -> Result<(), TestCaseError> {
    let (text, starts) = write_file(form, rows);
    let bytes = encode(&text, form.encoding);
    let file = read_admin_file(&bytes, None)
        .map_err(|e| TestCaseError::fail(format!("{e} for {text:?}")))?;
    let got: Vec<(usize, EntryValue)> = file
        .entries
        .iter()
        .map(|e| (e.line, e.value.clone()))
        .collect();
    let want: Vec<(usize, EntryValue)> = starts
        .iter()
        .zip(rows)
        .map(|(line, row)| (*line, expect(&row.value)))
        .collect();
    prop_assert_eq!(got, want, "file {:?}, column {:?}", text, file.column);
    prop_assert_eq!(file.column.header.as_deref(), form.header);
    let index = usize::from(form.name_column == Some(true));
    prop_assert_eq!(file.column.index, index);
    Ok(())
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(
        prefix in prop::sample::select(vec![&b""[..], b"\xEF\xBB\xBF", b"\xFF\xFE", b"\xFE\xFF"]),
        body in prop::collection::vec(any::<u8>(), 0..2048),
        column in prop::option::of(0usize..6),
    ) {
        let bytes = [prefix, &body[..]].concat();
        if let Ok(file) = read_admin_file(&bytes, column) {
            for entry in &file.entries {
                // A missing cell (ragged row) has its own reason; any present cell reads the same
                // again, which is what re-checking a preview relies on.
                if entry.raw.is_empty() {
                    prop_assert!(matches!(entry.value, EntryValue::Invalid(_)));
                } else {
                    prop_assert_eq!(classify_cell(&entry.raw), entry.value.clone());
                }
                prop_assert!(entry.line >= 1);
            }
            prop_assert!(file.column.index < file.column.all_columns.len());
        }
    }

    #[test]
    fn never_panics_on_random_utf16_text(
        text in "[ -~\u{00A0}\u{200B}\u{FEFF}éü@,;\t\r\n\"]{0,400}",
        big_endian in any::<bool>(),
        column in prop::option::of(0usize..4),
    ) {
        let encoding = if big_endian { Encoding::Utf16BeBom } else { Encoding::Utf16LeBom };
        let bytes = encode(&text, encoding);
        if let Ok(file) = read_admin_file(&bytes, column) {
            let mut last = 0;
            for entry in &file.entries {
                prop_assert!(entry.line > last, "lines must increase: {:?}", file.entries);
                last = entry.line;
            }
        }
    }

    #[test]
    fn emails_read_back_exactly_in_every_form(
        form in form(vec!["Email", "email address", "E-mail", "EMAIL", "Work Email"]),
        rows in prop::collection::vec(row(email().boxed()), 1..40),
    ) {
        check_round_trip(&form, &rows, |v| EntryValue::Email(v.to_string()))?;
    }

    #[test]
    fn account_ids_read_back_exactly_in_every_form(
        form in form(vec!["Account ID", "accountId", "account_id"]),
        rows in prop::collection::vec(row("[0-9]{1,12}".boxed()), 1..40),
    ) {
        check_round_trip(&form, &rows, |v| EntryValue::AccountId(v.to_string()))?;
    }
}
