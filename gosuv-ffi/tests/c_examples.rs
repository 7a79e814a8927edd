//! Builds the C and C++ programs (examples/c, examples/cpp, tests/c) against the
//! libgosuv.so and libgosuv.a that cargo built for this test run, runs them and checks what
//! they print; runs three of them under valgrind.
//!
//! Needs a C and a C++ compiler (`cc`, `c++`), `make` and `valgrind` (Debian packages
//! build-essential and valgrind).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one program may run before the test kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Where the library goes: `shared` or `static`.
#[derive(Clone, Copy, Debug)]
enum Link {
    Shared,
    Static,
}

impl Link {
    fn as_str(self) -> &'static str {
        match self {
            Link::Shared => "shared",
            Link::Static => "static",
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("gosuv-ffi sits in the repository root")
        .to_path_buf()
}

/// The SONAME of libgosuv.so, which programs linked against it look for.
const SONAME: &str = concat!("libgosuv.so.", env!("CARGO_PKG_VERSION_MAJOR"));

/// The directory holding libgosuv.so and libgosuv.a. This test binary is
/// `<target>/<profile>/deps/c_examples-<hash>`; cargo builds the library files of this run
/// beside it (and copies them up to `<target>/<profile>` only for `cargo build`). A link
/// named by the SONAME is made there, as an install makes one.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let deps = exe.parent().expect("the test binary is in a directory");
    let candidates = [Some(deps), deps.parent()];
    for dir in candidates.into_iter().flatten() {
        if dir.join("libgosuv.so").is_file() && dir.join("libgosuv.a").is_file() {
            let link = dir.join(SONAME);
            if fs::read_link(&link).ok().as_deref() != Some(Path::new("libgosuv.so")) {
                // Tests run in parallel, in several processes that may share the target
                // directory: each makes its link under a name of its own (process and
                // thread) and renames it into place.
                let tmp = dir.join(format!(
                    "{SONAME}.{}.{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let _ = fs::remove_file(&tmp);
                std::os::unix::fs::symlink("libgosuv.so", &tmp).expect("make the SONAME link");
                fs::rename(&tmp, &link).expect("put the SONAME link in place");
            }
            return dir.to_path_buf();
        }
    }
    panic!(
        "libgosuv.so and libgosuv.a are not beside the test binary ({}) nor one directory up: \
         run this test through `cargo test -p gosuv-ffi`, which builds them",
        deps.display()
    );
}

/// The libraries a program needs besides libgosuv.a: what `rustc --print
/// native-static-libs` lists. The Makefiles and the README use the same line.
const STATIC_SYSTEM_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

fn link_args(link: Link) -> Vec<String> {
    let dir = lib_dir();
    match link {
        Link::Shared => vec![
            format!("-L{}", dir.display()),
            "-lgosuv".into(),
            format!("-Wl,-rpath,{}", dir.display()),
        ],
        Link::Static => std::iter::once(dir.join("libgosuv.a").display().to_string())
            .chain(STATIC_SYSTEM_LIBS.iter().map(|s| s.to_string()))
            .collect(),
    }
}

/// What a finished program did.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn describe(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }

    fn expect_ok(self, what: &str) -> Ran {
        assert!(self.ok, "{what} failed\n{}", self.describe());
        self
    }

    fn expect_lines(&self, lines: &[&str]) {
        for line in lines {
            assert!(
                self.stdout.lines().any(|l| l == *line),
                "no line {line:?} in the output\n{}",
                self.describe()
            );
        }
    }
}

/// Runs a command to its end (at most `RUN_LIMIT`), its output in files of `dir`.
fn run(mut cmd: Command, dir: &Path) -> Ran {
    let what = format!("{cmd:?}");
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    // cargo points LD_LIBRARY_PATH at target/<profile> too, where an older libgosuv.so from
    // a `cargo build` may sit: the programs find the library of this run by their rpath.
    let mut child = cmd
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("create stdout.txt"))
        .stderr(fs::File::create(&err_path).expect("create stderr.txt"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} ran longer than {RUN_LIMIT:?}: killed\n--- stdout\n{}",
                fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        ok: status.success(),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A directory that is removed when the test ends, with `bin/` and `work/` in it.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("gosuv-ffi-test-")
        .tempdir()
        .expect("create a temporary directory");
    fs::create_dir(dir.path().join("bin")).expect("mkdir bin");
    fs::create_dir(dir.path().join("work")).expect("mkdir work");
    dir
}

/// Builds an example with its Makefile into `out`.
fn make(example: &str, out: &Path, link: Link) {
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(repo_root().join("examples").join(example))
        .arg(format!("OUT={}", out.display()))
        .arg(format!("GOSUV_LIB_DIR={}", lib_dir().display()))
        .arg(format!("LINK={}", link.as_str()));
    run(cmd, out).expect_ok(&format!("make for examples/{example}"));
}

/// Compiles one test program of tests/c with `compiler` and `std`.
fn compile(compiler: &str, std: &str, source: &str, out: &Path, link: Link) -> PathBuf {
    let exe = out.join(
        Path::new(source)
            .file_stem()
            .expect("a source file name")
            .to_string_lossy()
            .into_owned()
            + "-"
            + std
            + "-"
            + link.as_str(),
    );
    let mut cmd = Command::new(compiler);
    if compiler == "c++" {
        cmd.args(["-x", "c++"]);
    }
    cmd.arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-pthread"])
        .arg("-I")
        .arg(repo_root().join("include"))
        .arg("-o")
        .arg(&exe)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/c")
                .join(source),
        )
        // What follows is for the linker, not more C++ source.
        .args(["-x", "none"])
        .args(link_args(link));
    run(cmd, out).expect_ok(&format!("{compiler} -std={std} {source}"));
    exe
}

