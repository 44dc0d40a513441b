//! The cell filter of `crashlab run`, `validate` and `list` (`--filter`):
//! a small boolean language over a cell's names, parsed with [`FromStr`]
//! into a typed [`Filter`].
//!
//! ```text
//! filter  := or
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" or ")" | KEY ("=" | "!=") VALUE
//! KEY     := workload | strategy | fault
//! VALUE   := a name, in which `*` stands for any run of characters
//! ```
//!
//! `and` binds tighter than `or`; both associate to the left. Values are
//! checked against the names crashlab knows, so a typo is an error that
//! names its column rather than a filter that silently selects nothing.
//! [`Filter`]'s `Display` writes the canonical form, which parses back to
//! the same value (a property test holds it to that).

use crate::faults::Fault;
use crate::scenario::Cell;
use crate::settings::WorkloadKind;
use crate::storage::Strategy;
use std::fmt;
use std::str::FromStr;

/// What a comparison looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Workload,
    Strategy,
    Fault,
}

impl Key {
    pub const ALL: [Key; 3] = [Key::Workload, Key::Strategy, Key::Fault];

    pub fn as_str(self) -> &'static str {
        match self {
            Key::Workload => "workload",
            Key::Strategy => "strategy",
            Key::Fault => "fault",
        }
    }

    /// The names a value of this key can match.
    pub fn names(self) -> Vec<&'static str> {
        match self {
            Key::Workload => WorkloadKind::all().map(WorkloadKind::as_str).collect(),
            Key::Strategy => Strategy::ALL.iter().map(|s| s.as_str()).collect(),
            Key::Fault => Fault::ALL.iter().map(|f| f.as_str()).collect(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `=` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
}

/// A value to compare a name with: literal characters and `*`, which
/// matches any run of characters (none included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = self.0.split('*');
        // split always yields at least one part.
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = name.strip_prefix(first) else { return false };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// A parsed `--filter` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Compare { key: Key, op: Op, value: Glob },
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

impl Filter {
    /// Whether the cell named `workload/strategy/fault` is selected.
    pub fn matches(&self, workload: &str, strategy: &str, fault: &str) -> bool {
        match self {
            Filter::Compare { key, op, value } => {
                let name = match key {
                    Key::Workload => workload,
                    Key::Strategy => strategy,
                    Key::Fault => fault,
                };
                value.matches(name) == (*op == Op::Eq)
            }
            Filter::Not(inner) => !inner.matches(workload, strategy, fault),
            Filter::And(a, b) => a.matches(workload, strategy, fault) && b.matches(workload, strategy, fault),
            Filter::Or(a, b) => a.matches(workload, strategy, fault) || b.matches(workload, strategy, fault),
        }
    }

    /// Whether a cell of a scenario of workload `kind` is selected.
    pub fn selects(&self, kind: WorkloadKind, cell: &Cell) -> bool {
        self.matches(kind.as_str(), cell.strategy.as_str(), &cell.fault_name())
    }

    /// Binding strength, for writing the fewest parentheses.
    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            Filter::Not(_) | Filter::Compare { .. } => 3,
        }
    }

    /// Writes `self`, in parentheses when it binds looser than `at_least`.
    fn write_at(&self, f: &mut fmt::Formatter<'_>, at_least: u8) -> fmt::Result {
        if self.precedence() < at_least { write!(f, "({self})") } else { write!(f, "{self}") }
    }
}

impl fmt::Display for Filter {
    /// The canonical form. Operators associate to the left, so a right
    /// operand of the same operator is written in parentheses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { key, op, value } => {
                let op = if *op == Op::Eq { "=" } else { "!=" };
                write!(f, "{key}{op}{}", value.as_str())
            }
            Filter::Not(inner) => {
                f.write_str("not ")?;
                inner.write_at(f, 3)
            }
            Filter::And(a, b) => {
                a.write_at(f, 2)?;
                f.write_str(" and ")?;
                b.write_at(f, 3)
            }
            Filter::Or(a, b) => {
                a.write_at(f, 1)?;
                f.write_str(" or ")?;
                b.write_at(f, 2)
            }
        }
    }
}

