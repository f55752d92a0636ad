//! One load-generator process of the SSE scenario, and the parent's handle on it. The
//! scenario needs more sockets than one process may open here (20,000 files), so the bench
//! re-executes itself as `waitroom-bench --sse-worker ...` a few times, each holding at most
//! ~15,000 streams.
//!
//! The protocol is one line each way. The worker joins its shoppers and prints `joined N`,
//! waits for `open`, opens the streams and prints `open OPENED FAILED HELD,HELD,.. [ERROR]`
//! (HELD: streams per instance address). Each `wait EVENT MS` is answered with
//! `heard EVENT ENDED NS NS ...`, the CLOCK_MONOTONIC time at which each stream read that event
//! (one clock for every process on the machine). Its stdin closing ends it.
//!
//! A stream is a raw TCP socket, a hand-written HTTP/1.1 request and a line scanner: a full
//! HTTP client per stream would cost the harness more than the server.

use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::load::join_many;

/// The events whose arrival a worker times, first time per stream.
/// `waitlisted` is what waiting streams hear when the last unit goes (it is held for
/// payment; `sold_out` follows once the hold is paid, which the bench never does).
pub const WATCHED: [&str; 3] = ["closed", "opened", "waitlisted"];
/// Sockets per loopback source address (the ephemeral range is about 28,000 ports); the
/// first is 127.0.0.2, so streams never compete with the joins and the servers' own
/// connections on 127.0.0.1.
const PER_SOURCE_IP: usize = 10_000;
/// Streams being opened at once per worker: enough to keep the servers busy, few enough for
/// their accept backlogs (somaxconn).
const OPENING: usize = 128;
/// Concurrent join requests per worker.
const JOINERS: usize = 16;

/// What a worker is asked to do: `streams` streams of `sale`, the j-th to
/// `addrs[(first + j) % addrs.len()]`.
pub struct Args {
    pub addrs: Vec<SocketAddr>,
    pub sale: String,
    pub streams: usize,
    /// Global index of its first stream: picks instances and source addresses.
    pub first: usize,
}

impl Args {
    fn to_argv(&self) -> Vec<String> {
        let addrs: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        vec![
            "--sse-worker".into(),
            addrs.join(","),
            self.sale.clone(),
            self.streams.to_string(),
            self.first.to_string(),
        ]
    }

    /// The arguments after `--sse-worker`.
    pub fn parse(argv: &[String]) -> Result<Self> {
        let [addrs, sale, streams, first] = argv else {
            bail!("--sse-worker ADDR,ADDR.. SALE STREAMS FIRST");
        };
        Ok(Self {
            addrs: addrs.split(',').map(str::parse).collect::<Result<_, _>>()?,
            sale: sale.clone(),
            streams: streams.parse()?,
            first: first.parse()?,
        })
    }
}

/// CLOCK_MONOTONIC in nanoseconds: comparable across the bench's processes, unlike `Instant`.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[derive(Default)]
struct Shared {
    opened: AtomicUsize,
    failed: AtomicUsize,
    /// Streams the server ended.
    ended: AtomicUsize,
    /// Events read on all streams (any name, `state` included).
    events: AtomicUsize,
    /// Per WATCHED event: when each stream first read it.
    heard: [Mutex<Vec<u64>>; WATCHED.len()],
    first_error: Mutex<Option<String>>,
}