fn with_arg(program: &Path, arg: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg(arg);
    cmd
}

#[test]
fn header_compiles_as_c11_and_cpp17_when_included_twice() {
    let dir = scratch();
    let bin = dir.path().join("bin");
    let version = format!("version {}", env!("CARGO_PKG_VERSION"));
    for (compiler, std) in [("cc", "c11"), ("c++", "c++17")] {
        let exe = compile(compiler, std, "header_twice.c", &bin, Link::Shared);
        let ran = run(Command::new(exe), dir.path()).expect_ok(std);
        ran.expect_lines(&[&version, "GOSUV_RESULT_OK fatal 1"]);
    }
}

fn c_example(link: Link) {
    let dir = scratch();
    let bin = dir.path().join("bin");
    make("c", &bin, link);
    let ran = run(
        with_arg(&bin.join("supervise"), &dir.path().join("work")),
        dir.path(),
    )
    .expect_ok("examples/c/supervise");
    ran.expect_lines(&[
        "event: ticker stopped -> starting",
        "event: ticker starting -> running",
        "event: worker starting -> running",
        "ticker is running",
        "worker is running",
        "output: ticker: tick 1",
        "the ticker printed 3 lines",
        "event: worker stopping -> stopped (signal 15)",
        "worker restarted: running, new pid",
        "worker runs 1 process(es)",
        "start nosuch failed: GOSUV_RESULT_NOT_FOUND: no program named 'nosuch': check the \
         name (list the programs to see them all)",
        "ticker is stopped",
        "finalizers run: 2",
        "done",
    ]);
    assert!(
        ran.stdout.contains("last line: tick "),
        "no tail in\n{}",
        ran.describe()
    );
    let log = fs::read_to_string(dir.path().join("work/logs/ticker.stdout.log"))
        .expect("the ticker's log file");
    assert!(log.starts_with("tick 1\ntick 2\n"), "log file: {log:?}");

    // The README's example: the current directory is its base directory.
    let mut minimal = Command::new(bin.join("minimal"));
    minimal.current_dir(dir.path().join("work"));
    let ran = run(minimal, dir.path()).expect_ok("examples/c/minimal");
    assert!(
        ran.stdout.starts_with("worker is running, pid "),
        "{}",
        ran.describe()
    );
    let log = fs::read_to_string(dir.path().join("work/logs/worker.stdout.log"))
        .expect("the worker's log file");
    assert_eq!(log, "hello\n");
}

#[test]
fn c_example_with_the_shared_library() {
    c_example(Link::Shared);
}

#[test]
fn c_example_with_the_static_library() {
    c_example(Link::Static);
}

