//! `gosuv`: see `gosuv --help`.

use clap::Parser;

fn main() {
    let cli = gosuv_bin::cli::Cli::parse();
    if let Err(e) = gosuv_bin::commands::run(cli) {
        eprintln!("gosuv: {}", e.message);
        std::process::exit(e.code);
    }
}
