//! The command line: `gosuv [-c config.yml] COMMAND`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// gosuv: a process supervisor with a CLI, a REST API and a web page.
///
/// `gosuv start-server` runs the server on config.yml (written with defaults when missing);
/// every other command talks to that server over `client.server_url`.
#[derive(Debug, Parser)]
#[command(
    name = "gosuv",
    version,
    propagate_version = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The config file: server and client settings (its programs file sits beside it).
    #[arg(
        short = 'c',
        long = "conf",
        global = true,
        default_value = "config.yml"
    )]
    pub conf: PathBuf,

    /// What to do; with none, on a terminal, the shell (`gosuv shell`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server (in the background unless -f); writes a default config.yml when
    /// there is none. Prints `server started, listening <addresses>` once it answers.
    StartServer {
        /// Stay in the foreground, logging to gosuv.log (and to the terminal).
        #[arg(short = 'f', long)]
        foreground: bool,
        /// Internal: set by the background start for the detached server process.
        #[arg(long, hide = true)]
        daemon_child: bool,
        /// Internal: the locked pidfile a re-executed server keeps (its descriptor).
        #[arg(long, hide = true)]
        pidfile_fd: Option<i32>,
        /// Internal: this is a server that re-executed itself (signals blocked across the
        /// exec, programs to take over, the stopped ones listed).
        #[arg(long, hide = true)]
        reexecuted: bool,
    },
    /// Stop every program, then stop the server; returns once the server has exited.
    Shutdown,
    /// Print `server is running` and exit 0, or say why not and exit 1.
    StatusServer,
    /// Restart the server as the gosuv binary running this command (an upgrade: install the
    /// new binary, then restart-server) with config.yml read again, keeping every program
    /// whose config did not change running (same pid). The new binary and config are
    /// checked first: if either is refused, nothing changes.
    RestartServer {
        /// Stop every program, then the server, and start it all again (what restart-server
        /// did before it kept programs).
        #[arg(long)]
        programs: bool,
    },
    /// Signal the server in the pidfile: SIGTERM (graceful, like shutdown) and wait for it to
    /// exit; with -9, SIGKILL at once (its programs are left running until the next
    /// start-server stops them before starting its own).
    Kill {
        /// Send SIGKILL instead of SIGTERM.
        #[arg(short = '9')]
        force: bool,
    },
    /// Re-read the programs file: prints `load config success` and which programs were
    /// added, changed and removed. A bad file changes nothing.
    Reload,
    /// Check config.yml and the programs file; prints every error with its file and line and
    /// exits 1 if there is any.
    #[command(visible_alias = "t")]
    Conftest,
    /// Open the programs file in $EDITOR (default vi), then check it like conftest.
    Edit,
    /// Print a table of every program (or of those named): name, state, pid, uptime,
    /// restarts, CPU, memory, last exit and last error. With `ready` probes, READY IN (spawn
    /// to ready); with `health` probes, HEALTH (ok, or failed checks in a row of those that
    /// restart it); a waiting program says what it waits for. Exits 1 when a name or glob
    /// matches no program.
    #[command(visible_alias = "st")]
    Status {
        /// Programs: names or shell globs (`web-*`); every program when none is given.
        names: Vec<String>,
        /// Print the programs as a JSON array, as the API returns them.
        #[arg(long)]
        json: bool,
    },
    /// Start programs and wait until they are running (ready, with a `ready` probe; their
    /// dependencies are started first); prints each one's state, or why it could not start.
    Start(Target),
    /// Stop programs and wait until their processes are gone (dependents first); prints each
    /// one's state.
    Stop(Target),
    /// Stop then start programs; prints each one's state.
    Restart(Target),
    /// Send a signal to every process of programs (to reload their config, rotate logs...):
    /// `gosuv signal HUP web`. A program that is not running is an error (exit 1); the others
    /// still get the signal.
    Signal {
        /// The signal: a name with or without SIG (HUP, SIGUSR1) or a number.
        signal: String,
        /// Programs: names or shell globs, or `all`.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print the last lines of a program's output; with -f, keep printing new output.
    Tail {
        /// The program (a glob must match exactly one).
        name: String,
        /// Follow: print output as it comes until interrupted or the program is removed.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many lines to print first.
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        lines: usize,
        /// Show standard error instead of standard output.
        #[arg(long)]
        stderr: bool,
    },
    /// Print every program's output (or that of those named), stdout and stderr, each line
    /// prefixed `name | `: the last lines of each first, then with -f what comes, in the order
    /// it comes, until interrupted or the server stops. Colours (one per program, standard
    /// error in red) only on a terminal, and never with NO_COLOR set.
    Logs {
        /// Programs: names or shell globs; every program (and, with -f, those added meanwhile)
        /// when none is given.
        names: Vec<String>,
        /// Follow: keep printing new output.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many lines of each stream to print first.
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        lines: usize,
    },
    /// A live full-screen view, redrawn as things change: every program with its state, pid,
    /// uptime, restarts, CPU, memory and a sparkline of its CPU over the last minute, and the
    /// selected program's output as it comes. Keys: Up/Down select, s start, x stop (asks
    /// first), r restart, l stdout/stderr, / filter, ? help, q quit. Needs a terminal: use
    /// `status` in scripts.
    Top,
    /// A prompt for these commands, like supervisorctl's (also `gosuv` alone, on a
    /// terminal): line editing, history in ~/.gosuv_history, Tab completion of commands,
    /// options and program names; Ctrl-C abandons the line or the command under way; exit,
    /// quit or Ctrl-D leaves. Without a terminal it runs one command a line from standard
    /// input and exits 1 if any failed.
    Shell,
    /// Wait until programs are running (ready, when they have a `ready` probe): exit 0 when
    /// all are, 1 naming the first that went fatal (with its last error) or the timeout.
    /// Starts nothing.
    Wait {
        /// Programs: names or shell globs, or `all`.
        #[arg(required = true)]
        names: Vec<String>,
        /// Seconds to wait at most (default 30, at most a day).
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Print a completion script for a shell: `source <(gosuv completions bash)`. Program
    /// names complete from the server when it answers.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `gosuv man | man -l -`.
    Man,
    /// Print the version of this command (and of the server when it answers).
    #[command(visible_alias = "v")]
    Version,
    /// Print this help, or the help of a command.
    #[command(visible_alias = "h")]
    Help {
        /// The command.
        command: Vec<String>,
    },
    /// Internal: the program names of the server, one a line, for shell completion
    /// (nothing when the server does not answer).
    #[command(name = "__names", hide = true)]
    Names,
    /// Internal: the server's holder of its programs' output pipes.
    #[command(name = "__holder", hide = true)]
    Holder,
}

/// Programs to act on.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Programs: names or shell globs (`'web-*'`), or `all` for every program. A name or glob
    /// that matches no program is an error, and then nothing is done.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Return once the request is sent instead of waiting for the resulting state.
    #[arg(long)]
    pub no_wait: bool,
}
