//! The README's Rust example: supervise a small HTTP server, watch its events, read its log.
//!
//! ```sh
//! cargo run -p gosuv --example quickstart
//! ```

use std::time::Duration;

use gosuv::{EventNotice, ProgramConfig, Stream, Supervisor, SupervisorOptions};

#[tokio::main]
async fn main() -> gosuv::Result<()> {
    let dir = std::env::temp_dir().join("gosuv-quickstart");
    let sup = Supervisor::new(SupervisorOptions::new(&dir))?; // logs in <dir>/logs
    let mut events = sup.subscribe();

    let mut web = ProgramConfig::shell("web", "exec python3 -m http.server 8765 --bind 127.0.0.1");
    web.start_seconds = 1;
    sup.add(web).await?;
    let status = sup.start("web", Some(Duration::from_secs(5))).await?; // waits for `running`
    println!("web is {} as pid {:?}", status.state, status.pid);

    while let Ok(Some(EventNotice::Changed(e))) =
        tokio::time::timeout(Duration::from_millis(100), events.recv()).await
    {
        println!("event: {} {} -> {}", e.program, e.from, e.to);
    }
    let stats = sup.stats("web").await?;
    println!(
        "cpu {:.1} %, rss {} KiB",
        stats.cpu_percent,
        stats.rss_bytes / 1024
    );

    let out = sup.tail("web", Stream::Stdout, 4096)?; // the last bytes it printed
    print!("{}", String::from_utf8_lossy(&out));

    sup.shutdown().await; // stops every program concurrently, waits until all are gone
    Ok(())
}
