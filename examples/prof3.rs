use serde_saphyr::granit_parser::Parser;
use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0;
        for ev in Parser::new_from_str(&text) {
            let _ = ev.unwrap();
            n += 1;
        }
        println!("events {n} in {:?}", t.elapsed());
    }
}
