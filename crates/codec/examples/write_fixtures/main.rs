//! Writes the frozen format fixtures: `cargo run -p archipel-codec --example write_fixtures -- DIR`.
//! Only for a new format version, into a new directory; see tests/codec/fixtures.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inputs;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: write_fixtures DIR");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in inputs::encode_all(&inputs::inputs()) {
        let path = std::path::Path::new(&dir).join(&name);
        std::fs::write(&path, bytes).unwrap();
        println!("wrote {}", path.display());
    }
}
