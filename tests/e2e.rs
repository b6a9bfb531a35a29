//! End-to-end: the real binary in a real terminal (tmux), against a real server. The terminal
//! must be restored on every exit (q, Ctrl-C, SIGTERM, panic), and the dashboard must ride out
//! a server restart by itself.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use idemtop::pgtemp::{TempPgOptions, TempPostgres};
use sqlx::Executor;

/// A private tmux server, killed on drop (also when the test fails).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Self {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok(),
            "tmux is needed for the end-to-end tests (apt-get install tmux)"
        );
        Self {
            socket: format!("idemtop-e2e-{}-{name}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start `idemtop args` in a 100x30 pane that stays after the program exits.
    fn start(&self, args: &[&str], env: &[(&str, &str)]) {
        let mut cmd = vec![env!("CARGO_BIN_EXE_idemtop").to_string()];
        cmd.extend(args.iter().map(|a| format!("'{a}'")));
        let mut envs = String::from("env -u DATABASE_URL NO_COLOR=1 RUST_BACKTRACE=0 ");
        for (k, v) in env {
            envs.push_str(&format!("{k}='{v}' "));
        }
        // The shell outlives idemtop, so the terminal's state after the exit can be read.
        let shell = format!("{envs}{}; echo \"EXIT=$?\"; sleep 600", cmd.join(" "));
        self.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "30",
            "sh",
            "-c",
            &shell,
        ]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-t", "t"])
    }

    fn var(&self, name: &str) -> String {
        self.run(&["display-message", "-p", "-t", "t", &format!("#{{{name}}}")])
            .trim()
            .to_string()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", "t", k]);
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("{what:?} did not appear within {timeout:?}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_exit(&self) -> i32 {
        let s = self.wait_for("EXIT=", Duration::from_secs(30));
        let code = s.split("EXIT=").nth(1).unwrap_or("").trim();
        let code = code.split_whitespace().next().unwrap_or("");
        code.parse().unwrap_or_else(|_| panic!("exit code in {s}"))
    }

    fn running(&self) -> bool {
        !self.screen().contains("EXIT=")
    }

    /// The idemtop process: the child of the pane's shell.
    fn pid(&self) -> i32 {
        let shell = self.var("pane_pid");
        // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                let ppid = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .to_string();
                (ppid == shell).then_some(pid)
            })
            .next()
            .expect("idemtop's pid")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

async fn seeded() -> String {
    let url = migrated_db().await;
    connect(&url)
        .await
        .execute(
            "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
             SELECT gen_random_uuid(), 'payment', '{}', 201, now() - interval '2 hours', now() - interval '1 hour' FROM generate_series(1, 12);
             INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
             SELECT gen_random_uuid(), 'get_balance', '{}', 200, now(), now() + interval '1 day' FROM generate_series(1, 30);",
        )
        .await
        .unwrap();
    url
}

#[tokio::test]
async fn q_quits_and_restores_the_terminal() {
    let url = seeded().await;
    let t = Tmux::new("q");
    t.start(&["--database-url", &url], &[]);
    let s = t.wait_for("● connected", Duration::from_secs(15));
    assert!(s.contains("live 30  expired 12"), "{s}");
    assert_eq!(
        t.var("alternate_on"),
        "1",
        "the dashboard uses the alternate screen"
    );
    t.keys(&["?"]);
    t.wait_for("show or hide this help", Duration::from_secs(3));
    t.keys(&["Escape"]);
    t.keys(&["c"]);
    t.wait_for("Delete 12 expired rows", Duration::from_secs(3));
    t.keys(&["n"]);
    t.wait_for("cancelled", Duration::from_secs(3));
    t.keys(&["Escape", "Escape"]);
    assert!(t.running(), "Esc never quits");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    assert_eq!(t.var("alternate_on"), "0", "alternate screen left");
    assert_eq!(t.var("cursor_flag"), "1", "cursor shown again");
}

#[tokio::test]
async fn cleanup_from_the_dashboard_deletes_the_expired_rows() {
    let url = seeded().await;
    let t = Tmux::new("cleanup");
    t.start(&["--database-url", &url], &[]);
    t.wait_for("● connected", Duration::from_secs(15));
    t.keys(&["c", "y"]);
    t.wait_for("cleanup done: deleted 12 rows", Duration::from_secs(10));
    t.wait_for("live 30  expired 0", Duration::from_secs(10));
    t.keys(&["5"]);
    t.wait_for("deleted 12 rows in", Duration::from_secs(3));
    t.keys(&["C-c"]);
    assert_eq!(t.wait_exit(), 0);
    assert_eq!(t.var("alternate_on"), "0");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_records")
        .fetch_one(&mut connect(&url).await)
        .await
        .unwrap();
    assert_eq!(n, 30);
}

#[tokio::test]
async fn sigterm_restores_the_terminal() {
    let url = seeded().await;
    let t = Tmux::new("term");
    t.start(&["--database-url", &url], &[]);
    t.wait_for("● connected", Duration::from_secs(15));
    // SAFETY: signalling the idemtop process this test started.
    unsafe {
        libc::kill(t.pid(), libc::SIGTERM);
    }
    assert_eq!(t.wait_exit(), 0);
    assert_eq!(t.var("alternate_on"), "0");
    assert_eq!(t.var("cursor_flag"), "1");
}

#[tokio::test]
async fn a_panic_restores_the_terminal_and_says_why() {
    let url = seeded().await;
    let t = Tmux::new("panic");
    t.start(&["--database-url", &url], &[("IDEMTOP_TEST_PANIC", "1")]);
    let code = t.wait_exit();
    assert_ne!(code, 0);
    assert_eq!(t.var("alternate_on"), "0", "restored after the panic");
    let s = t.screen();
    assert!(
        s.contains("IDEMTOP_TEST_PANIC is set: panicking on purpose"),
        "{s}"
    );
}

#[tokio::test]
async fn a_worker_panic_is_an_error_on_screen_and_the_dashboard_keeps_running() {
    let url = seeded().await;
    let t = Tmux::new("workerpanic");
    // Every worker task panics on purpose; the loop itself never does.
    t.start(
        &["--database-url", &url],
        &[("IDEMTOP_TEST_PANIC", "worker")],
    );
    let s = t.wait_for(
        "internal error: the refresh panicked",
        Duration::from_secs(15),
    );
    assert!(
        t.running(),
        "a task's panic does not end the dashboard:\n{s}"
    );
    assert_eq!(
        t.var("alternate_on"),
        "1",
        "the terminal is not restored under the running dashboard"
    );
    assert!(
        !s.contains("thread '") && !s.contains("panicked at"),
        "nothing is printed over the dashboard:\n{s}"
    );
    // Another request, another panic, another error on screen; keys still work.
    t.keys(&["2"]);
    t.wait_for("reading a page of records panicked", Duration::from_secs(5));
    t.keys(&["?"]);
    t.wait_for("show or hide this help", Duration::from_secs(3));
    t.keys(&["Escape", "q"]);
    assert_eq!(t.wait_exit(), 0);
    assert_eq!(
        t.var("alternate_on"),
        "0",
        "restored when the process exits"
    );
    assert_eq!(t.var("cursor_flag"), "1");
    let s = t.screen();
    assert!(
        s.contains("idemtop: a background task panicked (the dashboard kept running)"),
        "reported after the exit:\n{s}"
    );
}

#[test]
fn a_wrong_url_fails_before_the_screen_switches() {
    let t = Tmux::new("badurl");
    t.start(
        &["--database-url", "postgres://me:secret@127.0.0.1:1/app"],
        &[],
    );
    assert_eq!(t.wait_exit(), 1);
    let s = t.screen();
    assert!(
        s.contains("idemtop: cannot connect to me@127.0.0.1:1/app: connection refused"),
        "{s}"
    );
    assert!(!s.contains("secret"));
}

#[tokio::test]
async fn the_dashboard_reconnects_by_itself_after_a_server_restart() {
    // The throwaway servers run with synchronous_commit=off, so a crash right after a commit can
    // lose it (the WAL writer flushes up to 0.6 s later) and the restarted server would have no
    // table. This one commits durably: the migration and the row survive the crash.
    let mut pg = tokio::task::spawn_blocking(|| {
        TempPostgres::start_with(TempPgOptions::default().setting("synchronous_commit", "on"))
    })
    .await
    .unwrap()
    .unwrap();
    let url = pg.url();
    {
        let mut c = connect(&url).await;
        idemtop::db::migrate::run(&mut c, &idemtop::ident::Ident::new("public").unwrap())
            .await
            .unwrap();
        c.execute("INSERT INTO idempotency_records (request_id, operation, result_payload, expires_at) VALUES (gen_random_uuid(), 'op', '{}', now() + interval '1 hour')")
            .await
            .unwrap();
    }
    let t = Tmux::new("restart");
    t.start(&["--database-url", &url, "--interval", "1"], &[]);
    t.wait_for("● connected", Duration::from_secs(15));
    // The row is on screen before the crash, so the stale screen after it must still show it.
    t.wait_for("live 1", Duration::from_secs(15));
    pg.crash();
    let s = t.wait_for("disconnected — retrying", Duration::from_secs(15));
    assert!(s.contains("live 1"), "last good data stays on screen:\n{s}");
    assert!(s.contains("(stale, "), "{s}");
    pg.restart().unwrap();
    t.wait_for("● connected  every 1s", Duration::from_secs(40));
    // Two more refreshes from the restarted server, which kept the committed table and row.
    std::thread::sleep(Duration::from_millis(2500));
    let s = t.screen();
    assert!(s.contains("● connected  every 1s"), "{s}");
    assert!(s.contains("live 1"), "{s}");
    assert!(!s.contains("stale: ") && !s.contains("error: "), "{s}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
}

/// A stopped server is said at once: "disconnected — retrying in N s (attempt K): <error>"
/// within two refresh intervals, the last figures kept and marked stale; never "● connected".
#[tokio::test]
async fn a_stopped_server_shows_disconnected_within_two_intervals() {
    let mut pg = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let url = pg.url();
    {
        let mut c = connect(&url).await;
        idemtop::db::migrate::run(&mut c, &idemtop::ident::Ident::new("public").unwrap())
            .await
            .unwrap();
        c.execute("INSERT INTO idempotency_records (request_id, operation, result_payload, expires_at) VALUES (gen_random_uuid(), 'op', '{}', now() + interval '1 hour')")
            .await
            .unwrap();
    }
    let interval = Duration::from_secs(1);
    let t = Tmux::new("stopped");
    t.start(&["--database-url", &url, "--interval", "1"], &[]);
    t.wait_for("● connected", Duration::from_secs(15));
    let stopped = Instant::now();
    tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    // Two intervals from the stop, plus the time the screen takes to show it (a tick is
    // 200 ms; capturing the pane polls every 100 ms).
    let s = t.wait_for(
        "disconnected — retrying",
        2 * interval + Duration::from_secs(1),
    );
    let took = stopped.elapsed();
    assert!(
        took <= 2 * interval + Duration::from_secs(1),
        "took {took:?}:\n{s}"
    );
    assert!(!s.contains("● connected"), "{s}");
    assert!(s.contains("(attempt "), "{s}");
    assert!(s.contains("(stale, "), "the age of the last figures:\n{s}");
    assert!(s.contains("live 1"), "the last figures stay:\n{s}");
    assert!(!s.contains("health ok"), "{s}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
}

#[test]
fn the_demo_runs_traffic_and_removes_everything_on_quit() {
    let t = Tmux::new("demo");
    t.start(&["demo", "--seed-rows", "3000", "--rate", "50"], &[]);
    let s = t.wait_for("● connected", Duration::from_secs(60));
    assert!(s.contains("on demo postgres@127.0.0.1:"), "{s}");
    // Live traffic: the store's look-ups scan the primary key (a rate once two refreshes passed).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = t.screen();
        if s.lines().any(|l| {
            l.contains("idempotency_records_pkey") && !l.contains(" 0.0/s") && !l.contains(" —")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no look-up rate from the workload:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The server's data directory, to check it is gone afterwards.
    let dirs = |prefix: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect()
    };
    let pid = t.pid();
    let mine = dirs(&format!("idemtop-pg-{pid}-"));
    assert_eq!(mine.len(), 1, "one throwaway server: {mine:?}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    let s = t.screen();
    assert!(s.contains("server stopped and its files removed"), "{s}");
    assert!(
        s.contains("0 errors"),
        "the workload ran without errors:\n{s}"
    );
    assert!(!mine[0].exists(), "{} removed", mine[0].display());
}

/// A fleet (issue 16): three targets on two servers, one of them stopped. Without --target the
/// dashboard opens on the Overview: the dead target is down with its reason and the live ones
/// have figures; Enter opens a target's own screens, Esc comes back, q leaves the terminal
/// clean.
#[tokio::test]
async fn the_overview_of_a_fleet_drills_in_and_comes_back() {
    let alpha = seeded().await;
    let beta = migrated_db().await;
    let mut stopped = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
        .expect("start a server to stop");
    let dead_url = stopped.url().to_string();
    let stopped = tokio::task::spawn_blocking(move || {
        stopped.stop();
        stopped
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("idemtop-e2e-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[target]]\nname = \"alpha\"\nurl = \"{alpha}\"\n\n\
             [[target]]\nname = \"beta\"\nurl = \"{beta}\"\n\n\
             [[target]]\nname = \"zulu-stopped\"\nurl = \"{dead_url}\"\n"
        ),
    )
    .unwrap();
    let t = Tmux::new("fleet");
    t.start(&["--config", config.to_str().unwrap()], &[]);
    let s = t.wait_for("Targets (3)", Duration::from_secs(15));
    assert_eq!(t.var("alternate_on"), "1");
    assert!(s.contains("Overview"), "{s}");
    // Each target fills in when it answers: alpha's figures, and the stopped one down.
    t.wait_for("28.6%", Duration::from_secs(15));
    let s = t.wait_for("×: connection refused", Duration::from_secs(15));
    // Worst first: the stopped server's target on top, down with the reason.
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.contains("alpha") || l.contains("beta") || l.contains("zulu-stopped"))
        .collect();
    assert!(rows[0].contains("zulu-stopped"), "{s}");
    assert!(
        rows[0].contains("×: connection refused"),
        "down, attempts, why: {s}"
    );
    // The 80-column-and-up table: the live ones have their figures.
    let alpha_row = rows.iter().find(|l| l.contains("alpha ")).unwrap();
    assert!(alpha_row.contains("42"), "42 rows: {s}");
    assert!(alpha_row.contains("28.6%"), "12 of 42 expired: {s}");
    // The selection starts on the first row in alphabetical order (alpha) and follows it; the
    // line under the table tells the selected target whole.
    assert!(s.contains("alpha  on postgres@127.0.0.1:"), "{s}");
    t.keys(&["k"]);
    t.wait_for("connection refused", Duration::from_secs(3));
    t.keys(&["j", "Enter"]);
    let s = t.wait_for("● connected", Duration::from_secs(15));
    // The header names the target (it may wrap between "target" and the name).
    assert!(s.contains("alpha, postgres@127.0.0.1:"), "{s}");
    t.wait_for("live 30  expired 12", Duration::from_secs(10));
    assert!(
        t.screen().contains("Esc overview"),
        "the footer says how to come back"
    );
    // Esc closes the help first, then comes back.
    t.keys(&["?"]);
    t.wait_for("back to the Overview", Duration::from_secs(3));
    t.keys(&["Escape"]);
    assert!(t.screen().contains("live 30  expired 12"));
    t.keys(&["Escape"]);
    t.wait_for("Targets (3)", Duration::from_secs(3));
    // Into the dead one: its dashboard says disconnected; Backspace comes back.
    t.keys(&["k", "Enter"]);
    t.wait_for("disconnected", Duration::from_secs(10));
    t.keys(&["BSpace"]);
    t.wait_for("Targets (3)", Duration::from_secs(3));
    assert!(t.running());
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    assert_eq!(t.var("alternate_on"), "0", "alternate screen left");
    assert_eq!(t.var("cursor_flag"), "1", "cursor shown again");
    drop(stopped);
    let _ = std::fs::remove_dir_all(&dir);
}
