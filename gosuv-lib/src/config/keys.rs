//! What an unknown key gets: the name gosuv uses for a supervisord or pm2 setting, a
//! "did you mean" for a typo, or else the list of keys.

/// Every key of a program in `programs.yml` (and of its config as JSON), those read
/// elsewhere included.
pub const PROGRAM_KEYS: &[&str] = &[
    "name",
    "command",
    "environ",
    "env_file",
    "directory",
    "numprocs",
    "start_auto",
    "start_seconds",
    "start_retries",
    "start_limit",
    "autorestart",
    "exit_codes",
    "stop_signal",
    "stop_timeout",
    "user",
    "umask",
    "redirect_stderr",
    "log_disable",
    "log_max_bytes",
    "log_backups",
    "stdout_logfile",
    "stderr_logfile",
    "log_timestamps",
    "memory_max",
    "cgroup",
    "ready",
    "health",
    "depends_on",
];

/// supervisord's and pm2's names for what gosuv calls otherwise: (their name, what to say).
const FOREIGN_PROGRAM_KEYS: &[(&str, &str)] = &[
    // supervisord
    ("autostart", "`start_auto`"),
    ("startsecs", "`start_seconds`"),
    ("startretries", "`start_retries`"),
    ("stopsignal", "`stop_signal`"),
    ("stopwaitsecs", "`stop_timeout`"),
    ("environment", "`environ`"),
    ("exitcodes", "`exit_codes`"),
    ("stdout_logfile_maxbytes", "`log_max_bytes`"),
    ("stderr_logfile_maxbytes", "`log_max_bytes`"),
    ("stdout_logfile_backups", "`log_backups`"),
    ("stderr_logfile_backups", "`log_backups`"),
    (
        "process_name",
        "`name` (with `numprocs`, instances are named NAME-0, NAME-1 ...)",
    ),
    (
        "priority",
        "`depends_on` (list what must run first instead of a number)",
    ),
    (
        "stopasgroup",
        "nothing: gosuv always stops the whole process group",
    ),
    (
        "killasgroup",
        "nothing: gosuv always kills the whole process group",
    ),
    // pm2
    ("script", "`command`"),
    ("cwd", "`directory`"),
    ("env", "`environ`"),
    ("instances", "`numprocs`"),
    ("max_restarts", "`start_retries`"),
    ("min_uptime", "`start_seconds`"),
    ("kill_timeout", "`stop_timeout`"),
    ("max_memory_restart", "`memory_max`"),
    ("out_file", "`stdout_logfile`"),
    ("error_file", "`stderr_logfile`"),
    ("log_date_format", "`log_timestamps`"),
    (
        "autorestart_delay",
        "nothing: restarts back off by themselves (1 s, 2 s ... 60 s)",
    ),
];

/// The message for an unknown key of a program.
pub(crate) fn unknown_program_key(key: &str) -> String {
    if let Some((_, ours)) = FOREIGN_PROGRAM_KEYS
        .iter()
        .find(|(theirs, _)| theirs.eq_ignore_ascii_case(key))
    {
        return format!("unknown key `{key}`: gosuv calls it {ours} (see docs/config.md)");
    }
    unknown_key(key, PROGRAM_KEYS, "a program's keys")
}

/// The message for an unknown key among `known`, which `what` names (`server.log's keys`).
pub(crate) fn unknown_key(key: &str, known: &[&str], what: &str) -> String {
    match closest(key, known) {
        Some(k) => format!("unknown key `{key}`: did you mean `{k}`? (see docs/config.md)"),
        None => format!(
            "unknown key `{key}`; {what} are: {} (see docs/config.md)",
            known.join(", ")
        ),
    }
}

/// The known key nearest to `key`, when it is near enough to be a typo of it: few edits for
/// its length, or the same words in another case or with `-` for `_`.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm = key.to_ascii_lowercase().replace('-', "_");
    if let Some(k) = known.iter().find(|k| **k == norm) {
        return Some(k);
    }
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&norm, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(norm.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The keys of each mapping of `config.yml`, by the path of the mapping.
pub(crate) fn server_keys(path: &[&str]) -> &'static [&'static str] {
    match path {
        [] => &["include", "server", "client"],
        ["server"] => &[
            "httpserver",
            "unixserver",
            "auth",
            "pidfile",
            "log",
            "minfds",
            "minprocs",
        ],
        ["server", "httpserver"] => &["enabled", "addr"],
        ["server", "unixserver"] => &["enabled", "sockfile", "allow_uids", "allow_gids"],
        ["server", "auth"] => &["enabled", "username", "password", "ipfile"],
        ["server", "log"] => &["logpath", "level", "filemax", "backups"],
        ["client"] => &["server_url", "username", "password"],
        _ => &[],
    }
}

