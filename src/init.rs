//! `charter init`: a commented starter contract that passes `charter check`.

use heck::ToShoutySnakeCase;

const TEMPLATE: &str = include_str!("../templates/init.yaml.j2");

/// Renders the starter contract for a server name (validated by the caller's check).
pub fn starter(name: &str, today: jiff::civil::Date) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.add_template("init.yaml", TEMPLATE)?;
    let review = today.checked_add(jiff::Span::new().months(6)).unwrap_or(today);
    env.get_template("init.yaml")?.render(minijinja::context! {
        name => name,
        env => name.to_shouty_snake_case(),
        review => review.to_string(),
        file => format!("{name}.yaml"),
    })
}
