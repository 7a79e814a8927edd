//! Gives the shared library its SONAME, `libgosuv.so.<major>`: programs linked against it
//! record that name, so an install can keep several major versions side by side
//! (`install.sh` makes the `libgosuv.so.<major>` and `libgosuv.so` links).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    if !major.is_empty() && matches!(os.as_str(), "linux" | "android" | "freebsd" | "netbsd") {
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,libgosuv.so.{major}");
    }
}
