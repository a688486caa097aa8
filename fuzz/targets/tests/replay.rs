//! Replays every seed and every saved finding through its target, so a parser
//! bug the fuzzer found once stays fixed: `fuzz/regressions/TARGET/` holds the
//! inputs that crashed or hung (scripts/fuzz-parsers copies them there), and
//! the seeds are the corpora the fuzzer starts from.

use std::path::{Path, PathBuf};

use charter_fuzz_targets::{DIFF_SEPARATOR, TARGETS};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    files.sort();
    files
}

/// The inputs the fuzzer starts from, per target (what `scripts/fuzz-parsers` copies).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let root = root();
    let read = |p: &PathBuf| std::fs::read(p).unwrap();
    match target {
        "contract" => files(&root.join("specs"), Some("yaml"))
            .into_iter()
            .chain(files(&root.join("specs/invalid"), Some("yaml")))
            .map(|p| read(&p))
            .collect(),
        "diff" => {
            let base = read(&root.join("tests/diff/base.yaml"));
            let mut pairs = Vec::new();
            for case in std::fs::read_dir(root.join("tests/diff"))
                .unwrap()
                .filter_map(Result::ok)
            {
                let new = case.path().join("new.yaml");
                if new.exists() {
                    pairs.push([base.as_slice(), DIFF_SEPARATOR, &read(&new)].concat());
                }
            }
            pairs
        }
        "openapi" => files(&root.join("tests/fixtures/openapi"), None)
            .iter()
            .map(read)
            .collect(),
        _ => files(&root.join("fuzz/seeds").join(target), None)
            .iter()
            .map(read)
            .collect(),
    }
}

#[test]
fn every_seed_and_every_saved_finding_runs_clean() {
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "no seeds for `{name}`");
        let findings = files(&root().join("fuzz/regressions").join(name), None);
        for input in seeds
            .iter()
            .cloned()
            .chain(findings.iter().map(|p| std::fs::read(p).unwrap()))
        {
            target(&input);
        }
        println!("{name}: {} seeds, {} saved findings", seeds.len(), findings.len());
    }
}

/// `scripts/fuzz-parsers` writes the corpora through this test
/// (`CHARTER_FUZZ_SEEDS=DIR cargo test -p charter-fuzz-targets -- --ignored write_seeds`),
/// so the seeds are defined once.
#[test]
#[ignore = "run by scripts/fuzz-parsers"]
fn write_seeds() {
    let out = PathBuf::from(std::env::var("CHARTER_FUZZ_SEEDS").expect("CHARTER_FUZZ_SEEDS names a directory"));
    for (name, _) in TARGETS {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds(name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), seed).unwrap();
        }
    }
}