fn cpp_example(link: Link) {
    let dir = scratch();
    let bin = dir.path().join("bin");
    make("cpp", &bin, link);
    let ran = run(
        with_arg(&bin.join("raii"), &dir.path().join("work")),
        dir.path(),
    )
    .expect_ok("examples/cpp/raii");
    ran.expect_lines(&[
        "event: greeter stopped -> starting",
        "event: greeter starting -> running",
        "greeter is running",
        "greeter said: hello from cpp",
        "tail: hello from cpp",
        "adding it twice: GOSUV_RESULT_EXISTS: a program named 'greeter' already exists: \
         choose another name or update it instead",
        "after restart: running",
        "after stop: stopped",
        "events seen: 12",
        "done",
    ]);
    // The supervisor's shutdown stops greeter: the on_event callback sees it.
    let after_status = ran
        .stdout
        .split_once("\nstatus: ")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    assert!(
        after_status.contains("event: greeter running -> stopping\n")
            && after_status.contains("event: greeter stopping -> stopped\n"),
        "the shutdown's events did not reach the subscriber\n{}",
        ran.describe()
    );
}

/// The must-show program: two workers with a ready probe, events, one stopped, its
/// tail, a shutdown, in at most 15 lines that call gosuv.
fn workers_example(link: Link, under_valgrind: bool) {
    let dir = scratch();
    let bin = dir.path().join("bin");
    make("c", &bin, link);
    let exe = bin.join("workers");
    let work = dir.path().join("work");
    let ran = if under_valgrind {
        valgrind(&exe, &work, dir.path())
    } else {
        run(with_arg(&exe, &work), dir.path()).expect_ok("examples/c/workers")
    };
    ran.expect_lines(&[
        "event: alpha stopped -> starting",
        "event: alpha starting -> running",
        "event: beta starting -> running",
        "event: beta running -> stopping",
        "event: beta stopping -> stopped",
        "event: alpha stopping -> stopped",
        "beta's last lines:",
        "beta works",
        "done",
    ]);
    let source =
        fs::read_to_string(repo_root().join("examples/c/workers.c")).expect("examples/c/workers.c");
    let calls = source
        .lines()
        .filter(|l| {
            l.split("gosuv_").skip(1).any(|rest| {
                rest.split('(').next().is_some_and(|f| !f.contains(' ')) && rest.contains('(')
            })
        })
        .count();
    assert!(
        calls <= 15,
        "examples/c/workers.c calls gosuv on {calls} lines"
    );
}

#[test]
fn workers_example_with_the_shared_library() {
    workers_example(Link::Shared, false);
}

#[test]
fn workers_example_with_the_static_library() {
    workers_example(Link::Static, false);
}

/// Under valgrind without any suppression file: the 15-call program is clean.
#[test]
fn valgrind_finds_no_errors_or_leaks_in_the_workers_example() {
    workers_example(Link::Shared, true);
}

#[test]
fn cpp_example_with_the_shared_library() {
    cpp_example(Link::Shared);
}

#[test]
fn cpp_example_with_the_static_library() {
    cpp_example(Link::Static);
}

fn api_contract(link: Link) {
    let dir = scratch();
    let exe = compile("cc", "c11", "api.c", &dir.path().join("bin"), link);
    let ran = run(with_arg(&exe, &dir.path().join("work")), dir.path());
    assert!(
        ran.ok && ran.stdout.contains(" passed, 0 failed"),
        "tests/c/api.c failed\n{}",
        ran.describe()
    );
}

#[test]
fn api_contract_with_the_shared_library() {
    api_contract(Link::Shared);
}

#[test]
fn api_contract_with_the_static_library() {
    api_contract(Link::Static);
}

/// Runs tests/c/readiness.c (`waiting`, gosuv_supervisor_wait, events' reasons, a ready
/// probe that never passes) and checks that every check passed.
fn readiness(link: Link, under_valgrind: bool) -> Ran {
    let dir = scratch();
    let exe = compile("cc", "c11", "readiness.c", &dir.path().join("bin"), link);
    let work = dir.path().join("work");
    let ran = if under_valgrind {
        valgrind(&exe, &work, dir.path())
    } else {
        run(with_arg(&exe, &work), dir.path())
    };
    assert!(
        ran.ok && ran.stdout.contains(" passed, 0 failed"),
        "tests/c/readiness.c failed\n{}",
        ran.describe()
    );
    ran.expect_lines(&[
        "ok state names",
        "ok arguments",
        "ok api waits for db",
        "ok a probe that never passes",
        "ok the wait does not start a program",
    ]);
    ran
}

