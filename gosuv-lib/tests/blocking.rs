//! The blocking facade, used from plain threads as the C and Python bindings do.

mod common;

use std::time::Duration;

use gosuv::blocking::{Recv, Supervisor};
use gosuv::{EventNotice, LogEvent, ProgramConfig, ProgramState, Stream, SupervisorOptions};

#[test]
fn events_and_followers_from_a_thread_without_a_runtime() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut opts = SupervisorOptions::new(dir.path());
    opts.subreaper = false;
    let sup = std::sync::Arc::new(Supervisor::new(opts).expect("supervisor"));
    let mut p = ProgramConfig::shell("talker", "echo hi; exec sleep 30");
    p.start_seconds = 0;
    sup.add(p).expect("add");
    let mut events = sup.subscribe();
    let mut follower = sup.follow("talker", Stream::Stdout).expect("follow");
    // Nothing yet: a timeout, not a panic.
    assert_eq!(
        events.recv_timeout(Duration::from_millis(20)),
        Recv::Timeout
    );
    let s2 = sup.clone();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Recv::Item(EventNotice::Changed(e)) = events.recv_timeout(Duration::from_secs(5))
        {
            seen.push(e.to);
            if e.to == ProgramState::Running {
                break;
            }
        }
        drop(s2);
        seen
    });
    sup.start("talker", common::WAIT).expect("start");
    assert_eq!(
        reader.join().expect("thread"),
        vec![ProgramState::Starting, ProgramState::Running]
    );
    match follower.recv_timeout(Duration::from_secs(5)) {
        Recv::Item(LogEvent::Data(d)) => assert_eq!(&d[..], b"hi\n"),
        other => panic!("expected output, got {other:?}"),
    }
    sup.remove("talker").expect("remove");
    assert_eq!(follower.recv_timeout(Duration::from_secs(5)), Recv::Closed);
    sup.shutdown();
}
