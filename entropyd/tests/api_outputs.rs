//! The outputs: sink files and FIFOs, the kernel feed's error paths.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../../tests/support/hw.rs"]
mod hw_support;

use entropyd::kernel::{KernelError, KernelFeed};
use entropyd::sink::{PIPE_ATOMIC, Sink, SinkError, SinkKind};

fn blocks(n: usize, seed: u8) -> Vec<u8> {
    (0..n * 32)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn mkfifo(path: &Path, mode: u32) {
    let st = Command::new("mkfifo")
        .arg("-m")
        .arg(format!("{mode:o}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn file_sink_is_created_0600_and_appends_exactly_the_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sink.bin");
    let (a, b) = (blocks(3, 1), blocks(5, 2));
    {
        let mut sink = Sink::open(&path).unwrap();
        assert_eq!(sink.kind(), SinkKind::File);
        assert_eq!(sink.write(&a).unwrap(), a.len());
        sink.sync().unwrap();
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Reopening appends; nothing earlier is overwritten.
    let mut sink = Sink::open(&path).unwrap();
    assert_eq!(sink.write(&b).unwrap(), b.len());
    assert_eq!(sink.written(), b.len() as u64);
    let mut want = a.clone();
    want.extend_from_slice(&b);
    assert_eq!(std::fs::read(&path).unwrap(), want);
}

#[test]
fn sinks_others_can_read_or_odd_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("world.bin");
    std::fs::write(&open, b"").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        Sink::open(&open),
        Err(SinkError::InsecureMode { mode: 0o644, .. })
    ));
    // Group access is allowed (a consumer group).
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(Sink::open(&open).is_ok());
    let err = Sink::open(dir.path()).unwrap_err();
    assert!(matches!(err, SinkError::Unsupported { .. }), "{err}");
    // /dev/null is a character device: written like a file.
    let mut null = Sink::open(Path::new("/dev/null")).unwrap();
    assert_eq!(null.kind(), SinkKind::CharDevice);
    assert_eq!(null.write(&blocks(2, 0)).unwrap(), 64);
}

#[test]
fn fifo_without_reader_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo");
    mkfifo(&path, 0o600);
    let t = Instant::now();
    let mut sink = Sink::open(&path).unwrap();
    assert_eq!(sink.kind(), SinkKind::Fifo);
    assert!(!sink.ready());
    assert_eq!(sink.write(&blocks(4, 0)).unwrap(), 0);
    // A blocking open or write would hang; 10 s tells that from a loaded
    // machine.
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn fifo_delivers_whole_blocks_and_stops_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo");
    mkfifo(&path, 0o600);
    // A reader that opens the FIFO but reads only when told.
    let reader_path = path.clone();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (open_tx, open_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_nonblock()
            .open(&reader_path)
            .unwrap();
        open_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "reader timed out");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
        all
    });
    open_rx.recv().unwrap();
    let mut sink = Sink::open(&path).unwrap();
    assert!(sink.ready());
    // 4 MiB is far more than a pipe holds (64 KiB by default): the write
    // stops when the pipe is full instead of blocking.
    let data = blocks(4 * 1024 * 1024 / 32, 9);
    let t = Instant::now();
    let sent = sink.write(&data).unwrap();
    // The reader waits for `go`: a blocking write would never return.
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(sent > 0 && sent < data.len(), "sent {sent}");
    assert_eq!(sent % PIPE_ATOMIC, 0, "only whole atomic pieces");
    drop(sink); // the reader sees end of file after draining
    go_tx.send(()).unwrap();
    let got = reader.join().unwrap();
    assert_eq!(got, data[..sent], "exactly the bytes reported, in order");
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}
impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

#[test]
fn fifo_reader_leaving_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo");
    mkfifo(&path, 0o600);
    let reader = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap()
    };
    let mut sink = Sink::open(&path).unwrap();
    assert_eq!(sink.write(&blocks(1, 0)).unwrap(), 32);
    drop(reader);
    // EPIPE: nothing written, no signal kills the test, no error.
    assert_eq!(sink.write(&blocks(1, 1)).unwrap(), 0);
    assert!(!sink.ready());
}

