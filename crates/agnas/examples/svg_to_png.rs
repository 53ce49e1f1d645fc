//! Renders agnas's SVG pictures to PNG for a look: `cargo run --release -p agnas --example svg_to_png -- a.svg [b.svg …]`
//! writes `a.png` beside each input (resvg with the system fonts; a development aid, not part of the binary).
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opt = resvg::usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    for arg in std::env::args().skip(1) {
        let path = Path::new(&arg);
        let tree = resvg::usvg::Tree::from_str(&std::fs::read_to_string(path)?, &opt)?;
        let size = tree.size().to_int_size();
        let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("empty picture")?;
        resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
        let out = path.with_extension("png");
        pixmap.save_png(&out)?;
        println!("{}", out.display());
    }
    Ok(())
}
