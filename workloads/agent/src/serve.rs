//! The line protocol the harness's drivers speak to an engine hosted by
//! the agent, over TCP, one request line and one reply per exchange:
//!
//! ```text
//! PING                              -> OK
//! SETUP <accounts> <balance>        -> OK | ERR <why>
//! TRANSFER <id> <src> <dst> <amt>   -> OK | ABORTED <why> | ERR <why>
//! OBSERVE                           -> GONE <why> | UNREADABLE <why>
//!                                    | PRESENT <rows> <accounts>, then one line
//!                                      `<id> <src> <dst> <amt>` per ledger row,
//!                                      one line `<id> <balance>` per account,
//!                                      and `CHECK OK` or `CHECK <why>`
//! ```
//!
//! `OK` to a transfer means durable by the engine's own rules (SQLite's
//! `COMMIT` returned; the fsync-log record's covering fsync returned).
//! `ABORTED` means nothing was applied; `ERR` means the outcome is unknown
//! (the failure came at or after the commit point). Each connection is
//! served by its own thread; the engine decides what runs concurrently.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// One bank transfer as the harness sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub id: u64,
    pub src: u32,
    pub dst: u32,
    pub amount: i64,
}

/// Why a transfer was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// Nothing was applied.
    Aborted(String),
    /// It may or may not have been applied.
    InDoubt(String),
}

/// What an engine found when asked to read its data back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Gone(String),
    Unreadable(String),
    Present { ledger: Vec<Transfer>, balances: Vec<(u32, i64)>, check: Result<(), String> },
}

/// An engine the agent hosts.
pub trait Engine: Send + Sync {
    fn setup(&self, accounts: u32, balance: i64) -> Result<(), String>;
    fn transfer(&self, t: Transfer) -> Result<(), TransferError>;
    fn observe(&self) -> Observed;
    /// A connection that sent transfers has closed; an engine that waits
    /// for its clients (the fsync-log's group fsync) must stop waiting for
    /// this one.
    fn loader_left(&self) {}
    /// A connection sent its first transfer.
    fn loader_joined(&self) {}
    /// Makes everything acknowledged durable and closes the engine, for a
    /// graceful stop; no request is served afterwards.
    fn shutdown(&self);
}

/// Serves connections until the process exits.
pub fn serve(listener: TcpListener, engine: Arc<dyn Engine>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let engine = engine.clone();
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut loader = false;
            let _ = connection(stream, &*engine, &mut loader);
            if loader {
                engine.loader_left();
            }
        });
    }
}

fn connection(stream: TcpStream, engine: &dyn Engine, loader: &mut bool) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let reply = handle(line.trim_end(), engine, loader);
        writer.write_all(reply.as_bytes())?;
        writer.flush()?;
    }
}

/// The reply to one request line, newline-terminated.
pub fn handle(request: &str, engine: &dyn Engine, loader: &mut bool) -> String {
    let mut words = request.split(' ');
    let command = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    match (command, args.as_slice()) {
        ("PING", []) => "OK\n".into(),
        ("SETUP", [accounts, balance]) => match (accounts.parse(), balance.parse()) {
            (Ok(accounts), Ok(balance)) => match engine.setup(accounts, balance) {
                Ok(()) => "OK\n".into(),
                Err(e) => format!("ERR {}\n", one_line(&e)),
            },
            _ => format!("ERR bad request {request:?}\n"),
        },
        ("TRANSFER", [id, src, dst, amount]) => {
            let Some(t) = parse_transfer(id, src, dst, amount) else {
                return format!("ERR bad request {request:?}\n");
            };
            if !*loader {
                *loader = true;
                engine.loader_joined();
            }
            match engine.transfer(t) {
                Ok(()) => "OK\n".into(),
                Err(TransferError::Aborted(e)) => format!("ABORTED {}\n", one_line(&e)),
                Err(TransferError::InDoubt(e)) => format!("ERR {}\n", one_line(&e)),
            }
        }
        ("OBSERVE", []) => match engine.observe() {
            Observed::Gone(e) => format!("GONE {}\n", one_line(&e)),
            Observed::Unreadable(e) => format!("UNREADABLE {}\n", one_line(&e)),
            Observed::Present { ledger, balances, check } => {
                let mut out = format!("PRESENT {} {}\n", ledger.len(), balances.len());
                for t in ledger {
                    out.push_str(&format!("{} {} {} {}\n", t.id, t.src, t.dst, t.amount));
                }
                for (id, balance) in balances {
                    out.push_str(&format!("{id} {balance}\n"));
                }
                match check {
                    Ok(()) => out.push_str("CHECK OK\n"),
                    Err(e) => out.push_str(&format!("CHECK {}\n", one_line(&e))),
                }
                out
            }
        },
        _ => format!("ERR bad request {request:?}\n"),
    }
}

fn parse_transfer(id: &str, src: &str, dst: &str, amount: &str) -> Option<Transfer> {
    Some(Transfer {
        id: id.parse().ok()?,
        src: src.parse().ok()?,
        dst: dst.parse().ok()?,
        amount: amount.parse().ok()?,
    })
}

/// Replies are lines: a message spanning several must not break framing.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Fake {
        ledger: Mutex<Vec<Transfer>>,
    }

    impl Engine for Fake {
        fn setup(&self, accounts: u32, _balance: i64) -> Result<(), String> {
            if accounts == 0 { Err("no\naccounts".into()) } else { Ok(()) }
        }
        fn transfer(&self, t: Transfer) -> Result<(), TransferError> {
            match t.amount {
                0 => Err(TransferError::Aborted("zero".into())),
                -1 => Err(TransferError::InDoubt("lost".into())),
                _ => {
                    self.ledger.lock().unwrap().push(t);
                    Ok(())
                }
            }
        }
        fn observe(&self) -> Observed {
            let ledger = self.ledger.lock().unwrap().clone();
            Observed::Present { ledger, balances: vec![(0, 5)], check: Err("bad page".into()) }
        }
        fn shutdown(&self) {}
    }

    #[test]
    fn requests_get_their_documented_replies() {
        let e = Fake::default();
        let mut loader = false;
        let mut r = |req: &str| handle(req, &e, &mut loader);
        assert_eq!(r("PING"), "OK\n");
        assert_eq!(r("SETUP 4 100"), "OK\n");
        assert_eq!(r("SETUP 0 100"), "ERR no accounts\n");
        assert_eq!(r("SETUP x"), "ERR bad request \"SETUP x\"\n");
        assert_eq!(r("TRANSFER 7 1 2 30"), "OK\n");
        assert_eq!(r("TRANSFER 8 1 2 0"), "ABORTED zero\n");
        assert_eq!(r("TRANSFER 9 1 2 -1"), "ERR lost\n");
        assert_eq!(r("OBSERVE"), "PRESENT 1 1\n7 1 2 30\n0 5\nCHECK bad page\n");
        assert!(r("NOPE").starts_with("ERR bad request"));
        assert!(loader);
    }
}