/// A filter that does not parse, and the column (from 1, in characters)
/// where the trouble is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {kind}")]
pub struct FilterError {
    pub column: usize,
    pub kind: FilterErrorKind,
}

/// What is wrong with a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterErrorKind {
    #[error("unexpected character `{0}`")]
    Character(char),
    #[error("expected {expected}, found {found}")]
    Unexpected { expected: &'static str, found: String },
    #[error("unknown key `{0}` (keys: workload, strategy, fault)")]
    UnknownKey(String),
    #[error("no {key} is named `{value}` (known: {})", known.join(", "))]
    UnknownValue { key: Key, value: String, known: Vec<&'static str> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Eq,
    Ne,
    Open,
    Close,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("`{w}`"),
            Token::Eq => "`=`".into(),
            Token::Ne => "`!=`".into(),
            Token::Open => "`(`".into(),
            Token::Close => "`)`".into(),
            Token::End => "the end".into(),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | ':' | ',')
}

/// Splits the text into tokens, each with its column (from 1); the last
/// is [`Token::End`].
fn tokens(text: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let token = match c {
            _ if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '=' => Token::Eq,
            '(' => Token::Open,
            ')' => Token::Close,
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 1;
                Token::Ne
            }
            _ if is_word_char(c) => {
                let start = i;
                while i + 1 < chars.len() && is_word_char(chars[i + 1]) {
                    i += 1;
                }
                Token::Word(chars[start..=i].iter().collect())
            }
            _ => return Err(FilterError { column, kind: FilterErrorKind::Character(c) }),
        };
        out.push((column, token));
        i += 1;
    }
    out.push((chars.len() + 1, Token::End));
    Ok(out)
}

