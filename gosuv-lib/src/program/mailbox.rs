//! A program task's command queue: a bounded many-to-one channel, small when idle.
//!
//! It does what the task needs of `tokio::sync::mpsc` (a bounded queue whose senders wait
//! for room, weak senders, `close`, and the end of the queue once every sender is gone) in
//! about 150 bytes a program: tokio's channel holds ~1.3 KB for each, a block of 32 slots
//! made up front and cache-padded halves, and every program of thousands has one whose
//! commands come a few times in its life. Commands are rare: one lock a send and a receive
//! is no cost.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Semaphore;

struct State<T> {
    queue: VecDeque<T>,
    /// Live [`Sender`]s (weak ones do not count).
    senders: usize,
    /// The receiver closed the queue or is gone: nothing more is taken.
    closed: bool,
    /// The receiver waiting for a value.
    waker: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Free places in the queue: a send takes one, a receive gives it back.
    room: Semaphore,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The value of a send that found the queue closed.
pub(crate) struct SendError<T>(pub T);

impl<T> std::fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendError(..)")
    }
}

/// Sends values to the queue; the queue ends (for the receiver) when every sender is gone.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// A sender that does not keep the queue open; [`WeakSender::upgrade`] makes a sender of it
/// while another one lives.
pub(crate) struct WeakSender<T> {
    shared: Arc<Shared<T>>,
}

/// Takes the values, in the order they were sent.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue that holds at most `bound` values: a send waits for room beyond that.
pub(crate) fn channel<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            closed: false,
            waker: None,
        }),
        room: Semaphore::new(bound),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    /// Puts `value` in the queue once it has room; the value back when the receiver closed
    /// the queue or is gone. Cancel-safe: dropped while waiting, nothing is sent.
    pub(crate) async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let Ok(permit) = self.shared.room.acquire().await else {
            return Err(SendError(value));
        };
        let waker = {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(SendError(value));
            }
            // Given back by the receive that takes the value.
            permit.forget();
            st.queue.push_back(value);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Whether the receiver closed the queue or is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// A weak sender of the same queue.
    pub(crate) fn downgrade(&self) -> WeakSender<T> {
        WeakSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.shared.lock();
            st.senders -= 1;
            if st.senders > 0 {
                return;
            }
            st.waker.take()
        };
        // The receiver learns that the queue has ended.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> WeakSender<T> {
    /// A sender, if another one still lives.
    pub(crate) fn upgrade(&self) -> Option<Sender<T>> {
        let mut st = self.shared.lock();
        if st.senders == 0 {
            return None;
        }
        st.senders += 1;
        Some(Sender {
            shared: self.shared.clone(),
        })
    }
}

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        WeakSender {
            shared: self.shared.clone(),
        }
    }
}

/// The first value of `queue`; the queue's buffer goes with its last value (a program's
/// queue is empty nearly all its life, and a buffer kept is ~100 bytes a program).
fn take<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let v = queue.pop_front();
    if queue.is_empty() && queue.capacity() > 0 {
        *queue = VecDeque::new();
    }
    v
}

impl<T> Receiver<T> {
    /// The next value; `None` once the queue is empty and every sender is gone or the
    /// queue was closed. Cancel-safe.
    pub(crate) fn recv(&mut self) -> impl Future<Output = Option<T>> + Send + '_
    where
        T: Send,
    {
        std::future::poll_fn(|cx| self.poll_recv(cx))
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut st = self.shared.lock();
        if let Some(v) = take(&mut st.queue) {
            drop(st);
            self.shared.room.add_permits(1);
            return Poll::Ready(Some(v));
        }
        if st.senders == 0 || st.closed {
            return Poll::Ready(None);
        }
        match &mut st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next value if one is there now.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let v = take(&mut self.shared.lock().queue);
        if v.is_some() {
            self.shared.room.add_permits(1);
        }
        v
    }

    /// Takes no more values: senders get theirs back (those waiting for room too); what is
    /// in the queue can still be received.
    pub(crate) fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.room.close();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        // What is left goes now, not when the last weak sender does (a reply channel in it
        // tells its waiter).
        let left = std::mem::take(&mut self.shared.lock().queue);
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn values_come_in_order_and_the_queue_ends_with_its_senders() {
        rt().block_on(async {
            let (tx, mut rx) = channel(4);
            let tx2 = tx.clone();
            tx.send(1).await.expect("send");
            tx2.send(2).await.expect("send");
            assert_eq!(rx.recv().await, Some(1));
            assert_eq!(rx.recv().await, Some(2));
            let weak = tx.downgrade();
            drop(tx);
            assert!(weak.upgrade().is_some(), "tx2 lives");
            let waiting = tokio::spawn(async move { rx.recv().await });
            tokio::task::yield_now().await;
            drop(tx2);
            assert_eq!(waiting.await.expect("join"), None);
            assert!(weak.upgrade().is_none(), "every sender is gone");
        });
    }

    #[test]
    fn a_full_queue_makes_the_sender_wait_for_room() {
        rt().block_on(async {
            let (tx, mut rx) = channel(1);
            tx.send(1).await.expect("send");
            let mut second = Box::pin(tx.send(2));
            assert!(futures_util::FutureExt::now_or_never(&mut second).is_none());
            assert_eq!(rx.recv().await, Some(1));
            second.await.expect("room now");
            assert_eq!(rx.try_recv(), Some(2));
            assert_eq!(rx.try_recv(), None);
            assert_eq!(
                rx.shared.lock().queue.capacity(),
                0,
                "an empty queue keeps no buffer"
            );
        });
    }

    #[test]
    fn a_closed_queue_refuses_sends_and_keeps_what_it_holds() {
        rt().block_on(async {
            let (tx, mut rx) = channel(2);
            tx.send(1).await.expect("send");
            tx.send(2).await.expect("send");
            // One waits for room when the queue closes.
            let tx2 = tx.clone();
            let waiting = tokio::spawn(async move { tx2.send(3).await.map_err(|e| e.0) });
            tokio::task::yield_now().await;
            rx.close();
            assert!(tx.is_closed());
            assert_eq!(waiting.await.expect("join"), Err(3));
            assert!(matches!(tx.send(4).await, Err(SendError(4))));
            assert_eq!(rx.try_recv(), Some(1));
            assert_eq!(rx.recv().await, Some(2));
            assert_eq!(rx.recv().await, None);
        });
    }

    #[test]
    fn values_left_when_the_receiver_goes_are_dropped_at_once() {
        rt().block_on(async {
            let (tx, rx) = channel(2);
            let (reply, answer) = tokio::sync::oneshot::channel::<()>();
            tx.send(reply).await.expect("send");
            drop(rx);
            // The sender (still alive) no longer holds the reply: its waiter is told.
            assert!(answer.await.is_err());
            assert!(tx.is_closed());
        });
    }
}
