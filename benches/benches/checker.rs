//! The ack-log check on a large history: after a fault the harness compares
//! every acknowledged write with what the server kept. Target: 1,000,000
//! acknowledged writes checked in under 1 s of harness CPU.

use crashlab::checker::check;
use crashlab_workloads::{AckLog, INITIAL_BALANCE, Observation, Outcome, Transfer};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const ACCOUNTS: u32 = 100;

/// A history of `n` transfers, the last few in doubt, and the observation
/// of a server that lost every 1000th acknowledged one.
fn history(n: u64) -> (AckLog, Observation) {
    let mut entries = Vec::with_capacity(n as usize);
    let mut ledger = Vec::with_capacity(n as usize);
    let mut balances: Vec<i64> = vec![INITIAL_BALANCE; ACCOUNTS as usize];
    for i in 0..n {
        let src = (i * 7 % u64::from(ACCOUNTS)) as u32;
        let dst = (src + 1 + (i % 13) as u32) % ACCOUNTS;
        let t = Transfer { id: (i % 4) << 40 | i, src, dst, amount: (i % 100) as i64 + 1 };
        let outcome = if i + 4 >= n { Outcome::InDoubt } else { Outcome::Acked };
        entries.push((t, outcome));
        if i % 1000 != 500 {
            balances[src as usize] -= t.amount;
            balances[dst as usize] += t.amount;
            ledger.push(t);
        }
    }
    let balances = balances.into_iter().enumerate().map(|(id, b)| (id as u32, b)).collect();
    (
        AckLog { entries, times: vec![] },
        Observation::Present { ledger, balances, engine_check: Ok(()), engine_notes: vec![] },
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ack_log_check");
    group.sample_size(10);
    for n in [100_000u64, 1_000_000] {
        let (log, observation) = history(n);
        let found = check(&log, &observation, ACCOUNTS);
        assert_eq!(found.lost, n / 1000, "every 1000th write was dropped");
        group.bench_function(format!("{n}_acked"), |b| {
            b.iter(|| check(black_box(&log), black_box(&observation), ACCOUNTS))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
