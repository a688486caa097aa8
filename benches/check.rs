//! `charter check` on a generated 200-tool contract: whole-process wall time
//! (what a user and CI wait for) and in-process time per stage.
//! Run with `cargo bench --bench check`; figures go in BENCHMARKS.md.

mod common;

use std::process::Command;
use std::time::Instant;

use common::{contract, report};

const TOOLS: usize = 200;
const RUNS: usize = 30;

fn main() {
    let text = contract(TOOLS);
    // `cargo bench --bench check -- --write FILE`: only write the contract, to time or profile it by hand.
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--write") {
        let path = args.get(at + 1).expect("--write FILE");
        std::fs::write(path, &text).unwrap();
        return;
    }
    let dir = std::env::temp_dir().join(format!("charter-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.yaml");
    std::fs::write(&path, &text).unwrap();
    println!(
        "contract: {TOOLS} tools, {} bytes, {} lines; {RUNS} runs each",
        text.len(),
        text.lines().count()
    );

    let binary = env!("CARGO_BIN_EXE_charter");
    let mut process = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new(binary).arg("check").arg(&path).output().unwrap();
        process.push(start.elapsed());
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    }
    report("charter check (whole process)", process);

    let today: jiff::civil::Date = "2026-11-23".parse().unwrap();
    let mut parse = Vec::new();
    let mut total = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut source = charter::diagnostic::Source::new("bench.yaml", text.clone());
        let raw = charter::contract::parse(&mut source).unwrap();
        parse.push(start.elapsed());
        let model = charter::model::lower(&raw).unwrap();
        let _ = charter::lint::lint(&model, &source, today);
        total.push(start.elapsed());
    }
    report("parse (in process)", parse);
    report("parse + model + lint (in process)", total);
    let _ = std::fs::remove_dir_all(&dir);
}
