//! AFL++ target `diff`: see charter_fuzz_targets::diff.
fn main() {
    afl::fuzz!(|data: &[u8]| charter_fuzz_targets::diff(data));
}