/// A recursive-descent parser over the tokens.
struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &(usize, Token) {
        // The last token is End, which is never consumed.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> (usize, Token) {
        let token = self.peek().clone();
        if token.1 != Token::End {
            self.at += 1;
        }
        token
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(&self.peek().1, Token::Word(w) if w == word)
    }

    fn unexpected(&self, expected: &'static str) -> FilterError {
        let (column, token) = self.peek();
        FilterError { column: *column, kind: FilterErrorKind::Unexpected { expected, found: token.describe() } }
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.is_keyword("or") {
            self.next();
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.is_keyword("and") {
            self.next();
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.is_keyword("not") {
            self.next();
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek().1 == Token::Open {
            self.next();
            let inner = self.or()?;
            if self.peek().1 != Token::Close {
                return Err(self.unexpected("`)`, `and` or `or`"));
            }
            self.next();
            return Ok(inner);
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Filter, FilterError> {
        let (column, Token::Word(word)) = self.peek().clone() else {
            return Err(self.unexpected("KEY=VALUE (a key is workload, strategy or fault), `not` or `(`"));
        };
        let key = Key::ALL
            .into_iter()
            .find(|k| k.as_str() == word)
            .ok_or(FilterError { column, kind: FilterErrorKind::UnknownKey(word) })?;
        self.next();
        let op = match self.peek().1 {
            Token::Eq => Op::Eq,
            Token::Ne => Op::Ne,
            _ => return Err(self.unexpected("`=` or `!=`")),
        };
        self.next();
        let (column, Token::Word(value)) = self.peek().clone() else {
            return Err(self.unexpected("a name (`*` matches any characters)"));
        };
        let value = Glob(value);
        let known = key.names();
        // A schedule's cell is `schedule-<name>`, its name the scenario's;
        // a driver volume's strategy is its `volume:DRIVER,...` text, any
        // driver's.
        let schedule = key == Key::Fault && value.0.starts_with("schedule-");
        let driver = key == Key::Strategy && value.0.starts_with(crate::storage::driver::PREFIX);
        if !schedule && !driver && !known.iter().any(|name| value.matches(name)) {
            let kind = FilterErrorKind::UnknownValue { key, value: value.0, known };
            return Err(FilterError { column, kind });
        }
        self.next();
        Ok(Filter::Compare { key, op, value })
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Filter, FilterError> {
        let mut parser = Parser { tokens: tokens(text)?, at: 0 };
        let filter = parser.or()?;
        if parser.peek().1 != Token::End {
            return Err(parser.unexpected("`and`, `or` or the end"));
        }
        Ok(filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    // The tests' `Strategy` is proptest's; crashlab's is not needed here.
    use proptest::strategy::Strategy;

    #[test]
    fn every_workload_kind_is_a_name_a_filter_knows() {
        let names = Key::Workload.names();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len());
        assert_eq!(names.len(), crashlab_workloads::KINDS.len());
    }

    #[test]
    fn filters_select_the_cells_they_name() {
        // (filter, workload, strategy, fault, selected)
        let cases = [
            ("strategy=bind-mount", "mariadb", "bind-mount", "restart", true),
            ("strategy=bind-mount", "mariadb", "tmpfs", "restart", false),
            ("strategy!=bind-mount", "mariadb", "tmpfs", "restart", true),
            ("strategy=bind-mount and fault=host-kill", "mariadb", "bind-mount", "host-kill", true),
            ("strategy=bind-mount and fault=host-kill", "mariadb", "bind-mount", "restart", false),
            ("fault=restart or fault=recreate", "redis", "tmpfs", "recreate", true),
            ("fault=restart or fault=recreate", "redis", "tmpfs", "process-kill", false),
            ("not fault=restart", "redis", "tmpfs", "restart", false),
            ("not (fault=restart or fault=recreate)", "redis", "tmpfs", "process-kill", true),
            ("workload=postgres", "mariadb", "tmpfs", "restart", false),
            ("strategy=*-volume", "mariadb", "named-volume", "restart", true),
            ("strategy=*-volume", "mariadb", "bind-mount", "restart", false),
            ("strategy=backup-*", "mariadb", "backup-restic", "host-loss", true),
            ("fault=*", "mariadb", "tmpfs", "restart", true),
            ("fault=*kill*", "mariadb", "tmpfs", "process-kill", true),
            ("fault=*kill*", "mariadb", "tmpfs", "restart", false),
            ("fault=schedule-*", "mariadb", "tmpfs", "schedule-kill-then-cut", true),
            ("fault=schedule-*", "mariadb", "tmpfs", "restart", false),
            ("strategy=volume:*", "mariadb", "volume:local,type=tmpfs,device=tmpfs", "restart", true),
            ("strategy=volume:crashlab", "mariadb", "volume:crashlab", "host-kill", true),
            ("strategy=volume:*", "mariadb", "named-volume", "restart", false),
            // and binds tighter than or.
            ("fault=restart or fault=recreate and strategy=tmpfs", "m", "bind-mount", "restart", true),
            ("(fault=restart or fault=recreate) and strategy=tmpfs", "m", "bind-mount", "restart", false),
        ];
        for (text, workload, strategy, fault, selected) in cases {
            let filter: Filter = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(filter.matches(workload, strategy, fault), selected, "{text} on {strategy}/{fault}");
        }
    }

    #[test]
    fn errors_name_the_column_of_the_bad_token() {
        let cases = [
            ("", 1, "expected KEY=VALUE (a key is workload, strategy or fault), `not` or `(`, found the end"),
            ("strategy", 9, "expected `=` or `!=`, found the end"),
            ("strategy=", 10, "expected a name (`*` matches any characters), found the end"),
            ("strat=tmpfs", 1, "unknown key `strat` (keys: workload, strategy, fault)"),
            ("strategy=tmpfs and fault=hostkill", 26, "no fault is named `hostkill` (known: process-kill, "),
            ("strategy=zfs*", 10, "no strategy is named `zfs*`"),
            ("strategy=tmpfs fault=restart", 16, "expected `and`, `or` or the end, found `fault`"),
            ("(strategy=tmpfs", 16, "expected `)`, `and` or `or`, found the end"),
            ("strategy=tmpfs)", 15, "expected `and`, `or` or the end, found `)`"),
            ("strategy==tmpfs", 10, "expected a name (`*` matches any characters), found `=`"),
            ("strategy=tmpfs & fault=restart", 16, "unexpected character `&`"),
            ("strategy!tmpfs", 9, "unexpected character `!`"),
            ("not", 4, "expected KEY=VALUE"),
            ("fault=restart or", 17, "found the end"),
        ];
        for (text, column, message) in cases {
            let e = text.parse::<Filter>().expect_err(text);
            assert_eq!(e.column, column, "{text}: {e}");
            let e = e.to_string();
            assert!(e.starts_with(&format!("at column {column}: ")) && e.contains(message), "{text}: {e}");
        }
    }

    #[test]
    fn the_canonical_form_has_only_the_parentheses_it_needs() {
        let cases = [
            ("strategy = tmpfs  and fault != restart", "strategy=tmpfs and fault!=restart"),
            (
                "(strategy=tmpfs and fault=restart) or fault=recreate",
                "strategy=tmpfs and fault=restart or fault=recreate",
            ),
            (
                "strategy=tmpfs and (fault=restart or fault=recreate)",
                "strategy=tmpfs and (fault=restart or fault=recreate)",
            ),
            (
                "fault=restart or (fault=recreate or fault=host-kill)",
                "fault=restart or (fault=recreate or fault=host-kill)",
            ),
            ("not not (fault=restart)", "not not fault=restart"),
            ("not (fault=restart and strategy=tmpfs)", "not (fault=restart and strategy=tmpfs)"),
        ];
        for (text, canonical) in cases {
            assert_eq!(text.parse::<Filter>().unwrap().to_string(), canonical, "{text}");
        }
    }

    fn value(key: Key) -> impl Strategy<Value = Glob> {
        let names = key.names();
        (proptest::sample::select(names), 0..4usize).prop_map(|(name, how)| {
            Glob(match how {
                0 => "*".to_owned(),
                1 => format!("{}*", &name[..name.len().min(3)]),
                2 => format!("*{}", &name[name.len().saturating_sub(2)..]),
                _ => name.to_owned(),
            })
        })
    }

    fn compare() -> impl Strategy<Value = Filter> {
        (proptest::sample::select(Key::ALL.to_vec()), any::<bool>()).prop_flat_map(|(key, eq)| {
            value(key).prop_map(move |value| Filter::Compare { key, op: if eq { Op::Eq } else { Op::Ne }, value })
        })
    }

    fn filter() -> impl Strategy<Value = Filter> {
        compare().prop_recursive(5, 32, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            ]
        })
    }

    proptest! {
        #[test]
        fn display_parses_back_to_the_same_filter(f in filter()) {
            let text = f.to_string();
            prop_assert_eq!(text.parse::<Filter>(), Ok(f), "{}", text);
        }

        #[test]
        fn not_selects_exactly_what_its_operand_does_not(
            f in filter(),
            w in proptest::sample::select(Key::Workload.names()),
            s in proptest::sample::select(Key::Strategy.names()),
            x in proptest::sample::select(Key::Fault.names()),
        ) {
            let negated: Filter = format!("not ({f})").parse().unwrap();
            prop_assert_ne!(negated.matches(w, s, x), f.matches(w, s, x));
        }

        #[test]
        fn any_text_parses_or_fails_with_a_column_inside_it(text in "[a-z=!() *-]{0,40}") {
            if let Err(e) = text.parse::<Filter>() {
                prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{}: {}", text, e);
            }
        }
    }
}
