//! `gosuv top`: a live full-screen view of the server's programs, like `pm2 monit`.
//!
//! Two sides meet in one channel of messages (`feed::Msg`): a small tokio runtime whose
//! tasks read the keys and talk to the server through the CLI's [`Client`] (the list once a
//! second, the state events, the selected program's output, actions); and this thread,
//! which owns the terminal and the [`app::App`], applies each message, and draws. It sleeps
//! until a message comes: a frame is drawn only after something changed, and all the
//! messages waiting then (a burst of events) make one frame. Writing to the terminal
//! happens here, never on the runtime.

#[doc(hidden)]
pub mod app;
mod feed;
#[doc(hidden)]
pub mod output;
mod signals;
mod terminal;
#[doc(hidden)]
pub mod ui;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyEventKind};
use gosuv::Stream;
use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use self::app::{App, Effect, Follow};
use self::feed::{Msg, Part, Tx};
use crate::client::Client;
use crate::commands::StatusRow;
use crate::{CliResult, Failure};

/// The shortest time between two frames: what comes within it is drawn together.
const FRAME: Duration = Duration::from_millis(16);

/// How long the selection must stay on a program before its output is followed (scrolling
/// through a long list opens no stream per row passed).
const SETTLE: Duration = Duration::from_millis(120);

/// The most messages applied before a frame is drawn (a flood of output cannot hold the
/// screen still).
const BATCH: usize = 4096;

/// Runs `gosuv top` with the client settings of `conf` until `q`, Ctrl-C or a signal.
///
/// # Errors
/// Standard output is not a terminal, the server does not answer at the start, the terminal
/// fails; a signal ends it with 128 + its number.
pub fn run(conf: &Path) -> CliResult {
    if !std::io::stdout().is_terminal() {
        return Err(Failure::new(
            "top draws a live view and needs a terminal, but its output is not one: \
             use 'gosuv status' (or 'gosuv status --json') in scripts and pipes",
        ));
    }
    let (_, client) = crate::commands::lenient_client(conf)?;
    let client = Arc::new(client);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gosuv-top")
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start top's runtime: {e}")))?;
    let outcome = start(&rt, &client);
    // The tasks hold the client too: they are gone once the runtime is, and the client (which
    // owns a runtime of its own) is dropped here, outside any runtime.
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(client);
    outcome
}

fn start(rt: &Runtime, client: &Arc<Client>) -> CliResult {
    // A server that is not there is reported like by every other command, before the
    // screen is taken; later, top waits for it to come back.
    // Ctrl-C in the shell abandons it; a server that accepts and never answers is given
    // up on like a list later is.
    let body = rt
        .block_on(crate::interrupt::cancellable(async {
            // Made inside the runtime: a timer needs one.
            tokio::time::timeout(
                feed::LIST_TIMEOUT,
                client.get_bytes_async(&crate::commands::status_list_path()),
            )
            .await
        }))
        .map_err(|_| Failure::new(crate::client::INTERRUPTED))?
        .map_err(|_| {
            Failure::new(format!(
                "gosuv at {} did not answer within {} s",
                client.url(),
                feed::LIST_TIMEOUT.as_secs()
            ))
        })??;
    let first: Vec<StatusRow> = serde_json::from_slice(&body).map_err(|e| {
        Failure::new(format!(
            "gosuv at {} sent a program list top cannot read: {e}",
            client.url()
        ))
    })?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Installed before the terminal is taken: from then on these signals give it back.
    // The process's own handlers are back when `watch` is dropped, on the way out.
    let watch = signals::Watch::install()
        .map_err(|e| Failure::new(format!("cannot watch for signals: {e}")))?;
    let first_signal = {
        let _runtime = rt.enter();
        watch
            .first()
            .map_err(|e| Failure::new(format!("cannot watch for signals: {e}")))?
    };
    let signal_tx = tx.clone();
    rt.spawn(async move {
        let sig = first_signal.await;
        let _ = signal_tx.send(Msg::Signal(sig));
    });
    let mut app = App::new(client.url());
    app.apply_programs(first, 0);
    let (guard, mut term) = terminal::TerminalGuard::take()
        .map_err(|e| Failure::new(format!("cannot take over the terminal: {e}")))?;
    rt.spawn(feed::keys(tx.clone()));
    let events = Arc::new(AtomicU64::new(0));
    rt.spawn(feed::programs(client.clone(), tx.clone(), events.clone()));
    rt.spawn(feed::events(client.clone(), tx.clone(), events));
    let mut view = View {
        rt,
        client,
        tx,
        follower: Follower::default(),
        credit: Arc::new(feed::Credit::default()),
        redraw: false,
    };
    let outcome = view.run(&rx, &mut app, &mut term);
    view.follower.stop();
    drop(term);
    drop(guard);
    outcome
}

/// The output pane's stream: which program and stream it follows, and the task doing it.
#[derive(Default)]
struct Follower {
    /// Numbers each follow, so output of one stopped a moment ago is not taken for the new.
    id: u64,
    target: Option<(String, Stream)>,
    task: Option<JoinHandle<()>>,
    /// What the selection asks for, and since when (see [`SETTLE`]).
    wanted: Option<(Option<(String, Stream)>, Instant)>,
}

