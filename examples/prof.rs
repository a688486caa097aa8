use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let root = charter::contract::yaml::parse(&text).unwrap().unwrap();
        let a = t.elapsed();
        let doc = root.to_json();
        let b = t.elapsed();
        let diags = charter::contract::structure::check(&doc);
        let c = t.elapsed();
        let raw: charter::contract::raw::Contract = serde_json::from_value(doc).unwrap();
        let d = t.elapsed();
        let model = charter::model::lower(&raw).unwrap();
        let e = t.elapsed();
        let source = charter::diagnostic::Source::new("x", text.clone());
        let _ = charter::lint::lint(&model, &source, "2026-11-23".parse().unwrap());
        let f = t.elapsed();
        println!(
            "yaml {a:?} json {:?} structure {:?} ({}) decode {:?} lower {:?} lint {:?}",
            b - a,
            c - b,
            diags.len(),
            d - c,
            e - d,
            f - e
        );
    }
}
