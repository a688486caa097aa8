//! AFL++ target `schema_subset`: see charter_fuzz_targets::schema_subset.
fn main() {
    afl::fuzz!(|data: &[u8]| charter_fuzz_targets::schema_subset(data));
}
