//! Text helpers used across the engine: errors and quoted text on one
//! line, and positions in a scenario file. The bottom layer: it imports
//! nothing of the crate.

/// The 1-based line and column (in bytes) of `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The message of a TOML error as one line that names what it is about:
/// the key whose value is wrong when the message does not already say it
/// (`invalid type: integer `1`, expected a string, for key `name``), or
/// else the text the parser stopped at.
pub fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let mut out = message.to_owned();
    if let Some(span) = e.span() {
        let start = floor_boundary(text, span.start);
        match key_of_value_at(text, start) {
            Some(key) if !(message.contains(&format!("`{key}`")) || message.starts_with(&format!("{key} "))) => {
                out.push_str(&format!(", for key `{key}`"));
            }
            Some(_) => {}
            None if message.contains('`') => {}
            None => match text[start..].chars().next() {
                None => out.push_str(" at the end of the file"),
                Some(first) => {
                    let end = floor_boundary(text, span.end).max(start + first.len_utf8());
                    let token: String = text[start..end].chars().take(24).collect();
                    out.push_str(&format!(" at `{token}`"));
                }
            },
        }
    }
    one_line(&out)
}

/// The bare key that opens the line of `offset` (`clients` of `clients =
/// 0`), when `offset` lies in that key's value.
fn key_of_value_at(text: &str, offset: usize) -> Option<&str> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..offset];
    let trimmed = before.trim_start();
    let key_len = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))?;
    let (key, rest) = trimmed.split_at(key_len);
    (!key.is_empty() && rest.trim_start().starts_with('=')).then_some(key)
}

/// `text` with control characters (a newline inside a TOML string, say)
/// escaped, so that an error quoting it stays one line.
pub fn one_line(text: &str) -> String {
    text.chars().fold(String::with_capacity(text.len()), |mut out, c| {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
        out
    })
}

/// An error and its sources on one line: "a: b: c".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// `text` on one line (runs of white space made one space), cut to `chars`.
pub fn folded(text: &str, chars: usize) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(chars).collect()
}

/// A command's standard error on one line: its non-blank lines, trimmed
/// and joined with "; ".
pub fn stderr_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() { "no error output".to_owned() } else { lines.join("; ") }
}

/// Output on one line, its last `chars` characters.
pub fn folded_tail(output: &str, chars: usize) -> String {
    let joined = output.split_whitespace().collect::<Vec<_>>().join(" ");
    let skip = joined.chars().count().saturating_sub(chars);
    joined.chars().skip(skip).collect()
}

/// Quotes `s` as one word for `sh`.
pub fn sh_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