#[test]
fn c_sees_a_dependent_wait_and_gosuv_supervisor_wait_return_once_it_runs() {
    readiness(Link::Static, false);
}

#[test]
fn valgrind_finds_no_errors_or_leaks_in_the_readiness_tests() {
    readiness(Link::Shared, true);
}

/// Runs tests/c/builder.c (programs without YAML, stdin and output choices, signals,
/// GOSUV_WAIT_FOREVER, structs versioned by size, typed accessors, bad inputs) and checks
/// that every check passed.
fn builder(link: Link, under_valgrind: bool) -> Ran {
    let dir = scratch();
    let exe = compile("cc", "c11", "builder.c", &dir.path().join("bin"), link);
    let work = dir.path().join("work");
    let ran = if under_valgrind {
        valgrind(&exe, &work, dir.path())
    } else {
        run(with_arg(&exe, &work), dir.path())
    };
    assert!(
        ran.ok && ran.stdout.contains(" passed, 0 failed"),
        "tests/c/builder.c failed\n{}",
        ran.describe()
    );
    ran.expect_lines(&[
        "ok every setter",
        "ok no injection",
        "ok env",
        "ok stdin pipe",
        "ok stdin inherit",
        "ok output modes",
        "ok signal",
        "ok wait forever",
        "ok typed accessors",
        "ok bad inputs",
        "ok sizes",
    ]);
    ran
}

#[test]
fn c_describes_programs_without_yaml_with_the_shared_library() {
    builder(Link::Shared, false);
}

#[test]
fn c_describes_programs_without_yaml_with_the_static_library() {
    builder(Link::Static, false);
}

#[test]
fn valgrind_finds_no_errors_or_leaks_in_the_builder_tests() {
    builder(Link::Shared, true);
}

#[test]
fn a_panic_reaches_c_as_an_error_code() {
    let dir = scratch();
    let exe = compile(
        "cc",
        "c11",
        "panic.c",
        &dir.path().join("bin"),
        Link::Static,
    );
    let ran = run(with_arg(&exe, &dir.path().join("work")), dir.path()).expect_ok("panic.c");
    ran.expect_lines(&[
        "gosuv_debug_panic returned GOSUV_RESULT_PANIC: a panic inside gosuv was caught at the \
         C boundary (a bug; please report it): boom from C",
        "again: GOSUV_RESULT_PANIC",
        "after the panic: GOSUV_RESULT_OK running",
    ]);
    assert!(
        ran.stderr.contains("boom from C"),
        "Rust's panic hook reports the panic on stderr\n{}",
        ran.describe()
    );
}

/// Runs a program under valgrind's memcheck, without any suppression file; fails on any
/// error or leak (definite or possible).
fn valgrind(program: &Path, arg: &Path, dir: &Path) -> Ran {
    let version = Command::new("valgrind").arg("--version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        panic!(
            "valgrind is not installed, and the C tests need it: install the Debian package \
             `valgrind` (apt-get install -y valgrind)"
        );
    }
    let log = dir.join("valgrind.log");
    let mut cmd = Command::new("valgrind");
    cmd.arg("--leak-check=full")
        .arg("--num-callers=40")
        .arg("--error-exitcode=1")
        // The forked children that exec a program are not this process.
        .arg("--child-silent-after-fork=yes")
        // No suppression file: what the library starts it ends when the last supervisor is
        // freed, so a correct program has nothing "possibly lost" either.
        .arg(format!("--log-file={}", log.display()))
        .arg(program)
        .arg(arg);
    let mut ran = run(cmd, dir);
    ran.stderr += &fs::read_to_string(&log).unwrap_or_default();
    assert!(
        ran.ok,
        "valgrind reports errors or leaks in {}\n{}",
        program.display(),
        ran.describe()
    );
    ran
}

