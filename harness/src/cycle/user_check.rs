//! The verify phase of a service crashlab has no driver for (`kind =
//! "app"`): the user's own check on the recovered data
//! ([`crate::deploy::check`]) is the verdict, since no acknowledged write
//! was recorded for the ack log to be checked against.
//!
//! Exit 0 is `intact`, any other exit `corrupt` (the check is the
//! service's integrity check, and `corrupt` is the model's verdict for a
//! failed one), and a check still running at its deadline `error`: it said
//! nothing. The detail always says that the ack-log oracle did not apply,
//! so that an `intact` here never reads as acknowledged writes checked.

use super::ms;
use super::phases::{CycleFailure, CycleRun};
use crate::deploy::check::CheckRun;
use crate::text::{error_chain, folded_tail};
use crashlab_reports::Verdict;
use std::time::{Duration, Instant};

/// What every such cycle's detail ends with.
pub const NO_ORACLE: &str = "the acknowledgement-log oracle did not apply: crashlab has no driver for this service, \
                             sent it no writes and recorded no acknowledgements, so this verdict is your check's alone";

/// How much of the end of the check's output the detail quotes.
const OUTPUT_CHARS: usize = 600;

/// The verdict of a check's run, and the sentence that says why.
pub fn judge(cmd: &[String], limit: Duration, ran: &CheckRun) -> (Verdict, String) {
    let shown = crate::text::one_line(&cmd.join(" "));
    let output = match folded_tail(&ran.output, OUTPUT_CHARS) {
        tail if tail.is_empty() => "no output".to_owned(),
        tail => format!("its output: {tail}"),
    };
    let took = format!("{:.1} s", ran.took.as_secs_f64());
    match ran.exit_code {
        Some(0) => (Verdict::Intact, format!("your check passed: `{shown}` exited 0 after {took}; {output}")),
        Some(code) => (Verdict::Corrupt, format!("your check failed: `{shown}` exited {code} after {took}; {output}")),
        None => (
            Verdict::Error,
            format!(
                "your check did not finish: `{shown}` was still running after {} s (`check-timeout`) and was \
                 stopped; {output}",
                limit.as_secs_f64()
            ),
        ),
    }
}

impl CycleRun<'_, '_> {
    /// Runs the user's check on the recovered data and makes its outcome
    /// the cycle's verdict; the hooks, which judge by the ack log, add
    /// nothing.
    pub async fn verify_by_check(&mut self, cmd: &[String], verify_started: Instant) -> Result<(), CycleFailure> {
        let limit = self.runner.scenario.workload.check_timeout;
        let ran = self
            .deployment
            .run_user_check(cmd, limit)
            .await
            .map_err(|e| CycleFailure::Verify(format!("could not run your check: {}", error_chain(&e))))?;
        let (verdict, said) = judge(cmd, limit, &ran);
        let loaded = self.loaded.as_ref().expect("loaded before verify");
        self.report.verdict = verdict;
        self.report.detail = [Some(said), self.behaviour().detail(&loaded.fired), Some(NO_ORACLE.to_owned())]
            .into_iter()
            .flatten()
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        self.report.phases.verify_ms = ms(verify_started);
        self.contribute(None).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_verdict_and_the_output_s_tail_its_evidence() {
        let cmd = vec!["sh".to_owned(), "-c".to_owned(), "test -s /data/log".to_owned()];
        let ran = |exit_code, output: &str| CheckRun {
            exit_code,
            output: output.to_owned(),
            took: Duration::from_millis(1234),
        };
        let limit = Duration::from_secs(60);
        let cases = [
            (
                ran(Some(0), "417 lines\n"),
                Verdict::Intact,
                "your check passed: `sh -c test -s /data/log` exited 0 after 1.2 s; its output: 417 lines",
            ),
            (
                ran(Some(1), ""),
                Verdict::Corrupt,
                "your check failed: `sh -c test -s /data/log` exited 1 after 1.2 s; no output",
            ),
            (
                ran(None, "checking\n"),
                Verdict::Error,
                "your check did not finish: `sh -c test -s /data/log` was still running after 60 s (`check-timeout`) \
                 and was stopped; its output: checking",
            ),
        ];
        for (run, verdict, said) in cases {
            assert_eq!(judge(&cmd, limit, &run), (verdict, said.to_owned()));
        }
        let long = format!("{}END", "x".repeat(2000));
        let (_, said) = judge(&cmd, limit, &ran(Some(2), &long));
        assert!(said.ends_with("END") && said.len() < 700, "the tail, cut: {said}");
    }
}
