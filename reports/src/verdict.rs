//! Verdicts, ordered from best to worst.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a cycle found, from best to worst. The derived order is the
/// severity order: a cell's verdict is the maximum over its cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every acknowledged write is present, invariants hold, and the
    /// engine's own integrity check passes.
    Intact,
    /// Consistent, but some acknowledged writes are missing.
    LostWrites,
    /// The dataset is not there at all.
    DataGone,
    /// An invariant broke: a half-applied transaction, or a write that was
    /// never sent.
    Inconsistent,
    /// The engine does not start, or its integrity check fails.
    Corrupt,
    /// The harness could not complete the cycle. Never a pass.
    Error,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Intact,
        Verdict::LostWrites,
        Verdict::DataGone,
        Verdict::Inconsistent,
        Verdict::Corrupt,
        Verdict::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Intact => "intact",
            Verdict::LostWrites => "lost-writes",
            Verdict::DataGone => "data-gone",
            Verdict::Inconsistent => "inconsistent",
            Verdict::Corrupt => "corrupt",
            Verdict::Error => "error",
        }
    }

    /// Whether a cell with this verdict meets `expected`. `error` never
    /// does: a harness failure is not evidence of anything.
    pub fn meets(self, expected: Verdict) -> bool {
        self != Verdict::Error && self <= expected
    }

    /// The worst of a set of verdicts, `None` for an empty set.
    pub fn worst(verdicts: impl IntoIterator<Item = Verdict>) -> Option<Verdict> {
        verdicts.into_iter().max()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown verdict `{0}`, expected one of intact, lost-writes, data-gone, inconsistent, corrupt")]
pub struct ParseVerdictError(pub String);

impl FromStr for Verdict {
    type Err = ParseVerdictError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| ParseVerdictError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_order_matches_the_design() {
        let order: Vec<_> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(order, ["intact", "lost-writes", "data-gone", "inconsistent", "corrupt", "error"]);
        assert_eq!(Verdict::worst([Verdict::Intact, Verdict::Corrupt, Verdict::LostWrites]), Some(Verdict::Corrupt));
        assert_eq!(Verdict::worst([]), None);
    }

    #[test]
    fn meeting_an_expectation() {
        let cases = [
            (Verdict::Intact, Verdict::Intact, true),
            (Verdict::Intact, Verdict::DataGone, true),
            (Verdict::LostWrites, Verdict::Intact, false),
            (Verdict::DataGone, Verdict::DataGone, true),
            (Verdict::Corrupt, Verdict::DataGone, false),
            (Verdict::Error, Verdict::Corrupt, false),
            (Verdict::Error, Verdict::Error, false),
        ];
        for (got, expected, meets) in cases {
            assert_eq!(got.meets(expected), meets, "{got} vs expected {expected}");
        }
    }

    #[test]
    fn parses_every_name_and_rejects_others() {
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
        }
        let err = "fine".parse::<Verdict>().unwrap_err();
        assert!(err.to_string().contains("unknown verdict `fine`"));
    }
}
