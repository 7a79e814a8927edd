//! On a kernel older than 5.7, `clone3` does not know `CLONE_INTO_CGROUP`: it refuses the
//! longer argument struct with `E2BIG` (5.4-5.6) before it looks at any flag. gosuv must then
//! start the child outside and have it move itself into its cgroup, as it does for `EINVAL`.
//!
//! The test runs a supervisor in a process of its own under a seccomp filter that answers as
//! such a kernel does: `E2BIG` for a `clone3` whose struct is longer than 5.5's 80 bytes,
//! when made from the test binary itself (gosuv's own `clone3`; glibc's, for threads, passes
//! a longer struct too, but with a zero tail, which those kernels accept: the filter cannot
//! read the struct, so it tells them apart by where the call comes from).
//! Needs root and a writable cgroup v2 (elsewhere it says so and checks nothing), and x86_64
//! (the filter checks the architecture).

mod common;

use std::process::Command;

use common::*;
use gosuv::{Ownership, ProgramState::*};

const CHILD_ENV: &str = "GOSUV_TEST_OLD_KERNEL";

/// `clone3` from this binary with a struct longer than 80 bytes fails with `E2BIG`;
/// everything else runs.
#[cfg(target_arch = "x86_64")]
fn act_as_linux_5_6() {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // The high half of an address in this binary's code (shared libraries, glibc among them,
    // are mapped far away from a position-independent executable).
    let here = (act_as_linux_5_6 as fn() as usize as u64 >> 32) as u32;
    // seccomp_data: nr at 0, arch at 4, the instruction pointer at 8, args from 16 (8 bytes
    // each, low half first).
    let filter = [
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 0, 7, AUDIT_ARCH_X86_64),
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 0, 5, libc::SYS_clone3 as u32),
        op(LD_W_ABS, 0, 0, 12),
        op(JEQ_K, 0, 3, here),
        op(LD_W_ABS, 0, 0, 24),
        op(JGT_K, 0, 1, 80),
        op(RET_K, 0, 0, RET_ERRNO | libc::E2BIG as u32),
        op(RET_K, 0, 0, RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl and seccomp on this process, with a filter that outlives the calls
    // (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let r = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &prog,
        );
        assert_eq!(r, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
    // The filter answers a clone3 made from this binary: one with a bad address, which the
    // kernel itself would refuse with EFAULT (no process is made either way).
    let ret: i64;
    // SAFETY: clone3 with a null struct makes nothing; rcx and r11 are the syscall's.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") 0usize,
            in("rsi") 88usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    assert_eq!(
        ret,
        -i64::from(libc::E2BIG),
        "the filter does not catch clone3 from this binary"
    );
}

/// Run as a process of its own by the test below.
#[test]
fn old_kernel_child() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    act_as_linux_5_6();
    let rt = runtime();
    rt.block_on(async {
        let env = Env::new();
        env.sup
            .add(quick("web", "exec sleep 300"))
            .await
            .expect("add");
        for round in 0..3 {
            let st = env.sup.start("web", WAIT).await.expect("start");
            assert_eq!(st.state, Running, "round {round}: {:?}", st.last_error);
            assert_eq!(st.ownership, Some(Ownership::Cgroup), "round {round}");
            let pid = st.pid.expect("pid");
            let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
            assert!(own.contains("/prog-web"), "round {round}: {own}");
            env.sup.stop("web", WAIT).await.expect("stop");
        }
        env.sup.shutdown().await;
    });
    println!("OLD KERNEL OK");
}

#[test]
fn programs_start_in_their_cgroup_where_clone3_cannot_place_them() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIPPED programs_start_in_their_cgroup_where_clone3...: the filter is x86_64's");
        return;
    }
    if !cgroups_available("programs_start_in_their_cgroup_where_clone3_cannot_place_them") {
        return;
    }
    let out = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "old_kernel_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OLD KERNEL OK"),
        "the supervisor under an old kernel's clone3 failed:\n{stdout}\n{stderr}"
    );
}