#[test]
fn valgrind_finds_no_errors_or_leaks_in_the_api_tests() {
    let dir = scratch();
    let exe = compile("cc", "c11", "api.c", &dir.path().join("bin"), Link::Shared);
    let ran = valgrind(&exe, &dir.path().join("work"), dir.path());
    assert!(
        ran.stdout.contains(" passed, 0 failed"),
        "{}",
        ran.describe()
    );
}

#[test]
fn valgrind_finds_no_errors_or_leaks_in_the_c_example() {
    let dir = scratch();
    let bin = dir.path().join("bin");
    make("c", &bin, Link::Shared);
    let ran = valgrind(&bin.join("supervise"), &dir.path().join("work"), dir.path());
    ran.expect_lines(&["finalizers run: 2", "done"]);
}

/// The output of a tool that must succeed.
fn output(program: &str, args: &[&str], path: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install binutils"));
    assert!(
        out.status.success(),
        "{program} {args:?} {} failed: {out:?}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names of an ELF file's sections.
fn sections(path: &Path) -> Vec<String> {
    output("readelf", &["-SW"], path)
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("] ")?;
            rest.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

/// CRC-32 as .gnu_debuglink records it (the zlib one).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Global symbols defined in `path` (an archive or object) whose name does not start with
/// `gosuv_`, counted.
fn foreign_globals(path: &Path) -> usize {
    // BFD is told the format (as install.sh does): an LLVMgold plugin in
    // /usr/lib/bfd-plugins fails on an object with more than 65535 sections otherwise.
    let format = output("objdump", &["-f"], &lib_dir().join("libgosuv.so"))
        .lines()
        .find_map(|l| {
            l.split_once("file format ")
                .map(|(_, f)| f.trim().to_string())
        })
        .expect("objdump names the library's format");
    let target = format!("--target={format}");
    output("nm", &[&target, "-g", "--defined-only"], path)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|name| !name.starts_with("gosuv_"))
        .count()
}

/// install.sh over an earlier install whose files are symbolic links to files elsewhere:
/// each link is replaced, never written through, and a second install over the first works
/// (each file is put in place by a rename). A prefix that sed would mangle in gosuv.pc is
/// refused with a clear message before anything is installed.
#[test]
fn install_replaces_links_and_refuses_a_prefix_it_cannot_write() {
    let dir = scratch();
    let install = |prefix: &Path| {
        let mut cmd = Command::new("sh");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
            .arg(prefix)
            .arg(lib_dir())
            .env("GOSUV_LDCONFIG", "no");
        run(cmd, dir.path())
    };
    let prefix = dir.path().join("prefix");
    let lib = prefix.join("lib");
    fs::create_dir_all(lib.join("pkgconfig")).expect("mkdir lib/pkgconfig");
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).expect("mkdir elsewhere");
    let full = format!("libgosuv.so.{}", env!("CARGO_PKG_VERSION"));
    let planted = [
        lib.join(&full),
        lib.join("libgosuv.a"),
        lib.join("pkgconfig/gosuv.pc"),
    ];
    for (i, at) in planted.iter().enumerate() {
        let target = elsewhere.join(format!("file{i}"));
        fs::write(&target, "not to be written").expect("write a target");
        std::os::unix::fs::symlink(&target, at).expect("plant a link");
    }
    install(&prefix).expect_ok("install.sh over links");
    for (i, at) in planted.iter().enumerate() {
        assert_eq!(
            fs::read_to_string(elsewhere.join(format!("file{i}"))).expect("read a target"),
            "not to be written",
            "install.sh wrote through the link {}",
            at.display()
        );
        let meta = fs::symlink_metadata(at).expect("installed file");
        assert!(meta.file_type().is_file(), "{} is not a file", at.display());
    }
    install(&prefix).expect_ok("install.sh a second time");
    assert!(fs::read_to_string(lib.join("pkgconfig/gosuv.pc"))
        .expect("gosuv.pc")
        .contains(&format!("prefix={}", prefix.display())));
    let leftovers: Vec<_> = fs::read_dir(&lib)
        .expect("lib")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".new."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    for bad in ["a&b", "a|b", "a\\b"] {
        let prefix = dir.path().join(bad);
        let ran = install(&prefix);
        assert!(!ran.ok, "install.sh took the prefix {}", prefix.display());
        assert!(
            ran.stderr.contains("PREFIX may not hold"),
            "{}",
            ran.describe()
        );
        assert!(!prefix.exists(), "{} was made", prefix.display());
    }
}

/// install.sh into a temporary prefix: the SONAME and its links, a stripped library with
/// its debug info in a file its .gnu_debuglink names (checksum included), a static library
/// that exports only gosuv_*, pkg-config's flags; then the C example is built against the
/// installed tree (shared, static, fully static) and run.
#[test]
fn installed_with_pkg_config_the_c_example_builds_and_runs() {
    let dir = scratch();
    let prefix = dir.path().join("prefix");
    let mut install = Command::new("sh");
    install
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
        .arg(&prefix)
        .arg(lib_dir());
    let ran = run(install, dir.path()).expect_ok("install.sh");
    assert!(
        !ran.stderr.contains("installing it as built"),
        "{}",
        ran.describe()
    );
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let full = format!("libgosuv.so.{version}");

    // The shared library and its links.
    let so = lib.join(&full);
    assert_eq!(
        fs::read_link(lib.join(SONAME)).expect("the SONAME link"),
        Path::new(&full)
    );
    assert_eq!(
        fs::read_link(lib.join("libgosuv.so")).expect("the libgosuv.so link"),
        Path::new(SONAME)
    );
    let dynamic = output("readelf", &["-d"], &so);
    assert!(
        dynamic.contains(&format!("Library soname: [{SONAME}]")),
        "{dynamic}"
    );

    // Stripped, with the debug info beside it.
    let debug = lib.join(format!(
        "debug{}/{full}.debug",
        lib.display() // the library's absolute directory, as gdb looks it up
    ));
    let built = lib_dir().join("libgosuv.so");
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "libgosuv.so: built {} bytes, installed {} bytes, debug file {} bytes",
        size(&built),
        size(&so),
        size(&debug)
    );
    assert!(sections(&built).iter().any(|s| s == ".debug_info"));
    let so_sections = sections(&so);
    assert!(
        !so_sections.iter().any(|s| s.starts_with(".debug")),
        "the installed library keeps debug info: {so_sections:?}"
    );
    assert!(size(&so) < size(&built) / 2, "not stripped");
    assert!(
        sections(&debug).iter().any(|s| s == ".debug_info"),
        "no .debug_info in {}",
        debug.display()
    );
    let link = dir.path().join("debuglink");
    let mut dump = Command::new("objcopy");
    dump.arg(format!("--dump-section=.gnu_debuglink={}", link.display()))
        .arg(&so)
        .arg(dir.path().join("discard.so"));
    run(dump, dir.path()).expect_ok("objcopy --dump-section .gnu_debuglink");
    let link = fs::read(&link).expect("the .gnu_debuglink section");
    let name_end = link.iter().position(|&b| b == 0).expect("a NUL-ended name");
    assert_eq!(
        &link[..name_end],
        format!("{full}.debug").as_bytes(),
        "the debuglink names another file"
    );
    let crc = u32::from_le_bytes(
        link[link.len() - 4..]
            .try_into()
            .expect("the checksum's 4 bytes"),
    );
    assert_eq!(
        crc,
        crc32(&fs::read(&debug).expect("the debug file")),
        "the debuglink's checksum is not the debug file's"
    );

    // The static library exports only gosuv_*.
    let before = foreign_globals(&lib_dir().join("libgosuv.a"));
    let after = foreign_globals(&lib.join("libgosuv.a"));
    eprintln!(
        "global symbols not gosuv_*: {before} in the built libgosuv.a, {after} in the installed \
         one; sizes {} and {} bytes",
        size(&lib_dir().join("libgosuv.a")),
        size(&lib.join("libgosuv.a"))
    );
    assert!(before > 1000, "{before}");
    assert_eq!(after, 0, "the installed libgosuv.a exports Rust symbols");

    let pkg_config = |args: &[&str]| {
        let out = Command::new("pkg-config")
            .args(args)
            .arg("gosuv")
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run pkg-config ({e}): install the Debian package pkg-config")
            });
        assert!(
            out.status.success(),
            "pkg-config {args:?} gosuv failed: {out:?}"
        );
        String::from_utf8(out.stdout).expect("pkg-config prints text")
    };
    assert_eq!(pkg_config(&["--modversion"]).trim(), version);
    assert!(pkg_config(&["--static", "--libs"]).contains("-lpthread"));
    assert!(pkg_config(&["--cflags"]).contains(&format!("-I{}", prefix.join("include").display())));
    assert!(prefix.join("include/gosuv.h").is_file());
    if repo_root().join("include/gosuv.hpp").is_file() {
        assert!(prefix.join("include/gosuv.hpp").is_file());
    }

    // Shared: the program needs the SONAME, found through the rpath.
    let exe = dir.path().join("bin/supervise");
    let mut cc = Command::new("cc");
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
        .arg(&exe)
        .arg(repo_root().join("examples/c/supervise.c"))
        .args(pkg_config(&["--cflags", "--libs"]).split_whitespace())
        .arg(format!("-Wl,-rpath,{}", lib.display()));
    run(cc, dir.path()).expect_ok("cc with pkg-config's flags");
    let needed = output("readelf", &["-d"], &exe);
    assert!(
        needed.contains(&format!("Shared library: [{SONAME}]")),
        "{needed}"
    );
    let ran = run(with_arg(&exe, &dir.path().join("work")), dir.path()).expect_ok("supervise");
    ran.expect_lines(&["done"]);

    // Static, as the README says: the archive, then Libs.private; and fully static.
    let private: Vec<String> = pkg_config(&["--static", "--libs"])
        .split_whitespace()
        .filter(|f| !f.starts_with("-L") && *f != "-lgosuv")
        .map(str::to_string)
        .collect();
    for (name, extra) in [("static", None), ("fully-static", Some("-static"))] {
        let exe = dir.path().join("bin").join(name);
        let mut cc = Command::new("cc");
        cc.args(extra)
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
            .arg(&exe)
            .arg(repo_root().join("examples/c/supervise.c"))
            .args(pkg_config(&["--cflags"]).split_whitespace())
            .arg(lib.join("libgosuv.a"))
            .args(&private);
        run(cc, dir.path()).expect_ok(&format!("cc {name} with the installed libgosuv.a"));
        let work = dir.path().join(format!("work-{name}"));
        let ran = run(with_arg(&exe, &work), dir.path()).expect_ok(name);
        ran.expect_lines(&["finalizers run: 2", "done"]);
    }
}

