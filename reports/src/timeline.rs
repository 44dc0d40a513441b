//! A cycle in time: acknowledged commits per second and commit latency
//! through the load, in fixed buckets, with the instants that bound the
//! fault and the recovery and the first write acknowledged after it.
//!
//! Every instant is in milliseconds after the load began (the zero of the
//! ack log's spans). A commit counts in the bucket in which it was
//! acknowledged, with its latency (send to acknowledgement); a bucket in
//! which nothing was acknowledged has no latency. The buckets run from the
//! start of the load to the last acknowledgement of the load's clients; the
//! write after recovery is not among them, only its instant.
//!
//! The load's clients stop at the fault, so a cycle's commit rate falls to
//! nothing there and stays there: the recovery band runs from the end of
//! the damage to the first successful query (the cycle's `recovery_ms`),
//! and the first write after recovery is a probe, made once the harness
//! has read the data back and settled the verdict (see
//! [`Timeline::first_write`]).

use crate::markup::{accessible, short};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// The width of a bucket, in milliseconds.
pub const BUCKET_MS: f64 = 100.0;

/// One cycle's picture in time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeline {
    /// The width of each bucket ([`BUCKET_MS`]).
    pub bucket_ms: f64,
    /// One bucket per `bucket_ms` from the start of the load, up to the
    /// last acknowledgement of the load.
    pub buckets: Vec<Bucket>,
    /// The fault began: the end of the load phase.
    pub fault_ms: f64,
    /// The damage was done, and the load's clients were told to stop.
    pub fault_end_ms: f64,
    /// The first successful query after the recovery: the end of the
    /// recovery band (`fault_end_ms` + the cycle's `recovery_ms`); absent
    /// when the service never came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_ms: Option<f64>,
    /// The harness had read the data back and checked it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_ms: Option<f64>,
    /// The first write acknowledged after the recovery; absent when none
    /// was (`first_write` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_write_ms: Option<f64>,
    /// How the first write after recovery was made, or why there is none,
    /// in a sentence.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub first_write: String,
}

