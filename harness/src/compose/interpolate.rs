//! Compose's variable interpolation, and the `.env` file it takes values
//! from.
//!
//! The grammar is the Compose specification's ("Interpolation"): `$VAR`
//! and `${VAR}`; `${VAR:-default}` (unset or empty) and `${VAR-default}`
//! (unset); `${VAR:?error}` and `${VAR?error}` (an error with the message);
//! `${VAR:+alternative}` and `${VAR+alternative}`; `$$` for a literal `$`.
//! Defaults, alternatives and messages are themselves interpolated, and
//! only when used (`${A:-${B:-x}}`). A name is `[_a-zA-Z][_a-zA-Z0-9]*`; a
//! `$` before anything else is kept as written, but a `${` that does not
//! close or holds no valid name is an error, as in Compose. An unset
//! variable without a default is the empty string, and is reported so
//! that the caller can say so.
//!
//! Values are interpolated after the YAML is parsed, so that comments and
//! keys are never touched and a value cannot change the file's structure.

use compose_spec::YamlValue;

/// Where a variable's value comes from: `None` when it is unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An expression that cannot be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The variable it names, when it names one.
    pub variable: Option<String>,
    /// The expression as written (`${DB:?set DB}`), to find its line by.
    pub expression: String,
    /// What is wrong, one line, naming the variable or the expression.
    pub message: String,
}

/// The result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interpolated {
    /// The string with its variables substituted.
    pub value: String,
    /// The variables substituted as blanks because they are unset and had
    /// no default, in order, each once.
    pub unset: Vec<String>,
}

/// Interpolates `text`, looking variables up with `lookup`.
pub fn interpolate(text: &str, lookup: Lookup) -> Result<Interpolated, Error> {
    let mut out = Interpolated::default();
    expand(text, lookup, &mut out.value, &mut out.unset)?;
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn expand(text: &str, lookup: Lookup, out: &mut String, unset: &mut Vec<String>) -> Result<(), Error> {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let next = after.chars().next();
        match next {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let Some(end) = closing_brace(&after[1..]) else {
                    return Err(Error {
                        variable: leading_name(&after[1..]),
                        expression: rest[at..].to_owned(),
                        message: format!("`{}` has no closing `}}`", &rest[at..]),
                    });
                };
                let inner = &after[1..1 + end];
                braced(inner, lookup, out, unset)?;
                rest = &after[end + 2..];
            }
            Some(c) if is_name_start(c) => {
                let len = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
                substitute(&after[..len], lookup, out, unset);
                rest = &after[len..];
            }
            // Anything else after a `$` is not a variable: kept as written.
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(())
}

/// The index of the `}` closing a `${` whose body starts `body`, counting
/// the `${` nested in it and skipping `$$`.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '$' => match chars.peek() {
                Some((_, '$')) => {
                    chars.next();
                }
                Some((_, '{')) => {
                    chars.next();
                    depth += 1;
                }
                _ => {}
            },
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn leading_name(body: &str) -> Option<String> {
    let len = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
    let name = &body[..len];
    name.starts_with(is_name_start).then(|| name.to_owned())
}

fn substitute(name: &str, lookup: Lookup, out: &mut String, unset: &mut Vec<String>) {
    match lookup(name) {
        Some(value) => out.push_str(&value),
        None => {
            if !unset.iter().any(|u| u == name) {
                unset.push(name.to_owned());
            }
        }
    }
}

