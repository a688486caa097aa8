use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let a = t.elapsed();
        let n: serde_saphyr::Spanned<serde_json::Value> = serde_saphyr::from_str(&text).unwrap();
        let b = t.elapsed();
        println!(
            "plain {a:?} spanned-root {:?} {}",
            b - a,
            v.is_object() && n.value.is_object()
        );
    }
}
