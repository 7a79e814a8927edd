//! `include/gosuv.hpp`, the C++ wrapper, calls every function that `include/gosuv.h`
//! declares, except those it names as deliberately left out.

use std::collections::BTreeSet;
use std::path::Path;

/// Functions of gosuv.h the C++ wrapper leaves out on purpose, each named in gosuv.hpp's
/// opening comment.
const NOT_WRAPPED: &[&str] = &[
    // A debugging aid for C programs (it panics inside Rust on purpose).
    "gosuv_debug_panic",
];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Whether `b` may be part of a C identifier.
fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every `gosuv_*` identifier directly followed by `(` in `text`, outside `//` comments:
/// in gosuv.h the declared functions (a callback typedef's name is followed by `)`), in
/// gosuv.hpp the functions it calls or takes the address of with `&name(`... or `&name,`.
fn called_names(text: &str, with_address: bool) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let trimmed = code.trim_start();
        if trimmed.starts_with('*') || trimmed.starts_with("/*") {
            continue;
        }
        let bytes = code.as_bytes();
        let mut i = 0;
        while let Some(found) = code[i..].find("gosuv_") {
            let start = i + found;
            let mut end = start;
            while end < bytes.len() && ident_byte(bytes[end]) {
                end += 1;
            }
            let preceded = start > 0 && ident_byte(bytes[start - 1]);
            let next = bytes.get(end).copied();
            if !preceded && (next == Some(b'(') || (with_address && next == Some(b','))) {
                names.insert(code[start..end].to_string());
            }
            i = end;
        }
    }
    names
}

#[test]
fn the_cpp_header_wraps_every_c_function() {
    let c_header = read("include/gosuv.h");
    let cpp_header = read("include/gosuv.hpp");
    let declared = called_names(&c_header, false);
    assert!(
        declared.len() > 20 && declared.contains("gosuv_supervisor_new"),
        "found too few functions in include/gosuv.h: {declared:?}"
    );
    let used = called_names(&cpp_header, true);

    let missing: Vec<&String> = declared
        .iter()
        .filter(|name| !used.contains(*name) && !NOT_WRAPPED.contains(&name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "include/gosuv.hpp does not wrap these functions of include/gosuv.h: {missing:?}\n\
         wrap them, or list them in NOT_WRAPPED (tests/cpp_header.rs) and in gosuv.hpp's \
         opening comment with the reason"
    );
    for name in NOT_WRAPPED {
        assert!(
            declared.contains(*name),
            "{name} is listed in NOT_WRAPPED but gosuv.h no longer declares it"
        );
        let opening = cpp_header.split("#ifndef").next().unwrap_or("");
        assert!(
            opening.contains(name),
            "gosuv.hpp's opening comment does not say that it leaves out {name}"
        );
    }
}
