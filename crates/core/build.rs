//! Embeds the notification templates (`templates/<kind>.<lang>.txt`, `templates/common.<lang>.txt`) so the
//! binary carries them; a missing translation is found by the catalogue's tests, and falls back to English.

use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("templates");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("crates/core/templates is readable")
        .map(|e| e.expect("directory entry").file_name().into_string().expect("UTF-8 file name"))
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    let mut table = String::from("/// (name without `.txt`, text) of every template file, sorted by name.\n");
    table.push_str("pub(crate) static TEMPLATE_FILES: &[(&str, &str)] = &[\n");
    for name in &names {
        let path = dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        table.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            name.trim_end_matches(".txt"),
            path.display().to_string()
        ));
    }
    table.push_str("];\n");
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("templates.rs");
    fs::write(out, table).expect("OUT_DIR is writable");
}
