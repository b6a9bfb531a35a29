//! `idemtop-bench --quick` end to end (ignored here: it takes about two and a half minutes and
//! needs tmux; `.ci/run` runs `idemtop-bench --quick` on the release build after the tests).
//! Run:
//! cargo build --release && cargo test --release -p idemtop-bench --test smoke -- --ignored --nocapture
//! BENCH_ROWS=1000000 runs the default size through the same path; BENCH_LAYOUT=random and
//! BENCH_SKIP_CLEANUP=1 pass --layout random and --skip-cleanup.

/// The `idemtop` binary beside this test's target directory, when it was built (the bench then
/// measures the real dashboard in tmux; otherwise in process).
fn idemtop_bin() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("idemtop");
    bin.is_file().then_some(bin)
}

#[test]
#[ignore]
fn bench_report_is_complete_at_a_small_size() {
    let rows = std::env::var("BENCH_ROWS").unwrap_or_else(|_| "30000".into());
    let json = std::env::temp_dir().join(format!("idemtop-bench-{}.json", std::process::id()));
    let json_s = json.display().to_string();
    let mut argv: Vec<String> = vec![
        "--quick".into(),
        "--rows".into(),
        rows.clone(),
        "--json".into(),
        json_s.clone(),
    ];
    if let Some(bin) = idemtop_bin() {
        argv.extend(["--dashboard-bin".into(), bin.display().to_string()]);
    }
    let layout = std::env::var("BENCH_LAYOUT").unwrap_or_else(|_| "time".into());
    argv.extend(["--layout".into(), layout]);
    if std::env::var_os("BENCH_SKIP_CLEANUP").is_some() {
        argv.push("--skip-cleanup".into());
    }
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_idemtop-bench"))
        .args(&argv)
        .status()
        .expect("idemtop-bench runs");
    assert!(status.success(), "idemtop-bench failed: {status}");

    let text = std::fs::read_to_string(&json).expect("the JSON report");
    let _ = std::fs::remove_file(&json);
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["data"]["rows"].as_i64().unwrap().to_string(), rows);
    let share = r["data"]["expired_share"].as_f64().unwrap();
    assert!((0.5..0.7).contains(&share), "expired share {share}");
    for side in ["guide", "idemtop"] {
        assert!(r["refresh"][side]["server"]["median_ms"].as_f64().unwrap() > 0.0);
        assert!(r["refresh"][side]["cpu_ms"].as_f64().is_some());
    }
    assert!(r["refresh"]["ratio_server"].as_f64().unwrap() > 1.0);
    let pages = r["paging"]["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 9, "{pages:?}");
    assert!(r["paging"]["keyset_matches_offset"].as_bool().unwrap());
    assert!(r["dashboard_memory"]["rss_max_kb"].as_u64().unwrap() > 0);
    assert!(r["ui_stall"]["keys_during_stall"].as_u64().unwrap() > 10);
    assert!(r["ui_stall"]["max_refreshes_in_flight"].as_u64().unwrap() <= 1);
    if std::env::var_os("BENCH_SKIP_CLEANUP").is_none() {
        let c = &r["cleanup"];
        let expired = r["data"]["expired"].as_u64().unwrap();
        for side in ["guide", "idemtop"] {
            let deleted = c[side]["deleted"].as_u64().unwrap();
            // Rows expire while the bench runs: at least the expired rows of the data set go.
            assert!(deleted >= expired, "{side}: deleted {deleted} < {expired}");
            assert!(c[side]["during"]["n"].as_u64().unwrap() > 0);
            assert!(c[side]["idle"]["p99_ms"].as_f64().unwrap() > 0.0);
            assert!(c[side]["wal_bytes"].as_i64().unwrap() > 0);
        }
    }
    // Every comparison ran in rounds, and the steady-state windows measured each tool.
    assert_eq!(r["refresh"]["rounds"].as_array().unwrap().len(), 3);
    assert!(r["refresh"]["amortised_cpu_ms"].as_f64().unwrap() > 0.0);
    for tool in r["watch"]["tools"].as_array().unwrap() {
        assert_eq!(tool["windows"].as_array().unwrap().len(), 3, "{tool}");
    }
    if std::env::var_os("BENCH_SKIP_CLEANUP").is_none() {
        assert_eq!(r["cleanup"]["runs"].as_array().unwrap().len(), 3);
    }
    let targets = r["targets"].as_array().unwrap();
    assert!(targets.len() >= 10);
}
