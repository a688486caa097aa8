//! AFL++ target `http_body`: see charter_fuzz_targets::http_body.
fn main() {
    afl::fuzz!(|data: &[u8]| charter_fuzz_targets::http_body(data));
}
