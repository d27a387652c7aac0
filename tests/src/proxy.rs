//! A TCP proxy in front of the test database that can lose the answer to one COMMIT: the
//! statement reaches the server (which commits), the client's connection is cut before the
//! reply. This is how a network failure looks to a writer that must not write twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy on a free local port forwarding to a database server.
#[derive(Debug)]
pub struct CommitCutter {
    port: u16,
    armed: Arc<AtomicBool>,
    cut: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl CommitCutter {
    /// Start a proxy in front of the server `url` points at (`scheme://user@host:port/db`).
    pub async fn start(url: &str) -> CommitCutter {
        let target = authority(url).1.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let armed = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicUsize::new(0));
        let (a, c) = (armed.clone(), cut.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, a.clone(), c.clone()));
            }
        });
        CommitCutter {
            port,
            armed,
            cut,
            accept,
        }
    }

    /// `url` with its host and port replaced by the proxy's, without TLS (Debian's PostgreSQL
    /// offers it, newer MariaDB too, and the proxy must read the statements).
    pub fn url(&self, url: &str) -> String {
        let (start, host_port) = authority(url);
        let mut proxied = format!(
            "{}127.0.0.1:{}{}",
            &url[..start],
            self.port,
            &url[start + host_port.len()..]
        );
        let no_tls = if url.starts_with("postgres") {
            "sslmode=disable"
        } else {
            "ssl-mode=disabled"
        };
        proxied.push(if proxied.contains('?') { '&' } else { '?' });
        proxied.push_str(no_tls);
        proxied
    }

    /// Cut the connection that sends the next COMMIT, after the server has had it.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// How many COMMITs lost their answer so far.
    pub fn cut(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

impl Drop for CommitCutter {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Where `host:port` starts in `url`, and that text.
fn authority(url: &str) -> (usize, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let start = url[after_scheme..]
        .find('@')
        .map_or(after_scheme, |i| after_scheme + i + 1);
    let len = url[start..].find(['/', '?']).unwrap_or(url.len() - start);
    (start, &url[start..start + len])
}

async fn pipe(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>, cut: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let commit = buf[..n]
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"COMMIT"));
        if commit && armed.swap(false, Ordering::SeqCst) {
            // The answer must not get through: stop relaying answers first, then let the
            // server have the COMMIT and time to carry it out before the connection goes.
            answers.abort();
            let _ = server_write.write_all(&buf[..n]).await;
            cut.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        if server_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    answers.abort();
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn finds_host_and_port() {
        let url = "postgres://postgres@127.0.0.1:5432/test";
        assert_eq!(authority(url).1, "127.0.0.1:5432");
        assert_eq!(
            authority("mysql://root@localhost:3306/x?a=b").1,
            "localhost:3306"
        );
        assert_eq!(authority("postgres://h:1?x").1, "h:1");
    }
}
