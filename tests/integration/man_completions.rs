//! The manual pages and shell completions generated from the command line
//! definitions: `novabmc man DIR` writes novabmc(1) and one page per
//! subcommand, which `man -l` renders without a warning; the bash
//! completion of `novabmc completions bash`, loaded by bash, completes
//! `novabmc ro` to `routes`. Needs man-db (and its groff) and bash, which
//! contrib/test.sh installs; a missing one fails the test.

use crate::common;

use std::process::Command;

use common::{Out, require_tool};

/// The visible subcommands, from the clap definitions themselves, so a new
/// subcommand is checked without touching this test; a nested one (`network
/// apply`) as its page names it (`network-apply`).
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    for c in novabmc::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
    {
        out.push(c.get_name().to_string());
        for s in c.get_subcommands().filter(|s| !s.is_hide_set()) {
            out.push(format!("{}-{}", c.get_name(), s.get_name()));
        }
    }
    out
}

fn novabmc(args: &[&str]) -> Out {
    Out::collect(
        Command::new(env!("CARGO_BIN_EXE_novabmc")).args(args),
        "novabmc",
    )
}

#[test]
fn man_writes_a_page_per_subcommand_that_man_renders() {
    require_tool("man");
    let dir = tempfile::tempdir().expect("dir");
    novabmc(&["man", dir.path().to_str().expect("path")]).ok();
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name().into_string().expect("name"))
        .collect();
    pages.sort();
    let subcommands = subcommands();
    assert!(subcommands.iter().any(|s| s == "routes"), "{subcommands:?}");
    assert!(!subcommands.iter().any(|s| s == "man"), "{subcommands:?}");
    let mut want: Vec<String> = subcommands
        .iter()
        .map(|s| format!("novabmc-{s}.1"))
        .chain(["novabmc.1".to_string()])
        .collect();
    want.sort();
    // The hidden `man` subcommand is for packagers and has no page.
    assert_eq!(pages, want);

    for page in &want {
        let path = dir.path().join(page);
        let out = Out::collect(
            Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&path)
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80"),
            "man -l",
        );
        assert!(
            out.stderr.trim().is_empty(),
            "man reports problems in {page}:\n{}",
            out.stderr
        );
        let text = out.ok();
        assert!(text.contains("SYNOPSIS"), "{page}:\n{text}");
    }
    let main = Out::collect(
        Command::new("man")
            .arg("-l")
            .arg(dir.path().join("novabmc.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80"),
        "man -l",
    );
    let main = main.ok();
    println!("{main}");
    // novabmc(1) refers to the top-level pages; those refer to theirs.
    use clap::CommandFactory;
    let top: Vec<String> = novabmc::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    for s in &top {
        assert!(main.contains(&format!("novabmc-{s}(1)")), "{s}:\n{main}");
    }
}

/// What bash's programmable completion offers for the words typed so far
/// (the last one being completed), with the script `novabmc completions
/// bash` prints loaded as bash-completion would load it.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    require_tool("bash");
    let line = words.join(" ");
    let program = format!(
        r#"source "$1" || exit 1
fn=$(complete -p novabmc | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || {{ echo "the script registers no completion for novabmc" >&2; exit 1; }}
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE='{line}'
COMP_POINT=${{#COMP_LINE}}
"$fn" novabmc "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    let out = Out::collect(
        Command::new("bash")
            .arg("-c")
            .arg(program)
            .arg("bash")
            .arg(script),
        "bash completion",
    );
    out.ok().lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_subcommands_and_their_arguments() {
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("novabmc");
    let out = novabmc(&["completions", "bash"]);
    std::fs::write(&script, out.ok()).expect("write");

    assert_eq!(bash_complete(&script, &["novabmc", "ro"]), ["routes"]);
    assert_eq!(
        bash_complete(&script, &["novabmc", "n"]),
        ["nova-simulator", "network"]
    );
    let actions = bash_complete(&script, &["novabmc", "routes", ""]);
    for a in ["show", "apply", "flush"] {
        assert!(actions.iter().any(|w| w == a), "{a}: {actions:?}");
    }
    let formats = bash_complete(&script, &["novabmc", "--log-format", ""]);
    assert_eq!(formats, ["human", "json"]);
}

#[test]
fn completions_for_every_shell_clap_knows() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef novabmc"),
        ("fish", "complete -c novabmc"),
        ("elvish", "edit:completion:arg-completer[novabmc]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = novabmc(&["completions", shell]);
        let script = out.ok();
        assert!(script.contains(marker), "{shell}:\n{script}");
        assert!(script.contains("routes"), "{shell} lacks routes");
    }
    let bad = novabmc(&["completions", "tcsh"]);
    assert_eq!(bad.code, Some(2), "{bad:#?}");
}
