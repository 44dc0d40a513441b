//! Markup shared by the HTML report and its charts: escaping, short
//! figures, and an SVG made accessible (role, title, description).

/// A figure in a description: three significant digits at most.
pub(crate) fn short(x: f64) -> String {
    match x.abs() {
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 10.0 => format!("{x:.1}"),
        _ => format!("{x:.2}"),
    }
}

/// Makes a plotters SVG an image to assistive technology: `role="img"`,
/// and a `<title>` and `<desc>` as its first children, which browsers and
/// screen readers take as its name and description.
pub(crate) fn accessible(svg: &str, title: &str, desc: &str) -> String {
    let Some(open) = svg.find("<svg") else {
        return svg.to_owned();
    };
    let Some(end) = svg[open..].find('>').map(|i| open + i) else {
        return svg.to_owned();
    };
    format!(
        "{}<svg role=\"img\"{}><title>{}</title><desc>{}</desc>{}",
        &svg[..open],
        &svg[open + 4..end],
        esc(title),
        esc(desc),
        &svg[end + 1..]
    )
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
