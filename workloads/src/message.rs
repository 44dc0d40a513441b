//! What the broker workloads (`nats`, `rabbitmq`) share: a transfer as the
//! payload of one message, and the balances recomputed from the messages
//! read back; and the ledger row the key-value workloads (`etcd`,
//! `zookeeper`) store under a transfer's id. A broker keeps messages, not balances, so the message is the
//! ledger row and every account starts at [`INITIAL_BALANCE`], as the
//! fsync-log probe's do.

use crate::{INITIAL_BALANCE, Transfer};
use std::collections::HashMap;

/// The message of a transfer: `"id src dst amount"`.
pub(crate) fn payload(t: &Transfer) -> String {
    format!("{} {} {} {}", t.id, t.src, t.dst, t.amount)
}

/// The transfer of a message [`payload`] wrote; `None` for anything else.
pub(crate) fn parse_payload(payload: &[u8]) -> Option<Transfer> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.split(' ');
    let t = Transfer {
        id: parts.next()?.parse().ok()?,
        src: parts.next()?.parse().ok()?,
        dst: parts.next()?.parse().ok()?,
        amount: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(t)
}

/// The ledger row `"src dst amount"` stored under the transfer's id (the
/// etcd and ZooKeeper workloads' key or znode name).
pub(crate) fn ledger_row(t: &Transfer) -> String {
    format!("{} {} {}", t.src, t.dst, t.amount)
}

/// The transfer of ledger row `value` under `id`; `None` for anything else.
pub(crate) fn parse_ledger_row(id: &str, value: &str) -> Option<Transfer> {
    let mut parts = value.split(' ');
    let t = Transfer {
        id: id.parse().ok()?,
        src: parts.next()?.parse().ok()?,
        dst: parts.next()?.parse().ok()?,
        amount: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(t)
}

/// Every account's balance after `ledger`, the `accounts` accounts (and any
/// other a message names) starting at [`INITIAL_BALANCE`].
pub(crate) fn balances(ledger: &[Transfer], accounts: u32) -> Vec<(u32, i64)> {
    let mut balances: HashMap<u32, i64> = (0..accounts).map(|id| (id, INITIAL_BALANCE)).collect();
    for t in ledger {
        *balances.entry(t.src).or_insert(INITIAL_BALANCE) -= t.amount;
        *balances.entry(t.dst).or_insert(INITIAL_BALANCE) += t.amount;
    }
    balances.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let t = Transfer { id: 1 << 41, src: 3, dst: 0, amount: 99 };
        assert_eq!(parse_payload(payload(&t).as_bytes()), Some(t));
        assert_eq!(parse_payload(b"1 2 3"), None);
        assert_eq!(parse_payload(b"1 2 3 4 5"), None);
        assert_eq!(parse_payload(&[0xff]), None);
    }

    #[test]
    fn ledger_rows_round_trip() {
        let t = Transfer { id: 7, src: 1, dst: 2, amount: 30 };
        assert_eq!(parse_ledger_row("7", &ledger_row(&t)), Some(t));
        assert_eq!(parse_ledger_row("7", "1 2"), None);
        assert_eq!(parse_ledger_row("x", "1 2 3"), None);
        assert_eq!(parse_ledger_row("7", "1 2 3 4"), None);
    }

    #[test]
    fn balances_are_recomputed_from_the_ledger() {
        let ledger = [Transfer { id: 1, src: 0, dst: 1, amount: 5 }, Transfer { id: 2, src: 0, dst: 1, amount: 10 }];
        let mut b = balances(&ledger, 3);
        b.sort();
        assert_eq!(b, [(0, INITIAL_BALANCE - 15), (1, INITIAL_BALANCE + 15), (2, INITIAL_BALANCE)]);
    }
}
