//! Tells the tests how optimized the build is: the soak's CPU bound (tests/soak.rs) holds
//! for optimized code, and is looser for an unoptimized test build.

fn main() {
    let level = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-env=GOSUV_BUILD_OPT_LEVEL={level}");
    println!("cargo:rerun-if-changed=build.rs");
}
