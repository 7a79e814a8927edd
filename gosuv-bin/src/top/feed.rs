//! What `top` hears, as messages to its drawing loop: the program list once a second, the
//! state events, the selected program's output, the results of actions, signals, and the
//! keys. Each source is a task on `top`'s runtime; those that talk to the server do it
//! through the CLI's [`Client`], and start over a second after the server went away, until
//! the loop is gone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use gosuv::Stream;
use hyper::Method;

use super::app::{Action, StateEvent};
use crate::client::{Client, ClientError};
use crate::commands::StatusRow;

/// How often the list (CPU, memory, uptime) is asked for, and how soon a stream that broke
/// is opened again.
pub const TICK: Duration = Duration::from_secs(1);

/// How long the list may take before the server counts as away.
pub(crate) const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of output the pane starts with.
const TAIL_LINES: usize = 200;

/// A piece of the followed output.
#[derive(Debug)]
pub enum Part {
    /// The stream is open: what the pane showed is replaced by what follows.
    Opened,
    /// Output.
    Text(String),
    /// The server skipped this many bytes (this client fell behind).
    Missed(u64),
    /// The stream ended or broke (why); it is opened again in a second.
    Ended(String),
}

/// Something for the drawing loop.
#[derive(Debug)]
pub enum Msg {
    /// A key, a resize.
    Term(crossterm::event::Event),
    /// The terminal cannot be read any more.
    TermGone(String),
    /// The program list, asked for when the event counter was at `seq`, or why there is
    /// none.
    Programs {
        /// The event counter when it was asked for.
        seq: u64,
        /// The list, or why the server did not give it.
        list: Result<Vec<StatusRow>, String>,
    },
    /// A state change, numbered.
    State(u64, StateEvent),
    /// The event stream ended or broke (why).
    EventsDown(String),
    /// Output of follow number `id`.
    Output(u64, Part),
    /// An action's result: what the server says the program is now, or why it failed.
    Done(Result<String, String>),
    /// A signal asked `top` to end.
    Signal(i32),
}

/// The loop's end of the messages.
pub type Tx = Sender<Msg>;

