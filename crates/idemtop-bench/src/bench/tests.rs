//! Unit tests of the benchmark.

use super::*;

#[test]
fn stats_percentiles() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    let s = Stats::of(&v);
    assert_eq!(s.n, 100);
    assert_eq!(s.median_ms, 50.5);
    assert_eq!(s.p95_ms, 95.0);
    assert_eq!(s.p99_ms, 99.0);
    assert_eq!(s.max_ms, 100.0);
    assert_eq!(Stats::of(&[]).n, 0);
    assert_eq!(Stats::of(&[3.0, 1.0, 2.0]).median_ms, 2.0);
}

#[test]
fn proc_stat_of_self_parses() {
    let me = std::process::id() as i32;
    assert!(proc_ticks(me).is_some());
    assert!(proc_cpu_ns(me).is_some());
    assert!(status_kb(me as u32, "VmRSS:").unwrap() > 0);
}

#[test]
fn settings_override_the_unsafe_defaults() {
    let s = server_settings(10_000_000, true);
    let get = |k: &str| {
        s.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("fsync"), Some("on"));
    let sb = format!("{}MB", shared_buffers_mb(machine_memory_gb()));
    assert_eq!(get("shared_buffers"), Some(sb.as_str()));
    assert_eq!(shared_buffers_mb(23.4), 5990);
    assert_eq!(shared_buffers_mb(0.5), 256);
    assert_eq!(shared_buffers_mb(256.0), 8192);
    assert_eq!(get("shared_preload_libraries"), Some("pg_stat_statements"));
}