/// supervisord's names for keys of `config.yml`, by the mapping they belong in.
fn foreign_server_key(path: &[&str], key: &str) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    Some(match (path, k.as_str()) {
        (["server"], "logfile") => "`server.log.logpath` (a directory: gosuv.log is written there)",
        (["server"], "loglevel") => "`server.log.level`",
        (["server"], "logfile_maxbytes") => "`server.log.filemax`",
        (["server"], "logfile_backups") => "`server.log.backups`",
        (["server", "httpserver"], "port") => "`addr` (HOST:PORT)",
        (["server", "unixserver"], "file") => "`sockfile`",
        (["server", "httpserver" | "unixserver" | "auth"], "user") => "`server.auth.username`",
        ([], "files") => "`include` (one programs file)",
        _ => return None,
    })
}

/// The message for an unknown key of `config.yml` in the mapping at `path`.
pub(crate) fn unknown_server_key(path: &[&str], key: &str) -> String {
    if let Some(ours) = foreign_server_key(path, key) {
        return format!("unknown key `{key}`: gosuv calls it {ours} (see docs/config.md)");
    }
    let what = if path.is_empty() {
        "config.yml's top-level keys".to_string()
    } else {
        format!("{}'s keys", path.join("."))
    };
    unknown_key(key, server_keys(path), &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_names_get_ours() {
        assert_eq!(
            unknown_program_key("autostart"),
            "unknown key `autostart`: gosuv calls it `start_auto` (see docs/config.md)"
        );
        for (theirs, ours) in [
            ("startsecs", "`start_seconds`"),
            ("startretries", "`start_retries`"),
            ("stopsignal", "`stop_signal`"),
            ("stopwaitsecs", "`stop_timeout`"),
            ("environment", "`environ`"),
            ("exitcodes", "`exit_codes`"),
            ("stdout_logfile_maxbytes", "`log_max_bytes`"),
            ("stdout_logfile_backups", "`log_backups`"),
            ("process_name", "`numprocs`"),
            ("priority", "`depends_on`"),
            ("script", "`command`"),
            ("cwd", "`directory`"),
            ("env", "`environ`"),
            ("instances", "`numprocs`"),
            ("max_restarts", "`start_retries`"),
            ("min_uptime", "`start_seconds`"),
            ("kill_timeout", "`stop_timeout`"),
            ("max_memory_restart", "`memory_max`"),
            ("out_file", "`stdout_logfile`"),
            ("error_file", "`stderr_logfile`"),
            ("log_date_format", "`log_timestamps`"),
        ] {
            let m = unknown_program_key(theirs);
            assert!(
                m.contains("gosuv calls it") && m.contains(ours),
                "{theirs}: {m}"
            );
        }
    }

    #[test]
    fn typos_get_a_did_you_mean() {
        assert_eq!(
            unknown_program_key("comand"),
            "unknown key `comand`: did you mean `command`? (see docs/config.md)"
        );
        for (typo, key) in [
            ("start-auto", "start_auto"),
            ("Directory", "directory"),
            ("stop_timout", "stop_timeout"),
            ("enviorn", "environ"),
            ("numproc", "numprocs"),
            ("env_fle", "env_file"),
            ("log_timestamp", "log_timestamps"),
            ("start_limt", "start_limit"),
        ] {
            assert!(
                unknown_program_key(typo).contains(&format!("did you mean `{key}`?")),
                "{typo}: {}",
                unknown_program_key(typo)
            );
        }
    }

    #[test]
    fn nothing_close_lists_the_keys() {
        let m = unknown_program_key("colour");
        assert!(
            m.starts_with("unknown key `colour`; a program's keys are: name, command"),
            "{m}"
        );
        assert!(m.ends_with("(see docs/config.md)"), "{m}");
        for k in PROGRAM_KEYS {
            assert!(m.contains(k), "{k} missing from {m}");
        }
        // A short key is not "near" everything short.
        assert!(!unknown_program_key("xy").contains("did you mean"));
    }

    #[test]
    fn probe_and_dependency_keys_too() {
        let e = crate::config::parse_programs(
            "- name: a\n  command: x\n  ready: {htpp: \"http://127.0.0.1:1/\", timout: 5s}\n  health: {tcp: \"127.0.0.1:1\", failure: 2}\n  depends_on: [{nmae: b}]\n- name: b\n  command: y\n",
            None,
            std::path::Path::new("/"),
        )
        .expect_err("typos")
        .to_string();
        for want in [
            "ready.htpp: unknown key `htpp`: did you mean `http`?",
            "ready.timout: unknown key `timout`: did you mean `timeout`?",
            "health.failure: unknown key `failure`: did you mean `failures`?",
            "depends_on[0].nmae: unknown key `nmae`: did you mean `name`?",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
    }

    #[test]
    fn server_keys_too() {
        assert_eq!(
            unknown_server_key(&["server", "httpserver"], "adr"),
            "unknown key `adr`: did you mean `addr`? (see docs/config.md)"
        );
        assert!(unknown_server_key(&["server"], "pidfil").contains("did you mean `pidfile`?"));
        assert!(unknown_server_key(&["server"], "loglevel")
            .contains("gosuv calls it `server.log.level`"));
        let m = unknown_server_key(&[], "extra");
        assert!(
            m.contains("config.yml's top-level keys are: include, server, client"),
            "{m}"
        );
    }
}