/// One `${...}`, given what is between the braces.
fn braced(inner: &str, lookup: Lookup, out: &mut String, unset: &mut Vec<String>) -> Result<(), Error> {
    let expression = format!("${{{inner}}}");
    let name_len = inner.find(|c: char| !is_name_char(c)).unwrap_or(inner.len());
    let (name, op) = inner.split_at(name_len);
    if !name.starts_with(is_name_start) {
        return Err(Error {
            variable: None,
            message: if name.is_empty() && op.is_empty() {
                format!("`{expression}` names no variable")
            } else {
                format!("`{expression}`: a variable's name is letters, digits and `_`, not starting with a digit")
            },
            expression,
        });
    }
    if op.is_empty() {
        substitute(name, lookup, out, unset);
        return Ok(());
    }
    let (colon, op) = match op.strip_prefix(':') {
        Some(op) => (true, op),
        None => (false, op),
    };
    let mut chars = op.chars();
    let (Some(kind @ ('-' | '?' | '+')), word) = (chars.next(), chars.as_str()) else {
        return Err(Error {
            variable: Some(name.to_owned()),
            message: format!(
                "`{expression}`: expected `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+` after `{name}` \
                 (Compose has no other operators)"
            ),
            expression,
        });
    };
    let value = lookup(name);
    // `:` makes an empty value count as unset.
    let set = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    match kind {
        '-' if set => out.push_str(value.as_deref().unwrap_or_default()),
        '-' => expand(word, lookup, out, unset)?,
        '+' if set => expand(word, lookup, out, unset)?,
        '+' => {}
        _ if set => out.push_str(value.as_deref().unwrap_or_default()),
        _ => {
            let mut said = String::new();
            expand(word, lookup, &mut said, unset)?;
            let mut message = format!("required variable `{name}` is missing a value");
            if !said.is_empty() {
                message = format!("{message}: {said}");
            }
            return Err(Error { variable: Some(name.to_owned()), expression, message });
        }
    }
    Ok(())
}

/// A variable substituted as a blank, and where: the keys leading to the
/// value (`["services", "db", "image"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unset {
    /// The variable's name.
    pub variable: String,
    /// The mapping keys from the document's root to the value.
    pub path: Vec<String>,
}

/// Interpolates every string value of `value` in place (keys are left as
/// written), and returns the variables substituted as blanks.
pub fn interpolate_yaml(value: &mut YamlValue, lookup: Lookup) -> Result<Vec<Unset>, Error> {
    let mut unset = Vec::new();
    walk(value, lookup, &mut Vec::new(), &mut unset)?;
    Ok(unset)
}

fn walk(value: &mut YamlValue, lookup: Lookup, path: &mut Vec<String>, unset: &mut Vec<Unset>) -> Result<(), Error> {
    match value {
        YamlValue::String(s) if s.contains('$') => {
            let done = interpolate(s, lookup)?;
            for variable in done.unset {
                unset.push(Unset { variable, path: path.clone() });
            }
            *s = done.value;
        }
        YamlValue::Sequence(items) => {
            for item in items {
                walk(item, lookup, path, unset)?;
            }
        }
        YamlValue::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                path.push(match key {
                    YamlValue::String(k) => k.clone(),
                    other => format!("{other:?}"),
                });
                let walked = walk(item, lookup, path, unset);
                path.pop();
                walked?;
            }
        }
        YamlValue::Tagged(tagged) => walk(&mut tagged.value, lookup, path, unset)?,
        _ => {}
    }
    Ok(())
}