/// Runs one mode of tests/c/hostile_host.c and checks that it held.
fn hostile_host(mode: &str) -> Ran {
    let dir = scratch();
    let exe = compile(
        "cc",
        "c11",
        "hostile_host.c",
        &dir.path().join("bin"),
        Link::Shared,
    );
    let mut cmd = Command::new(exe);
    cmd.arg(mode).arg(dir.path().join("work"));
    let ran = run(cmd, dir.path());
    assert!(
        ran.ok && ran.stdout.contains(&format!("{mode}: ok")),
        "hostile_host {mode} failed\n{}",
        ran.describe()
    );
    ran
}

#[test]
fn a_c_host_that_reaps_every_child_loses_no_exit() {
    let ran = hostile_host("reap");
    ran.expect_lines(&["reap: ok"]);
}

#[test]
fn a_c_subscription_freed_while_its_callback_subscribes_does_not_deadlock() {
    hostile_host("unsubscribe");
}

#[test]
fn two_c_callbacks_that_free_each_others_subscriptions_do_not_deadlock() {
    hostile_host("crossfree");
}

#[test]
fn a_dead_guardian_does_not_kill_the_c_host_with_sigpipe() {
    hostile_host("sigpipe");
}

#[test]
fn c_defaults_reap_nothing_of_the_host_and_tie_programs_to_it() {
    hostile_host("defaults");
}