/// What an error says in a line of the screen: the cause, without the advice the CLI adds.
fn short(e: &ClientError) -> String {
    match e {
        ClientError::Unreachable { cause, .. } | ClientError::Protocol { cause, .. } => {
            cause.clone()
        }
        ClientError::Api { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Asks for the program list every [`TICK`] (the first a tick from now: the caller has
/// one).
pub async fn programs(client: Arc<Client>, tx: Tx, events: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let seq = events.load(Ordering::SeqCst);
        let list = match tokio::time::timeout(
            LIST_TIMEOUT,
            client.get_bytes_async(&crate::commands::status_list_path()),
        )
        .await
        {
            Err(_) => Err("no answer in time".to_string()),
            Ok(Err(e)) => Err(short(&e)),
            Ok(Ok(body)) => serde_json::from_slice::<Vec<StatusRow>>(&body)
                .map_err(|e| format!("a program list top cannot read: {e}")),
        };
        if tx.send(Msg::Programs { seq, list }).is_err() {
            return;
        }
    }
}

/// Follows `GET /api/events`, numbering each state change in `events`.
pub async fn events(client: Arc<Client>, tx: Tx, events: Arc<AtomicU64>) {
    loop {
        let why = match client.open_events("/api/events").await {
            Err(e) => short(&e),
            Ok(mut reader) => loop {
                match reader.next().await {
                    Ok(Some((kind, data))) => {
                        if kind != "state" {
                            continue;
                        }
                        // A change top cannot read is left to the next list.
                        let Ok(ev) = serde_json::from_str::<StateEvent>(&data) else {
                            continue;
                        };
                        let seq = events.fetch_add(1, Ordering::SeqCst) + 1;
                        if tx.send(Msg::State(seq, ev)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break "the server ended the event stream".to_string(),
                    Err(e) => break short(&e),
                }
            },
        };
        if tx.send(Msg::EventsDown(why)).is_err() {
            return;
        }
        tokio::time::sleep(TICK).await;
    }
}

/// The output sent to the drawing loop and not yet applied there, in bytes: the follow
/// stops reading at [`Credit::MAX`] until the loop catches up, so a program that prints
/// faster than top draws makes the server skip (and say `missed`), not top's memory grow
/// and its keys wait behind the backlog.
#[derive(Debug, Default)]
pub struct Credit {
    in_flight: std::sync::atomic::AtomicUsize,
    freed: tokio::sync::Notify,
}

impl Credit {
    /// At most this much output waits for the drawing loop.
    pub const MAX: usize = 256 * 1024;

    /// The drawing loop applied `bytes` of output.
    pub fn applied(&self, bytes: usize) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(bytes))
            });
        self.freed.notify_one();
    }

    /// Waits until less than [`Credit::MAX`] is in flight, then counts `bytes` more.
    async fn take(&self, bytes: usize) {
        loop {
            let freed = self.freed.notified();
            if self.in_flight.load(Ordering::SeqCst) < Self::MAX {
                break;
            }
            freed.await;
        }
        self.in_flight.fetch_add(bytes, Ordering::SeqCst);
    }

    /// A new follow: nothing of the old one is in flight any more.
    pub fn reset(&self) {
        self.in_flight.store(0, Ordering::SeqCst);
        self.freed.notify_one();
    }
}

/// Follows one stream of one program's output as follow number `id`, until aborted.
pub async fn output(
    client: Arc<Client>,
    tx: Tx,
    credit: Arc<Credit>,
    id: u64,
    name: String,
    stream: Stream,
) {
    if let Err(e) = gosuv::config::validate_name(&name) {
        let _ = tx.send(Msg::Output(id, Part::Ended(e)));
        return;
    }
    let path = format!(
        "/api/programs/{name}/log/follow?stream={}&lines={TAIL_LINES}",
        stream.as_str()
    );
    let send = |part: Part| tx.send(Msg::Output(id, part)).is_ok();
    loop {
        let why = match client.open_events(&path).await {
            Err(e) => short(&e),
            Ok(mut reader) => {
                if !send(Part::Opened) {
                    return;
                }
                loop {
                    let part = match reader.next().await {
                        Ok(Some((kind, data))) => match kind.as_str() {
                            "log" => match serde_json::from_str::<String>(&data) {
                                Ok(text) => Part::Text(text),
                                Err(_) => continue,
                            },
                            "missed" => Part::Missed(
                                serde_json::from_str::<serde_json::Value>(&data)
                                    .ok()
                                    .and_then(|v| v["bytes"].as_u64())
                                    .unwrap_or(0),
                            ),
                            _ => continue,
                        },
                        Ok(None) => break "the server ended the stream".to_string(),
                        Err(e) => break short(&e),
                    };
                    if let Part::Text(t) = &part {
                        credit.take(t.len()).await;
                    }
                    if !send(part) {
                        return;
                    }
                }
            }
        };
        if !send(Part::Ended(why)) {
            return;
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Sends `action` for `name` and reports what the program is once it is done.
pub async fn act(client: Arc<Client>, tx: Tx, name: String, action: Action) {
    let result = match gosuv::config::validate_name(&name) {
        Err(e) => Err(e),
        Ok(()) => client
            .json_async(
                Method::POST,
                &format!("/api/programs/{name}/{}", action.as_str()),
                None,
            )
            .await
            .map(|v| crate::commands::describe(&v))
            .map_err(|e| format!("{} {name}: {}", action.as_str(), short(&e))),
    };
    let _ = tx.send(Msg::Done(result));
}

/// Reads the terminal (keys, resizes) until the loop is gone. crossterm's stream waits
/// on a thread of its own, which ends when the stream is dropped (with this task, when
/// top's runtime shuts down): no key typed after top, in the shell, goes to it.
pub async fn keys(tx: Tx) {
    use futures_util::StreamExt;
    let mut events = crossterm::event::EventStream::new();
    loop {
        let msg = match events.next().await {
            Some(Ok(ev)) => Msg::Term(ev),
            Some(Err(e)) => Msg::TermGone(e.to_string()),
            None => Msg::TermGone("the terminal closed".to_string()),
        };
        let gone = matches!(msg, Msg::TermGone(_));
        if tx.send(msg).is_err() || gone {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_waits_for_the_drawing_loop_past_its_credit() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let credit = Arc::new(Credit::default());
        rt.block_on(async {
            // Up to the limit, no wait.
            credit.take(Credit::MAX - 1).await;
            credit.take(10).await;
            // Past it: the follow waits (the server then skips and says so)...
            let waiting = tokio::spawn({
                let credit = credit.clone();
                async move { credit.take(1).await }
            });
            tokio::task::yield_now().await;
            assert!(!waiting.is_finished(), "took more than the credit");
            // ...until the loop has applied what it was sent.
            credit.applied(Credit::MAX);
            tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .expect("resumed")
                .unwrap();
            // A new follow starts with nothing in flight.
            credit.take(Credit::MAX).await;
            credit.reset();
            tokio::time::timeout(Duration::from_secs(5), credit.take(1))
                .await
                .expect("nothing in flight after a reset");
        });
    }
}
