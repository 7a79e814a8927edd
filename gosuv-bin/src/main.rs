fn main() {
    println!("gosuv {}", env!("CARGO_PKG_VERSION"));
}
