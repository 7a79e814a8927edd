//! `gosuv`: see `gosuv --help`.

use clap::Parser;

fn main() {
    let cli = match gosuv_bin::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // A usage error exits 1 like every other failure (clap's own code is 2); help
            // and version, printed to stdout, exit 0.
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if let Err(e) = gosuv_bin::commands::run(cli) {
        eprintln!("gosuv: {}", e.message);
        std::process::exit(e.code);
    }
}