/// What was acknowledged in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bucket {
    /// Commits acknowledged in the bucket.
    pub acked: u32,
    /// Median and 99th percentile (nearest rank) of their commit
    /// latencies, in milliseconds; 0 when `acked` is 0.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Timeline {
    /// Buckets of `bucket_ms` from the acknowledgements given as
    /// (acknowledged at, latency), both in microseconds, the first since
    /// the load began. Empty when nothing was acknowledged.
    pub fn bucket(acks: impl IntoIterator<Item = (u64, u64)>, bucket_ms: f64) -> Vec<Bucket> {
        let width_us = (bucket_ms * 1e3).max(1.0) as u64;
        let mut latencies: Vec<Vec<u64>> = Vec::new();
        for (at_us, latency_us) in acks {
            let i = (at_us / width_us) as usize;
            if latencies.len() <= i {
                latencies.resize_with(i + 1, Vec::new);
            }
            latencies[i].push(latency_us);
        }
        latencies
            .into_iter()
            .map(|mut l| {
                l.sort_unstable();
                let rank = |q: f64| l[((q * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1] as f64 / 1e3;
                match l.len() {
                    0 => Bucket::default(),
                    n => Bucket { acked: n as u32, p50_ms: rank(0.5), p99_ms: rank(0.99) },
                }
            })
            .collect()
    }

    /// The commit rate of bucket `i`, in acknowledged commits per second.
    pub fn rate(&self, i: usize) -> f64 {
        let width_s = self.bucket_ms / 1e3;
        self.buckets.get(i).map_or(0.0, |b| if width_s > 0.0 { f64::from(b.acked) / width_s } else { 0.0 })
    }

    /// The last instant the picture must show: the latest of the marks and
    /// the end of the last bucket.
    pub fn end_ms(&self) -> f64 {
        let buckets = self.buckets.len() as f64 * self.bucket_ms;
        [Some(buckets), Some(self.fault_end_ms), self.recovered_ms, self.verified_ms, self.first_write_ms]
            .into_iter()
            .flatten()
            .fold(0.0, f64::max)
    }
}

const RATE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const LATENCY: RGBColor = RGBColor(0x00, 0x00, 0x00);
const FAULT: RGBColor = RGBColor(0xd3, 0x2f, 0x2f);
const RECOVERY: RGBColor = RGBColor(0xff, 0x98, 0x00);
const VERIFY: RGBColor = RGBColor(0x90, 0x90, 0x90);
const WRITE: RGBColor = RGBColor(0x2e, 0x7d, 0x32);

impl Timeline {
    /// The picture as an accessible SVG: commits per second as bars per
    /// bucket (left axis), p99 commit latency as a line (right axis), the
    /// fault and the recovery as bands, the read-back as a grey band and
    /// the first write after recovery as a green line. The legend is the
    /// page's ([`LEGEND`]), shared by every timeline: inside each chart it
    /// would cover the bands.
    pub fn svg(&self, title: &str) -> String {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (520, 300)).into_drawing_area();
            if let Err(e) = self.draw(&root, title) {
                return format!("<p>chart unavailable: {}</p>", crate::markup::esc(&e.to_string()));
            }
        }
        accessible(&svg, title, &self.description())
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
    ) -> Result<(), Box<dyn std::error::Error + '_>>
    where
        DB::ErrorType: 'static,
    {
        let s = |ms: f64| ms / 1e3;
        let end = s(self.end_ms()).max(0.1) * 1.04;
        let rate_top = (0..self.buckets.len()).map(|i| self.rate(i)).fold(0.0, f64::max).max(1.0) * 1.45;
        let latency_top = self.buckets.iter().map(|b| b.p99_ms).fold(0.0, f64::max).max(1.0) * 1.45;
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .right_y_label_area_size(48)
            .build_cartesian_2d(0f64..end, 0f64..rate_top)?
            .set_secondary_coord(0f64..end, 0f64..latency_top);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("seconds since the load began")
            .y_desc("acknowledged commits/s")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 11))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("commit latency p99 (ms)")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 11))
            .draw()?;
        let band = |from: f64, to: f64, color: RGBColor| {
            Rectangle::new([(s(from), 0.0), (s(to), rate_top)], color.mix(0.28).filled())
        };
        let width = self.bucket_ms;
        chart.draw_series(self.buckets.iter().enumerate().filter(|(_, b)| b.acked > 0).map(|(i, _)| {
            let x0 = i as f64 * width;
            Rectangle::new([(s(x0), 0.0), (s(x0 + width * 0.9), self.rate(i))], RATE.mix(0.75).filled())
        }))?;
        // The fault's band is drawn with a line at its start: a kill lasts
        // a few milliseconds, narrower than a pixel.
        chart.draw_series([band(self.fault_ms, self.fault_end_ms, FAULT)])?;
        chart.draw_series([PathElement::new(vec![(s(self.fault_ms), 0.0), (s(self.fault_ms), rate_top)], FAULT)])?;
        if let Some(recovered) = self.recovered_ms {
            chart.draw_series([band(self.fault_end_ms, recovered, RECOVERY)])?;
            if let Some(verified) = self.verified_ms {
                chart.draw_series([band(recovered, verified, VERIFY)])?;
            }
        }
        if let Some(at) = self.first_write_ms {
            chart.draw_series([PathElement::new(vec![(s(at), 0.0), (s(at), rate_top)], WRITE.stroke_width(2))])?;
        }
        // The latency line breaks where a bucket acknowledged nothing.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (i, b) in self.buckets.iter().enumerate() {
            if b.acked == 0 {
                runs.push(Vec::new());
            } else if let Some(run) = runs.last_mut() {
                run.push((s((i as f64 + 0.45) * width), b.p99_ms));
            }
        }
        runs.retain(|r| !r.is_empty());
        for run in runs {
            chart.draw_secondary_series(LineSeries::new(run, LATENCY.stroke_width(1)))?;
        }
        root.present()?;
        Ok(())
    }

    /// What the picture shows, in words.
    pub fn description(&self) -> String {
        let s = |ms: f64| format!("{} s", short(ms / 1e3));
        let peak = (0..self.buckets.len()).map(|i| self.rate(i)).fold(0.0, f64::max);
        let p99 = self.buckets.iter().map(|b| b.p99_ms).fold(0.0, f64::max);
        let acked: u64 = self.buckets.iter().map(|b| u64::from(b.acked)).sum();
        let last = self.buckets.iter().rposition(|b| b.acked > 0).map(|i| (i + 1) as f64 * self.bucket_ms);
        let mut out = format!(
            "{acked} commits acknowledged in {} ms buckets, at most {}/s, p99 latency of a bucket at most {} ms",
            short(self.bucket_ms),
            short(peak),
            short(p99)
        );
        if let Some(last) = last {
            out += &format!(", the last by {}", s(last));
        }
        out += &format!(". Fault from {} to {}", s(self.fault_ms), s(self.fault_end_ms));
        match self.recovered_ms {
            Some(r) => out += &format!("; first successful query at {}", s(r)),
            None => out += "; the service did not come back",
        }
        if let Some(v) = self.verified_ms {
            out += &format!("; data read back by {}", s(v));
        }
        match self.first_write_ms {
            Some(w) => out += &format!("; first write after recovery acknowledged at {}.", s(w)),
            None => out += &format!("; no write after recovery ({}).", self.first_write),
        }
        out
    }
}

