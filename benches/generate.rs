//! `charter generate` on a 50-tool contract, whole process (what a user and CI
//! wait for): a first generation into an empty directory, a regeneration with
//! nothing to change, and `--check`. Run with `cargo bench --bench generate`;
//! figures go in BENCHMARKS.md.

mod common;

use std::process::Command;
use std::time::Instant;

use common::{contract, report};

const TOOLS: usize = 50;
const RUNS: usize = 20;

fn main() {
    let text = contract(TOOLS);
    let dir = std::env::temp_dir().join(format!("charter-bench-generate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.yaml");
    std::fs::write(&path, &text).unwrap();
    println!("contract: {TOOLS} tools, {} bytes; {RUNS} runs each", text.len());
    let binary = env!("CARGO_BIN_EXE_charter");
    let run = |args: &[&str]| {
        let start = Instant::now();
        let out = Command::new(binary).args(args).output().unwrap();
        let elapsed = start.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        elapsed
    };
    let contract = path.to_str().unwrap();
    let (mut fresh, mut again, mut check) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        let out = dir.join(format!("crate-{i}"));
        let out = out.to_str().unwrap();
        fresh.push(run(&["generate", contract, "--out", out]));
        again.push(run(&["generate", contract, "--out", out]));
        check.push(run(&["generate", contract, "--out", out, "--check"]));
    }
    report("generate into an empty directory", fresh);
    report("generate again (nothing changes)", again);
    report("generate --check", check);
    let files = std::fs::read_dir(dir.join("crate-0/src/generated")).unwrap().count();
    let types = std::fs::metadata(dir.join("crate-0/src/generated/types.rs"))
        .unwrap()
        .len();
    println!("output: {files} files in src/generated, types.rs {types} bytes");
    let _ = std::fs::remove_dir_all(&dir);
}
