//! `numprocs`: one entry of programs.yml runs N instances, each with its own number in its
//! name, command, environment and directory.

use std::path::Path;

use gosuv::config::{parse_programs, Command, Condition, MAX_INSTANCES, MAX_NUMPROCS};

fn parse(text: &str) -> Result<Vec<gosuv::ProgramConfig>, String> {
    parse_programs(text, Some(Path::new("programs.yml")), Path::new("/srv"))
        .map_err(|e| e.to_string())
}

#[test]
fn three_instances_each_with_their_number() {
    let ps = parse(
        "- name: worker\n  numprocs: 3\n  command: [run, --id, \"{n}\", \"x{n}y\"]\n  environ: {SLOT: \"{n}\", FIXED: same}\n  directory: /var/w{n}\n  start_auto: true\n- name: solo\n  command: echo {n}\n",
    )
    .expect("valid");
    let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["worker-0", "worker-1", "worker-2", "solo"]);
    for (n, p) in ps[..3].iter().enumerate() {
        let n = n.to_string();
        assert_eq!(
            p.command,
            Command::Argv(vec![
                "run".into(),
                "--id".into(),
                n.clone(),
                format!("x{n}y")
            ])
        );
        assert_eq!(
            p.environ,
            vec![("SLOT".into(), n.clone()), ("FIXED".into(), "same".into())]
        );
        assert_eq!(
            p.directory.as_deref(),
            Some(Path::new(&format!("/var/w{n}")))
        );
        assert!(p.start_auto);
        // An instance is a program of its own: numprocs 1, and it knows its entry.
        assert_eq!(p.numprocs, 1);
        assert_eq!(
            p.instance_of,
            Some(("worker".into(), n.parse().expect("n")))
        );
    }
    // `{n}` means nothing outside a numprocs entry, and a shell string takes it too.
    assert_eq!(ps[3].command, Command::Shell("echo {n}".into()));
    assert_eq!(ps[3].instance_of, None);
    let shell = parse("- name: s\n  numprocs: 2\n  command: serve --port 80{n}\n").expect("valid");
    assert_eq!(shell[1].command, Command::Shell("serve --port 801".into()));
}

#[test]
fn numprocs_one_is_the_program_itself_and_is_not_written() {
    let ps = parse("- name: a\n  numprocs: 1\n  command: x {n}\n").expect("valid");
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].name, "a");
    assert_eq!(ps[0].instance_of, None);
    let yaml = serde_yaml::to_string(&ps[0]).expect("yaml");
    assert!(!yaml.contains("numprocs"), "{yaml}");
    let mut entry = ps[0].clone();
    entry.numprocs = 4;
    let yaml = serde_yaml::to_string(&entry).expect("yaml");
    assert!(yaml.contains("numprocs: 4"), "{yaml}");
    assert!(!yaml.contains("instance_of"), "{yaml}");
}

#[test]
fn limits() {
    for bad in [
        "0",
        "-1",
        "1001",
        "2.5",
        "lots",
        "99999999999999999999",
        "[]",
    ] {
        let e = parse(&format!("- name: a\n  command: x\n  numprocs: {bad}\n")).unwrap_err();
        assert!(e.contains("programs.yml:3: "), "{bad}: {e}");
        assert!(e.contains("numprocs"), "{bad}: {e}");
        assert!(
            e.contains(&format!("from 1 to {MAX_NUMPROCS}")),
            "{bad}: {e}"
        );
    }
    let ps = parse(&format!(
        "- name: a\n  command: x\n  numprocs: {MAX_NUMPROCS}\n"
    ))
    .expect("the most is allowed");
    assert_eq!(ps.len(), MAX_NUMPROCS as usize);
    assert_eq!(ps[999].name, "a-999");
}

#[test]
fn instance_names_must_be_valid() {
    let long = "x".repeat(62);
    let e = parse(&format!("- name: {long}\n  command: x\n  numprocs: 11\n")).unwrap_err();
    assert!(
        e.contains("programs.yml:3: [0].numprocs: numprocs 11 names the last instance"),
        "{e}"
    );
    assert!(e.contains("shorten `name`"), "{e}");
    // 62 + "-9" is 64: fine.
    parse(&format!("- name: {long}\n  command: x\n  numprocs: 10\n")).expect("64 characters");
}

#[test]
fn an_instance_name_taken_by_another_program_names_both() {
    let e = parse("- name: web-1\n  command: a\n- name: web\n  command: b\n  numprocs: 2\n")
        .unwrap_err();
    assert!(
        e.contains("programs.yml:5: [1].numprocs: instance 'web-1' of 'web' (numprocs 2, line 3) has the name of program 'web-1' (line 1): rename one of them"),
        "{e}"
    );
    // Either order.
    let e = parse("- name: web\n  command: b\n  numprocs: 3\n- name: web-2\n  command: a\n")
        .unwrap_err();
    assert!(e.contains("instance 'web-2' of 'web'"), "{e}");
    // The base name itself stays taken.
    let e =
        parse("- name: web\n  command: b\n  numprocs: 3\n- name: web\n  command: a\n").unwrap_err();
    assert!(e.contains("duplicate name 'web'"), "{e}");
}

#[test]
fn depending_on_an_entry_is_depending_on_every_instance() {
    let ps = parse(
        "- name: db\n  command: d\n  numprocs: 2\n- name: app\n  command: a\n  depends_on: [{name: db, condition: started}]\n",
    )
    .expect("valid");
    let app = ps.iter().find(|p| p.name == "app").expect("app");
    let deps: Vec<(&str, Condition)> = app
        .depends_on
        .iter()
        .map(|d| (d.name.as_str(), d.condition))
        .collect();
    assert_eq!(
        deps,
        [("db-0", Condition::Started), ("db-1", Condition::Started)]
    );
    // One instance by its name works too; an unknown name is still an error.
    parse("- name: db\n  command: d\n  numprocs: 2\n- name: app\n  command: a\n  depends_on: [db-1]\n")
        .expect("one instance");
    let e = parse("- name: db\n  command: d\n  numprocs: 2\n- name: app\n  command: a\n  depends_on: [db-7]\n")
        .unwrap_err();
    assert!(e.contains("db-7"), "{e}");
    // The instances of an entry with depends_on each depend on it.
    let ps = parse(
        "- name: base\n  command: b\n- name: w\n  command: w\n  numprocs: 2\n  depends_on: [base]\n",
    )
    .expect("valid");
    assert!(ps[1..]
        .iter()
        .all(|p| p.depends_on.len() == 1 && p.depends_on[0].name == "base"));
}

#[test]
fn a_small_file_cannot_ask_for_a_million_programs() {
    let text: String = (0..1000)
        .map(|i| format!("- name: p{i}\n  command: x\n  numprocs: 1000\n"))
        .collect();
    let started = std::time::Instant::now();
    let e = parse(&text).unwrap_err();
    let head = &e[..e.len().min(500)];
    // The first entry past the bound is named, with its line.
    assert!(
        e.contains("programs.yml:33: [10].numprocs: the numprocs of this file's entries add up to 11000 programs so far: at most 10000; lower numprocs"),
        "{head}"
    );
    assert!(e.contains(&format!("at most {MAX_INSTANCES}")), "{head}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