#[test]
fn programs_of_a_sigkilled_c_host_with_default_options_die() {
    sigkilled_host("host");
}

/// The last supervisor freed ends every gosuv thread and the guardian process (which is
/// what makes valgrind quiet); a supervisor made afterwards has a new guardian, which kills
/// its programs when the host is SIGKILLed.
#[test]
fn a_freed_c_supervisor_leaves_no_thread_and_the_next_one_is_guarded_again() {
    sigkilled_host("again");
}

/// Runs hostile_host `mode`, which prints "PGIDS a b c" once its 3 programs run, SIGKILLs
/// it and checks that the programs die.
fn sigkilled_host(mode: &str) {
    use std::io::{BufRead, BufReader};
    let dir = scratch();
    let exe = compile(
        "cc",
        "c11",
        "hostile_host.c",
        &dir.path().join("bin"),
        Link::Shared,
    );
    let mut host = Command::new(exe)
        .arg(mode)
        .arg(dir.path().join("work"))
        .env_remove("LD_LIBRARY_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run hostile_host host");
    let stdout = host.stdout.take().expect("stdout");
    let mut pgids: Vec<i32> = Vec::new();
    let mut before = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if line.starts_with("FAILED") {
            let _ = host.kill();
            panic!("hostile_host {mode}: {line}");
        }
        before += &line;
        before += "\n";
        if let Some(rest) = line.strip_prefix("PGIDS ") {
            pgids = rest
                .split_whitespace()
                .map(|p| p.parse().expect("pgid"))
                .collect();
            break;
        }
    }
    assert_eq!(
        pgids.len(),
        3,
        "the host did not report its programs; it printed\n{before}"
    );
    // Each program is a shell and two sleeps: 9 processes.
    let members = |pgids: &[i32]| -> usize {
        let mut n = 0;
        for e in fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            let live = f.first().is_some_and(|s| *s != "Z");
            let pgrp: i32 = f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
            if live && pgids.contains(&pgrp) {
                n += 1;
            }
        }
        n
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while members(&pgids) < 9 {
        assert!(Instant::now() < deadline, "the programs did not all start");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(host.id() as i32, libc::SIGKILL) };
    let _ = host.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while members(&pgids) > 0 {
        if Instant::now() > deadline {
            for g in &pgids {
                // SAFETY: plain kill(2) of the test's leftovers.
                unsafe { libc::kill(-g, libc::SIGKILL) };
            }
            panic!("the programs of a SIGKILLed C host with default options kept running");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Compiles tests/cpp/`source` as C++17 with warnings as errors and `extra` flags, against
/// the shared library.
fn compile_cpp_test(source: &str, exe_name: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let exe = out.join(exe_name);
    let mut cmd = Command::new("c++");
    cmd.args([
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-g",
        "-pthread",
    ])
    .args(extra)
    .arg("-I")
    .arg(repo_root().join("include"))
    .arg("-o")
    .arg(&exe)
    .arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/cpp")
            .join(source),
    )
    .args(link_args(Link::Shared));
    run(cmd, out).expect_ok(&format!("c++ -std=c++17 {}", extra.join(" ")));
    exe
}

/// Checks what tests/cpp/wrapper.cpp printed: every check passed, and the default callback
/// error handler wrote its line on standard error.
fn expect_wrapper_passed(ran: &Ran) {
    assert!(
        ran.ok && ran.stdout.contains(" passed, 0 failed"),
        "tests/cpp/wrapper.cpp failed\n{}",
        ran.describe()
    );
    ran.expect_lines(&["-- moves"]);
    assert!(
        ran.stderr.contains(
            "gosuv: caught an exception thrown by the event callback: boom for the default \
             handler\n"
        ),
        "the default handler did not report the callback's exception on stderr\n{}",
        ran.describe()
    );
}

#[test]
fn cpp_wrapper_under_address_and_undefined_behaviour_sanitizers() {
    let dir = scratch();
    let exe = compile_cpp_test(
        "wrapper.cpp",
        "wrapper-asan",
        &dir.path().join("bin"),
        &[
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
        ],
    );
    let mut cmd = with_arg(&exe, &dir.path().join("work"));
    cmd.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .env("UBSAN_OPTIONS", "print_stacktrace=1");
    let ran = run(cmd, dir.path());
    expect_wrapper_passed(&ran);
}

#[test]
fn valgrind_finds_no_errors_or_leaks_in_the_cpp_wrapper_tests() {
    let dir = scratch();
    let exe = compile_cpp_test("wrapper.cpp", "wrapper", &dir.path().join("bin"), &[]);
    let ran = valgrind(&exe, &dir.path().join("work"), dir.path());
    expect_wrapper_passed(&ran);
}
