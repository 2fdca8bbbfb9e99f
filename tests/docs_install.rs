//! Shell completions and man pages come from the CLI definition (`stellamirror completions`,
//! `stellamirror man`) and are installed by `make install`; checked with the real bash
//! completion machinery and the real `man`.

use std::process::Command;

use stellamirror_tests::{bin, p, sm};

#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stellamirror.bash");
    std::fs::write(&script, sm(["completions", "bash"]).ok().stdout).unwrap();
    let complete = |line: &str| -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let cmd = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
             _stellamirror stellamirror '{}' '{}'; echo \"${{COMPREPLY[@]}}\"",
            p(&script),
            words.join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Command::new("bash").arg("-c").arg(cmd).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete("stellamirror imp").trim(), "import");
    let flags = complete("stellamirror import --tr");
    assert!(flags.contains("--trust"), "{flags}");
}

#[test]
fn man_pages_render_with_man_and_carry_the_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    sm(["man", "--out", p(&out)]).ok();
    for page in [
        "stellamirror",
        "stellamirror-ingest",
        "stellamirror-import",
        "stellamirror-export-delta",
    ] {
        let file = out.join(format!("{page}.1"));
        assert!(file.is_file(), "{} missing", file.display());
    }
    let text = Command::new("man")
        .args(["-P", "cat", "-l", p(&out.join("stellamirror-import.1"))])
        .env("MANWIDTH", "200")
        .output()
        .expect("man is installed");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("stellamirror-import - Apply a bundle"), "{text}");
    assert!(text.contains("--trust"), "{text}");
    assert!(text.contains("Example:"), "{text}");
}

#[test]
fn every_subcommand_help_has_an_example() {
    let top = sm(["--help"]).ok().stdout;
    let subcommands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|c| c != "help")
        .collect();
    assert!(subcommands.len() >= 10, "{subcommands:?}");
    for sub in &subcommands {
        let nested: Vec<&str> = if sub == "export" {
            vec!["full", "delta"]
        } else {
            vec![""]
        };
        for n in nested {
            let mut args = vec![sub.as_str()];
            if !n.is_empty() {
                args.push(n);
            }
            args.push("--help");
            let help = Command::new(bin()).args(&args).output().unwrap();
            let help = String::from_utf8_lossy(&help.stdout);
            assert!(help.contains("Example:\n  stellamirror "), "{args:?}:\n{help}");
        }
    }
}
