//! AFL++ target `audit_verify`: see charter_fuzz_targets::audit_verify.
fn main() {
    afl::fuzz!(|data: &[u8]| charter_fuzz_targets::audit_verify(data));
}