/// A `.env` line that cannot be read: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// The variables of a `.env` file, in order, as Compose reads one:
/// `KEY=VALUE` lines, blank lines and `#` comments skipped, an optional
/// `export ` prefix; a value in single quotes is taken as written, one in
/// double quotes takes the escapes `\n`, `\r`, `\t` and `\` before any
/// other character; unquoted and double-quoted values are interpolated
/// from the variables above them in the file, then `lookup`; an unquoted
/// value ends at ` #`. A value spanning lines is not read.
pub fn parse_dotenv(text: &str, lookup: Lookup) -> Result<Vec<(String, String)>, DotenvError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let bad = |message: String| DotenvError { line: i + 1, message };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad(format!("`{}` is not KEY=VALUE", crate::text::one_line(line))));
        };
        let key = key.trim();
        if !key.starts_with(is_name_start) || !key.chars().all(|c| is_name_char(c) || c == '.' || c == '-') {
            return Err(bad(format!("`{}` is not a variable name", crate::text::one_line(key))));
        }
        let value = value.trim_start();
        let (value, expand_it) = if let Some(body) = value.strip_prefix('\'') {
            let Some(end) = body.find('\'') else {
                return Err(bad(format!("the value of `{key}` has no closing `'` (values span one line)")));
            };
            (body[..end].to_owned(), false)
        } else if let Some(body) = value.strip_prefix('"') {
            let mut unescaped = String::new();
            let mut chars = body.chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => unescaped.push('\n'),
                        Some('r') => unescaped.push('\r'),
                        Some('t') => unescaped.push('\t'),
                        Some(other) => unescaped.push(other),
                        None => unescaped.push('\\'),
                    },
                    c => unescaped.push(c),
                }
            }
            if !closed {
                return Err(bad(format!("the value of `{key}` has no closing `\"` (values span one line)")));
            }
            (unescaped, true)
        } else {
            let end = value.find(" #").or_else(|| value.find("\t#")).unwrap_or(value.len());
            (value[..end].trim_end().to_owned(), true)
        };
        let value = if expand_it && value.contains('$') {
            let earlier = |name: &str| {
                vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| lookup(name))
            };
            interpolate(&value, &earlier).map_err(|e| bad(e.message))?.value
        } else {
            value
        };
        vars.retain(|(k, _)| k != key);
        vars.push((key.to_owned(), value));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    const ENV: &[(&str, &str)] = &[("SET", "value"), ("EMPTY", ""), ("TAG", "11.4"), ("B", "bee")];

    fn ok(text: &str) -> String {
        interpolate(text, &vars(ENV)).unwrap_or_else(|e| panic!("{text}: {e:?}")).value
    }

    fn err(text: &str) -> Error {
        interpolate(text, &vars(ENV)).expect_err(text)
    }

    #[test]
    fn each_form_of_the_specification() {
        let cases = [
            ("$SET", "value"),
            ("${SET}", "value"),
            ("a-$SET-b", "a-value-b"),
            ("mariadb:${TAG}", "mariadb:11.4"),
            ("$SET.x $SET/y", "value.x value/y"),
            ("${UNSET}", ""),
            ("$UNSET", ""),
            // Default: `:-` for unset or empty, `-` for unset only.
            ("${SET:-d}", "value"),
            ("${EMPTY:-d}", "d"),
            ("${UNSET:-d}", "d"),
            ("${SET-d}", "value"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${UNSET:-}", ""),
            ("${UNSET:-./data}:/var/lib/mysql", "./data:/var/lib/mysql"),
            // Required, when set.
            ("${SET:?no}", "value"),
            ("${EMPTY?no}", ""),
            // Alternative.
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${UNSET:+alt}", ""),
            ("${SET+alt}", "alt"),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
        ];
        for (text, want) in cases {
            assert_eq!(ok(text), want, "{text}");
        }
    }

    #[test]
    fn a_doubled_dollar_is_a_dollar_and_a_dollar_before_no_name_is_kept() {
        assert_eq!(ok("$$SET"), "$SET");
        assert_eq!(ok("$${SET}"), "${SET}");
        assert_eq!(ok("a$$$$b"), "a$$b");
        assert_eq!(ok("$$$SET"), "$value");
        assert_eq!(ok("cost: $5, $ and $-x and $"), "cost: $5, $ and $-x and $");
        assert_eq!(ok("${UNSET:-$$}"), "$");
    }

    #[test]
    fn defaults_nest_and_are_expanded_only_when_used() {
        assert_eq!(ok("${UNSET:-${B}}"), "bee");
        assert_eq!(ok("${UNSET:-${ALSO_UNSET:-x}}"), "x");
        assert_eq!(ok("${UNSET:-a-${B:-no}-$SET}"), "a-bee-value");
        assert_eq!(ok("${SET:-${UNSET:?never asked}}"), "value");
        assert_eq!(ok("${SET:+${B}!}"), "bee!");
        assert_eq!(ok("${UNSET:-{x}}"), "{x}", "a brace that does not follow a `$` does not nest");
        let e = err("${UNSET?need $SET}");
        assert_eq!(
            e.message, "required variable `UNSET` is missing a value: need value",
            "the message is interpolated"
        );
    }

    #[test]
    fn a_required_variable_that_is_missing_is_an_error_naming_it() {
        let e = err("${DB_NAME:?set DB_NAME in .env}");
        assert_eq!(e.variable.as_deref(), Some("DB_NAME"));
        assert_eq!(e.expression, "${DB_NAME:?set DB_NAME in .env}");
        assert_eq!(e.message, "required variable `DB_NAME` is missing a value: set DB_NAME in .env");
        assert_eq!(err("x ${EMPTY:?}").message, "required variable `EMPTY` is missing a value");
        assert_eq!(err("${UNSET?}").variable.as_deref(), Some("UNSET"));
    }

    #[test]
    fn an_unterminated_or_invalid_expression_is_an_error() {
        let e = err("mariadb:${TAG");
        assert_eq!((e.variable.as_deref(), e.expression.as_str()), (Some("TAG"), "${TAG"));
        assert_eq!(e.message, "`${TAG` has no closing `}`");
        assert!(err("${A:-${B}").message.contains("no closing"), "the nested one closes, the outer does not");
        let e = err("${1ABC}");
        assert_eq!(e.variable, None);
        assert!(e.message.contains("a variable's name is letters, digits and `_`"), "{}", e.message);
        assert_eq!(err("${}").message, "`${}` names no variable");
        assert!(err("${A B}").message.contains("expected `}`, `:-`"));
        assert!(err("${SET/foo/bar}").message.contains("Compose has no other operators"));
        assert!(err("${SET:=x}").message.contains("Compose has no other operators"));
    }

    #[test]
    fn unset_variables_are_reported_once_and_only_without_a_default() {
        let done = interpolate("$A ${A} ${B_UNSET:-x} ${C-} ${D:+y} $SET ${E}", &vars(ENV)).unwrap();
        assert_eq!(done.value, "  x   value ");
        assert_eq!(done.unset, ["A", "E"]);
    }

    #[test]
    fn values_are_interpolated_and_keys_and_comments_are_not() {
        let text = "# ${NOT_A_VALUE:?comments are not read}\n\
                    services:\n  db:\n    image: mariadb:${TAG:-11}\n    environment:\n      \
                    $SET: ${UNSET}\n      LIST: [\"$$x\", 3, !tag '$B']\n";
        let mut yaml: YamlValue = serde_yaml::from_str(text).unwrap();
        let unset = interpolate_yaml(&mut yaml, &vars(ENV)).unwrap();
        let want: YamlValue = serde_yaml::from_str(
            "services:\n  db:\n    image: mariadb:11.4\n    environment:\n      \
             $SET: ''\n      LIST: [\"$x\", 3, !tag 'bee']\n",
        )
        .unwrap();
        assert_eq!(yaml, want);
        assert_eq!(
            unset,
            [Unset {
                variable: "UNSET".into(),
                path: vec!["services".into(), "db".into(), "environment".into(), "$SET".into()]
            }]
        );
    }

    #[test]
    fn a_dotenv_file_is_read_as_compose_reads_one() {
        let text = "# a comment\n\n\
                    TAG=11.4\n\
                    export DIR=./data\n\
                    SPACED = spaced value   # and a comment\n\
                    HASH=a#b\n\
                    SINGLE='${TAG} # kept'\n\
                    DOUBLE=\"line\\none ${TAG} \\\"q\\\"\"\n\
                    UNQUOTED=v${TAG}-${FROM_ENV}\n\
                    EMPTY=\n\
                    TAG=11.5\n";
        let env = |name: &str| (name == "FROM_ENV").then(|| "env".to_owned());
        let vars = parse_dotenv(text, &env).unwrap();
        let got: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("DIR", "./data"),
                ("SPACED", "spaced value"),
                ("HASH", "a#b"),
                ("SINGLE", "${TAG} # kept"),
                ("DOUBLE", "line\none 11.4 \"q\""),
                ("UNQUOTED", "v11.4-env"),
                ("EMPTY", ""),
                ("TAG", "11.5"),
            ]
        );
        let bad = |text: &str| parse_dotenv(text, &|_: &str| None).expect_err(text);
        assert_eq!(
            bad("A=1\nJUST_A_WORD\n"),
            DotenvError { line: 2, message: "`JUST_A_WORD` is not KEY=VALUE".into() }
        );
        assert_eq!(bad("1A=x").line, 1);
        assert!(bad("A=\"open\nB=1").message.contains("no closing `\"`"));
        assert!(bad("A=${B").message.contains("no closing `}`"));
    }
}