/// The key to the timelines' colours, as HTML.
pub const LEGEND: &str = "<p class=\"legend tl\"><span style=\"background:#1f77b4bf\">commits/s</span>\
<span style=\"background:none;border-bottom:2px solid #000\">p99 latency</span>\
<span style=\"background:#d32f2f47\">fault</span><span style=\"background:#ff980047\">recovery, to the first query</span>\
<span style=\"background:#90909047\">data read back</span>\
<span style=\"background:none;border-left:3px solid #2e7d32\">first write after recovery</span></p>\n";

/// The cycle a cell's picture shows: the first whose verdict is the
/// cell's (its worst), since that is the cycle that decided the verdict,
/// among those that have a timeline; with its index.
pub fn chosen(cell: &crate::CellReport) -> Option<(usize, &Timeline)> {
    let with: Vec<(usize, &crate::CycleReport)> =
        cell.cycle_details.iter().enumerate().filter(|(_, c)| c.timeline.is_some()).collect();
    let (i, cycle) = with.iter().find(|(_, c)| c.verdict == cell.verdict).or_else(|| with.first())?;
    Some((*i, cycle.timeline.as_ref()?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 3 s load at about 330 commits/s, a fault of 60 ms, recovery 500 ms
    /// after it, and a first write after the read-back.
    pub(crate) fn sample() -> Timeline {
        // One commit every 3 ms, of a latency that rises towards the fault.
        let acks = (1..1000u64).map(|i| (i * 3_000, 1_000 + i * 2));
        Timeline {
            bucket_ms: BUCKET_MS,
            buckets: Timeline::bucket(acks, BUCKET_MS),
            fault_ms: 3_000.0,
            fault_end_ms: 3_060.0,
            recovered_ms: Some(3_560.0),
            verified_ms: Some(3_590.0),
            first_write_ms: Some(3_602.0),
            first_write: "a write into crashlab.failover_probe".into(),
        }
    }

    #[test]
    fn acknowledgements_fall_in_the_bucket_of_their_acknowledgement() {
        // (acknowledged at µs, latency µs)
        let acks = [(10_000, 1_000), (99_999, 3_000), (100_000, 2_000), (350_000, 40_000), (399_999, 20_000)];
        let buckets = Timeline::bucket(acks, 100.0);
        assert_eq!(buckets.len(), 4);
        assert_eq!(buckets.iter().map(|b| b.acked).collect::<Vec<_>>(), [2, 1, 0, 2]);
        assert_eq!((buckets[0].p50_ms, buckets[0].p99_ms), (1.0, 3.0));
        assert_eq!((buckets[1].p50_ms, buckets[1].p99_ms), (2.0, 2.0));
        assert_eq!(buckets[2], Bucket::default(), "a bucket with nothing acknowledged has no latency");
        assert_eq!((buckets[3].p50_ms, buckets[3].p99_ms), (20.0, 40.0));
        assert!(Timeline::bucket([], 100.0).is_empty());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let acks = (1..=200u64).map(|i| (5_000, i * 1_000));
        let b = Timeline::bucket(acks, 100.0)[0];
        assert_eq!((b.acked, b.p50_ms, b.p99_ms), (200, 100.0, 198.0));
    }

    #[test]
    fn rate_is_per_second_and_the_end_is_the_latest_mark() {
        let t = Timeline {
            bucket_ms: 100.0,
            buckets: Timeline::bucket([(50_000, 1), (60_000, 1), (150_000, 1)], 100.0),
            fault_ms: 180.0,
            fault_end_ms: 190.0,
            recovered_ms: Some(900.0),
            verified_ms: Some(950.0),
            first_write_ms: Some(1_000.0),
            first_write: String::new(),
        };
        assert_eq!((t.rate(0), t.rate(1), t.rate(7)), (20.0, 10.0, 0.0));
        assert_eq!(t.end_ms(), 1_000.0);
        assert_eq!(Timeline { first_write_ms: None, verified_ms: None, ..t.clone() }.end_ms(), 900.0);
    }
}
