//! A loopback SMTP exchanger, served by the sandbox and by tests: the
//! mailboxes it is given exist, `grey@` is greylisted once (then taken),
//! any address at a domain starting with `catchall.` is taken, everything
//! else is refused (550); it counts connections and DATA (never answered).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What the exchanger saw.
#[derive(Default)]
pub struct Seen {
    pub connections: usize,
    pub data: usize,
    /// RCPT TO per address.
    pub tries: HashMap<String, usize>,
}

/// Whether `to` is one of `mailboxes`: an entry with an `@` names one
/// address, one without names that local part at any domain.
fn exists(mailboxes: &[String], to: &str) -> bool {
    let local = to.split('@').next().unwrap_or_default();
    mailboxes.iter().any(|m| {
        if m.contains('@') {
            m.eq_ignore_ascii_case(to)
        } else {
            m.eq_ignore_ascii_case(local)
        }
    })
}

fn reply(line: &str, mailboxes: &[String], seen: &Mutex<Seen>) -> &'static [u8] {
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("EHLO") {
        b"250-mx.test\r\n250 8BITMIME\r\n"
    } else if upper.starts_with("MAIL FROM") {
        b"250 2.1.0 OK\r\n"
    } else if upper.starts_with("RCPT TO") {
        let to = line[8..].trim().trim_matches(['<', '>']).to_lowercase();
        let tries = {
            let mut seen = seen.lock().expect("not poisoned");
            let n = seen.tries.entry(to.clone()).or_default();
            *n += 1;
            *n
        };
        let domain = to.rsplit('@').next().unwrap_or_default();
        if domain.starts_with("catchall.") || exists(mailboxes, &to) {
            b"250 2.1.5 OK\r\n"
        } else if to.starts_with("grey@") && tries == 1 {
            b"451 4.7.1 greylisted, try again later\r\n"
        } else if to.starts_with("grey@") {
            b"250 2.1.5 OK\r\n"
        } else {
            b"550 5.1.1 no such user\r\n"
        }
    } else if upper.starts_with("DATA") {
        seen.lock().expect("not poisoned").data += 1;
        b"554 no\r\n"
    } else {
        b"502 unknown\r\n"
    }
}

/// A running exchanger; it stops when this is dropped.
pub struct Exchanger {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Exchanger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts one on 127.0.0.1 (a free port) that knows `mailboxes`.
pub async fn start(mailboxes: &[&str]) -> std::io::Result<Exchanger> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    let mailboxes: Arc<[String]> = mailboxes.iter().map(|m| (*m).to_owned()).collect();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.lock().expect("not poisoned").connections += 1;
            let seen = shared.clone();
            let mailboxes = mailboxes.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                if write.write_all(b"220 mx.test ESMTP\r\n").await.is_err() {
                    return;
                }
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.to_ascii_uppercase().starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    let said = reply(&line, &mailboxes, &seen);
                    if write.write_all(said).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(Exchanger { addr, seen, task })
}
