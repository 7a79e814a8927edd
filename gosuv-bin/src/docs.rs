//! What the shell and `man` read, made from the same clap definitions as the command line:
//! completion scripts (program names from the server, through the hidden `gosuv __names`),
//! the manual page, and `gosuv help`.

use std::io::Write;
use std::path::Path;

use crate::client::Client;
use crate::{CliResult, Failure};

/// The commands whose arguments are program names.
const NAME_COMMANDS: [&str; 10] = [
    "start", "stop", "restart", "status", "st", "signal", "logs", "wait", "tail", "__names",
];

pub fn completions(shell: clap_complete::Shell) -> CliResult {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "gosuv", &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    let commands = NAME_COMMANDS[..9].join(" ");
    let signals = gosuv::signal_names().join("\n");
    // Program names come from the server (`gosuv __names`, with the -c given on the line):
    // the generated script knows only the commands and options.
    let extra = match shell {
        clap_complete::Shell::Bash => format!(
            r#"
# Program names, from the server when it answers.
_gosuv_with_names() {{
    _gosuv "$@"
    local i conf=() sub="" npos=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            -c|--conf) conf=(-c "${{COMP_WORDS[i+1]}}"); i=$((i + 1)) ;;
            --conf=*) conf=(-c "${{COMP_WORDS[i]#--conf=}}") ;;
            -*) ;;
            *) if [[ -z "$sub" ]]; then sub="${{COMP_WORDS[i]}}"; else npos=$((npos + 1)); fi ;;
        esac
    done
    local cur="${{COMP_WORDS[COMP_CWORD]}}" IFS=$'\n'
    [[ "$cur" == -* ]] && return
    if [[ "$sub" == signal && $npos -eq 0 ]]; then
        COMPREPLY+=($(compgen -W "{signals}" -- "$cur"))
        return
    fi
    case " {commands} " in
        *" $sub "*)
            COMPREPLY+=($(compgen -W "$(gosuv "${{conf[@]}}" __names 2>/dev/null)" -- "$cur"))
            ;;
    esac
}}
complete -F _gosuv_with_names -o bashdefault -o default gosuv
"#
        ),
        clap_complete::Shell::Zsh => format!(
            r#"
# Program names, from the server when it answers (with the -c given on the line).
_gosuv_with_names() {{
    local i sub="" conf=()
    for (( i = 2; i < CURRENT; i++ )); do
        case "${{words[i]}}" in
            -c|--conf) conf=(-c "${{words[i+1]}}"); (( i++ )) ;;
            --conf=*) conf=(-c "${{words[i]#--conf=}}") ;;
            -*) ;;
            *) [[ -z "$sub" ]] && sub="${{words[i]}}" ;;
        esac
    done
    if [[ -n "$sub" && " {commands} " == *" $sub "* && $PREFIX != -* ]]; then
        local -a names
        names=(${{(f)"$(gosuv "${{conf[@]}}" __names 2>/dev/null)"}})
        compadd -a names
    fi
    _gosuv "$@"
}}
compdef _gosuv_with_names gosuv
"#
        ),
        clap_complete::Shell::Fish => format!(
            r#"
# Program names, from the server when it answers (with the -c given on the line).
function __gosuv_names
    set -l words (commandline -opc)
    set -l conf
    set -l i 2
    while test $i -le (count $words)
        switch $words[$i]
            case -c --conf
                set i (math $i + 1)
                set conf -c $words[$i]
            case '--conf=*'
                set conf -c (string replace -- --conf= '' $words[$i])
        end
        set i (math $i + 1)
    end
    gosuv $conf __names 2>/dev/null
end
complete -c gosuv -n "__fish_seen_subcommand_from {commands}" -f -a "(__gosuv_names)"
"#
        ),
        _ => String::new(),
    };
    script.push_str(&extra);
    let _ = std::io::stdout().lock().write_all(script.as_bytes());
    Ok(())
}

/// One page: the main sections, then each command with its synopsis, description and
/// options (clap_mangen's own subcommand list points to a page per command, which a single
/// binary does not install).
pub fn man() -> CliResult {
    use clap::CommandFactory;
    let failed = |e: std::io::Error| Failure::new(format!("cannot write the manual page: {e}"));
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    page.render_title(&mut out).map_err(failed)?;
    page.render_name_section(&mut out).map_err(failed)?;
    page.render_synopsis_section(&mut out).map_err(failed)?;
    page.render_description_section(&mut out).map_err(failed)?;
    page.render_options_section(&mut out).map_err(failed)?;
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let part = clap_mangen::Man::new(sub.clone());
        let mut text = Vec::new();
        part.render_synopsis_section(&mut text).map_err(failed)?;
        part.render_description_section(&mut text).map_err(failed)?;
        part.render_options_section(&mut text).map_err(failed)?;
        let text = String::from_utf8_lossy(&text)
            .replace(".SH SYNOPSIS\n", "")
            .replace(".SH DESCRIPTION\n", ".PP\n")
            .replace(".SH OPTIONS\n", ".PP\nOptions:\n");
        let aliases: Vec<&str> = sub.get_visible_aliases().collect();
        let heading = match aliases.as_slice() {
            [] => sub.get_name().to_string(),
            a => format!("{} (alias {})", sub.get_name(), a.join(", ")),
        };
        let heading = heading.replace('-', "\\-");
        out.extend_from_slice(format!(".SS \"{heading}\"\n").as_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    page.render_version_section(&mut out).map_err(failed)?;
    let _ = std::io::stdout().lock().write_all(&out);
    Ok(())
}

pub fn help(path: &[String]) -> CliResult {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    let mut at = &mut cmd;
    for name in path {
        let Some(sub) = at.find_subcommand_mut(name) else {
            return Err(Failure::new(format!(
                "no command '{name}': 'gosuv help' lists them"
            )));
        };
        at = sub;
    }
    let _ = at.print_help();
    Ok(())
}

/// How long completion waits for the server's names.
const NAMES_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The server's program names, one a line; nothing at all when it does not answer (this
/// runs under shell completion, which must stay quiet).
pub fn print_names(conf: &Path) {
    let mut out = std::io::stdout().lock();
    for n in server_names(conf) {
        let _ = writeln!(out, "{n}");
    }
}

/// The server's program names; none when it does not answer within half a second (a shell
/// waits for this at each Tab: a server that accepts and never answers must not hang it).
pub fn server_names(conf: &Path) -> Vec<String> {
    let Ok(config) = gosuv::ServerConfig::load_lenient(conf).map(|(c, _)| c) else {
        return Vec::new();
    };
    let Ok(client) = Client::from_config(&config) else {
        return Vec::new();
    };
    let client = client.with_timeout(NAMES_TIMEOUT);
    crate::commands::names_of(&client).unwrap_or_default()
}

/// Whether a command's arguments are program names.
pub fn takes_names(command: &str) -> bool {
    NAME_COMMANDS[..9].contains(&command)
}
