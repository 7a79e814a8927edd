//! The terminal while `top` runs: raw mode and the alternate screen, given back on every way
//! out. A [`TerminalGuard`] restores it when dropped (a normal quit, an error, a signal the
//! loop handles), and a panic hook restores it before the panic message is printed, so the
//! message is readable and the shell is usable.

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

/// Whether the terminal is in `top`'s mode now (what [`restore`] undoes).
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Holds the terminal in raw mode on the alternate screen; gives it back when dropped.
#[derive(Debug)]
pub struct TerminalGuard(());

impl TerminalGuard {
    /// Switches the terminal to raw mode and the alternate screen, and returns a ratatui
    /// terminal that draws on it.
    ///
    /// # Errors
    /// The terminal refused a mode (what was done is undone).
    pub fn take() -> io::Result<(TerminalGuard, Terminal<CrosstermBackend<Stdout>>)> {
        install_panic_hook();
        enable_raw_mode()?;
        TAKEN.store(true, Ordering::SeqCst);
        let guard = TerminalGuard(());
        execute!(io::stdout(), EnterAlternateScreen, Hide)?;
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok((guard, terminal))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor and turns raw mode off, once, whoever
/// calls it first; errors are ignored (the terminal may be gone: SIGHUP).
pub fn restore() {
    if TAKEN.swap(false, Ordering::SeqCst) {
        let mut out = io::stdout();
        let _ = execute!(out, LeaveAlternateScreen, Show);
        let _ = out.flush();
        let _ = disable_raw_mode();
    }
}

/// A panic anywhere in `top` (the drawing thread or a task talking to the server) restores
/// the terminal, prints the panic as usual, and ends the process: a view half drawn over a
/// restored terminal would help nobody.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let was_taken = TAKEN.load(Ordering::SeqCst);
            restore();
            previous(info);
            if was_taken {
                std::process::exit(101);
            }
        }));
    });
}
