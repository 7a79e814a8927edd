//! `include/gosuv.h` is what cbindgen makes of the sources: regenerates it and fails on any
//! difference. `GOSUV_UPDATE_HEADER=1` writes the new header instead.

use std::path::Path;

#[test]
fn header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("gosuv-ffi/cbindgen.toml is readable and valid");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen can read gosuv-ffi/src");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");

    let header = crate_dir.join("../include/gosuv.h");
    if std::env::var_os("GOSUV_UPDATE_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(&header, &fresh).expect("include/gosuv.h is writable");
        return;
    }
    let checked_in = std::fs::read_to_string(&header).unwrap_or_default();
    if checked_in != fresh {
        let line = checked_in
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || checked_in.lines().count().min(fresh.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "include/gosuv.h is stale (first difference at line {line}): regenerate it with\n  \
             GOSUV_UPDATE_HEADER=1 cargo test -p gosuv-ffi --test header\nand commit it"
        );
    }
}
