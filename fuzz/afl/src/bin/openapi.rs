//! AFL++ target `openapi`: see charter_fuzz_targets::openapi.
fn main() {
    afl::fuzz!(|data: &[u8]| charter_fuzz_targets::openapi(data));
}