impl Follower {
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// When the pending switch is due, if one is pending.
    fn due(&self) -> Option<Instant> {
        self.wanted.as_ref().map(|(_, since)| *since + SETTLE)
    }
}

/// The drawing loop and what it needs to start tasks.
struct View<'a> {
    rt: &'a Runtime,
    client: &'a Arc<Client>,
    tx: Tx,
    follower: Follower,
    /// The output in flight from the follow to this loop.
    credit: Arc<feed::Credit>,
    /// The next frame draws every cell (Ctrl-L).
    redraw: bool,
}

impl View<'_> {
    fn run<B: Backend>(
        &mut self,
        rx: &Receiver<Msg>,
        app: &mut App,
        term: &mut Terminal<B>,
    ) -> CliResult
    where
        B::Error: std::fmt::Display,
    {
        let mut last_frame: Option<Instant> = None;
        loop {
            let now = Instant::now();
            self.follow(app, now);
            let frame_due = last_frame.map_or(now, |t| t + FRAME);
            if app.dirty && now >= frame_due {
                if std::mem::take(&mut self.redraw) {
                    term.clear()
                        .map_err(|e| Failure::new(format!("cannot draw on the terminal: {e}")))?;
                }
                term.draw(|f| ui::draw(f, app))
                    .map_err(|e| Failure::new(format!("cannot draw on the terminal: {e}")))?;
                app.dirty = false;
                last_frame = Some(now);
            }
            let wake = [
                app.dirty.then(|| last_frame.map_or(now, |t| t + FRAME)),
                self.follower.due(),
            ]
            .into_iter()
            .flatten()
            .min();
            let first = match wake {
                None => rx.recv().ok(),
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => None,
                },
            };
            let Some(first) = first else {
                return Err(Failure::new("top's message channel closed"));
            };
            if let Some(end) = self.apply(first, app) {
                return end;
            }
            for msg in rx.try_iter().take(BATCH) {
                if let Some(end) = self.apply(msg, app) {
                    return end;
                }
            }
        }
    }

    /// Follows what the selection asks for, once it has settled.
    fn follow(&mut self, app: &mut App, now: Instant) {
        let want = app.log_target();
        let f = &mut self.follower;
        if want == f.target {
            f.wanted = None;
            return;
        }
        let since = match &f.wanted {
            Some((w, since)) if *w == want => *since,
            _ => {
                f.wanted = Some((want.clone(), now));
                now
            }
        };
        // The first program followed needs no settling.
        if f.target.is_some() && now < since + SETTLE {
            return;
        }
        f.stop();
        f.wanted = None;
        f.id += 1;
        f.target = want.clone();
        app.output.clear();
        app.output_of = want.clone();
        app.follow = if want.is_some() {
            Follow::Live
        } else {
            Follow::Idle
        };
        app.dirty = true;
        self.credit.reset();
        if let Some((name, stream)) = want {
            f.task = Some(self.rt.spawn(feed::output(
                self.client.clone(),
                self.tx.clone(),
                self.credit.clone(),
                f.id,
                name,
                stream,
            )));
        }
    }

    /// Applies one message; `Some` ends `top` with that outcome.
    fn apply(&mut self, msg: Msg, app: &mut App) -> Option<CliResult> {
        match msg {
            Msg::Term(Event::Key(key)) if key.kind != KeyEventKind::Release => match app.key(key) {
                Effect::None => {}
                Effect::Redraw => self.redraw = true,
                Effect::Quit => return Some(Ok(())),
                Effect::Act(name, action) => {
                    self.rt.spawn(feed::act(
                        self.client.clone(),
                        self.tx.clone(),
                        name,
                        action,
                    ));
                }
            },
            Msg::Term(Event::Resize(..)) => app.dirty = true,
            Msg::Term(_) => {}
            Msg::TermGone(why) => {
                return Some(Err(Failure::new(format!(
                    "cannot read the terminal any more: {why}"
                ))))
            }
            Msg::Programs { seq, list } => match list {
                Ok(rows) => app.apply_programs(rows, seq),
                Err(why) => app.list_missed(why),
            },
            Msg::State(seq, ev) => app.apply_event(ev, seq),
            Msg::EventsDown(why) => app.link_down(why),
            Msg::Output(id, part) if id == self.follower.id => {
                match part {
                    Part::Opened => {
                        app.output.clear();
                        app.follow = Follow::Live;
                    }
                    Part::Text(text) => {
                        app.output.push(&text);
                        self.credit.applied(text.len());
                    }
                    Part::Missed(bytes) => app.output.note(&format!(
                        "[gosuv: {bytes} bytes of output skipped: top fell behind]"
                    )),
                    Part::Ended(why) => app.follow = Follow::Broken(why),
                }
                app.dirty = true;
            }
            Msg::Output(..) => {}
            Msg::Done(Ok(text)) => app.say(text, false),
            Msg::Done(Err(text)) => app.say(text, true),
            Msg::Signal(sig) => {
                return Some(Err(Failure {
                    message: format!("top ended by {}", gosuv::signal_name(sig)),
                    code: 128 + sig,
                }))
            }
        }
        None
    }
}