fn reply(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// The worker process's main.
pub async fn run(args: Args) -> Result<()> {
    let n = args.streams;
    let joined = join_many(&args.addrs, &args.sale, n, JOINERS).await?;
    reply(&format!("joined {}", joined.len()))?;
    // Commands from the parent, read on a thread (the bench's tokio has no async stdin).
    let (tx, mut cmds) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    match cmds.recv().await.as_deref() {
        Some("open") => {}
        None => return Ok(()),
        Some(other) => bail!("expected `open`, got {other:?}"),
    }

    let sh = Arc::new(Shared::default());
    let held: Arc<Vec<AtomicUsize>> = Arc::new(args.addrs.iter().map(|_| 0.into()).collect());
    let opening = Arc::new(Semaphore::new(OPENING));
    let path = format!("/api/sales/{}/events", args.sale);
    for (j, shopper) in joined.into_iter().enumerate() {
        let g = args.first + j;
        let k = g % args.addrs.len();
        let src = Ipv4Addr::new(127, 0, 0, 2 + (g / PER_SOURCE_IP).min(250) as u8);
        let (permit, sh, held) = (
            opening.clone().acquire_owned().await?,
            sh.clone(),
            held.clone(),
        );
        let (addr, path) = (args.addrs[k], path.clone());
        tokio::spawn(async move {
            let rd = open(addr, src, &path, &shopper.token).await;
            drop(permit);
            match rd {
                Ok(rd) => {
                    held[k].fetch_add(1, Ordering::Relaxed);
                    sh.opened.fetch_add(1, Ordering::Relaxed);
                    listen(rd, &sh).await;
                }
                Err(e) => {
                    sh.failed.fetch_add(1, Ordering::Relaxed);
                    let mut first = sh.first_error.lock().expect("lock");
                    first.get_or_insert(format!("{e:#}"));
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while sh.opened.load(Ordering::Relaxed) + sh.failed.load(Ordering::Relaxed) < n
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held: Vec<String> = held
        .iter()
        .map(|h| h.load(Ordering::Relaxed).to_string())
        .collect();
    let err = sh.first_error.lock().expect("lock").clone();
    reply(&format!(
        "open {} {} {} {}",
        sh.opened.load(Ordering::Relaxed),
        sh.failed.load(Ordering::Relaxed),
        held.join(","),
        err.unwrap_or_default().replace('\n', " ")
    ))?;

    while let Some(cmd) = cmds.recv().await {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            ["count"] => reply(&format!("count {}", sh.events.load(Ordering::Relaxed)))?,
            ["wait", event, ms] => {
                let line = wait(&sh, event, Duration::from_millis(ms.parse()?)).await?;
                reply(&line)?;
            }
            _ => bail!("unknown command {cmd:?}"),
        }
    }
    Ok(())
}

/// Waits until every open stream heard `event` (or ended), or `within` passes; the reply.
async fn wait(sh: &Shared, event: &str, within: Duration) -> Result<String> {
    let i = WATCHED
        .iter()
        .position(|w| *w == event)
        .with_context(|| format!("not a watched event: {event}"))?;
    let deadline = Instant::now() + within;
    let opened = sh.opened.load(Ordering::Relaxed);
    let count = || sh.heard[i].lock().expect("lock").len();
    while count() + sh.ended.load(Ordering::Relaxed) < opened && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let times: Vec<String> = sh.heard[i]
        .lock()
        .expect("lock")
        .iter()
        .map(u64::to_string)
        .collect();
    let ended = sh.ended.load(Ordering::Relaxed);
    Ok(format!("heard {event} {ended} {}", times.join(" ")))
}

/// Reads a stream until the server ends it, noting when each watched event first arrives.
async fn listen(mut rd: BufReader<TcpStream>, sh: &Shared) {
    let mut seen = [false; WATCHED.len()];
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match rd.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => {
                sh.ended.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
        }
        let Some(name) = event_name(&line) else {
            continue;
        };
        sh.events.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = WATCHED.iter().position(|w| w.as_bytes() == name) {
            if !seen[i] {
                seen[i] = true;
                sh.heard[i].lock().expect("lock").push(mono_ns());
            }
        }
    }
}

/// Connects and reads up to the first event, so "open" means the server is streaming.
/// The token rides the `wr_queue` cookie, as from the page (never the URL).
async fn open(
    addr: SocketAddr,
    src: Ipv4Addr,
    path: &str,
    token: &str,
) -> Result<BufReader<TcpStream>> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src.into(), 0))
        .with_context(|| format!("bind {src}"))?;
    let mut tcp = sock
        .connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Cookie: wr_queue={token}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut rd = BufReader::with_capacity(1024, tcp);
    let mut line = Vec::with_capacity(256);
    rd.read_until(b'\n', &mut line).await?;
    if !line.starts_with(b"HTTP/1.1 200") {
        bail!(
            "stream answered {}",
            String::from_utf8_lossy(&line).trim_end()
        );
    }
    loop {
        line.clear();
        if rd.read_until(b'\n', &mut line).await? == 0 {
            bail!("stream closed before its first event");
        }
        if event_name(&line) == Some(b"state") {
            return Ok(rd);
        }
    }
}

/// The name in an `event: <name>` line (chunk-size lines of the chunked encoding are never
/// mistaken for one).
fn event_name(line: &[u8]) -> Option<&[u8]> {
    line.strip_prefix(b"event:").map(<[u8]>::trim_ascii)
}

/// The parent's handle on one worker process; killed on drop.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Worker {
    pub fn spawn(exe: &Path, args: &Args) -> Result<Self> {
        let mut cmd = Command::new(exe);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .args(args.to_argv())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {} --sse-worker", exe.display()))?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, cmd: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("worker stdin closed")?;
        writeln!(stdin, "{cmd}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The next line, which must start with `word`; the words after it.
    pub async fn expect(&mut self, word: &str, timeout: Duration) -> Result<Vec<String>> {
        let line = tokio::time::timeout(timeout, self.lines.recv())
            .await
            .with_context(|| format!("no `{word}` from an SSE worker within {timeout:?}"))?
            .with_context(|| format!("an SSE worker exited before `{word}` (see its stderr)"))?;
        let mut words = line.split(' ').map(str::to_string);
        if words.next().as_deref() != Some(word) {
            bail!("an SSE worker said {line:?}, expected `{word}`");
        }
        Ok(words.collect())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin ends it; a kill makes sure.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