#[test]
fn kernel_feed_refuses_what_is_not_the_random_device() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-device");
    std::fs::write(&file, b"").unwrap();
    let err = KernelFeed::open_path(&file).unwrap_err();
    assert!(matches!(err, KernelError::NotADevice { .. }), "{err}");
    let err = KernelFeed::open_path(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, KernelError::Open { .. }), "{err}");
    // /dev/null is a character device but knows no RNDADDENTROPY (ENOTTY).
    let mut null = KernelFeed::open_path(Path::new("/dev/null")).unwrap();
    let err = null.probe().unwrap_err();
    assert!(matches!(err, KernelError::NotRandomDevice { .. }), "{err}");
    assert!(
        err.to_string().contains("not the kernel random device"),
        "{err}"
    );
}

#[test]
fn kernel_probe_matches_our_privileges() {
    let Ok(mut feed) = KernelFeed::open() else {
        hw_support::skip(
            "devrandom",
            &"/dev/random cannot be opened for writing here",
        );
        return;
    };
    // The euid is the owner of /proc/self.
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    // A zero-byte, zero-credit add changes nothing in the kernel pool.
    match feed.probe() {
        Ok(()) => assert!(
            root || has_sys_admin(),
            "probe passed without CAP_SYS_ADMIN"
        ),
        Err(KernelError::PermissionDenied { .. }) => {
            let msg = feed.probe().unwrap_err().to_string();
            assert!(msg.contains("CAP_SYS_ADMIN"), "{msg}");
        }
        Err(e) => panic!("unexpected: {e}"),
    }
}

/// Whether CAP_SYS_ADMIN (bit 21) is in our effective set.
fn has_sys_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 21) != 0)
}

/// Set in the child process that runs without CAP_SYS_ADMIN.
const CHILD_ENV: &str = "ENTROPYD_TEST_NO_SYS_ADMIN";

#[test]
fn kernel_feed_without_cap_sys_admin_gives_the_clear_error() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // In the child: no CAP_SYS_ADMIN, so the kernel must refuse.
        assert!(!has_sys_admin(), "the child still has CAP_SYS_ADMIN");
        let mut feed = KernelFeed::open().unwrap();
        let err = feed.probe().unwrap_err();
        assert!(matches!(err, KernelError::PermissionDenied { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("root or CAP_SYS_ADMIN") && msg.contains("--sink"),
            "{msg}"
        );
        let err = feed.add_full_entropy(&[0u8; 64]).unwrap_err();
        assert!(matches!(err, KernelError::PermissionDenied { .. }), "{err}");
        assert_eq!(feed.credited_bits(), 0);
        return;
    }
    if KernelFeed::open().is_err() {
        hw_support::skip(
            "devrandom",
            &"/dev/random cannot be opened for writing here",
        );
        return;
    }
    if !has_sys_admin() {
        // Unprivileged already: check directly.
        let err = KernelFeed::open().unwrap().probe().unwrap_err();
        assert!(matches!(err, KernelError::PermissionDenied { .. }), "{err}");
        return;
    }
    // Privileged (CI runs as root): re-run this test in a child whose
    // bounding set lacks CAP_SYS_ADMIN (root's effective set then lacks it).
    let exe = std::env::current_exe().unwrap();
    let out = match Command::new("setpriv")
        .arg("--bounding-set=-sys_admin")
        .arg(&exe)
        // A name filter, not `--exact`: in the aggregated test binary the
        // test's path is `api_outputs::kernel_feed_...` (tests/README.md).
        .args([
            "kernel_feed_without_cap_sys_admin_gives_the_clear_error",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            hw_support::skip(
                "setpriv",
                &format!("setpriv (util-linux) is not available: {e}"),
            );
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
