//! AFL++ target `contract`: see charter_fuzz_targets::contract.
fn main() {
    afl::fuzz!(|data: &[u8]| charter_fuzz_targets::contract(data));
}
