//! The Debian package: built by contrib/deb/build.sh (debhelper) from the
//! binary the tests run, its contents and maintainer scripts read back
//! with `dpkg-deb`, checked by `lintian` (no error, no warning, and only
//! the two intended overrides), then installed with `dpkg -i` (the system
//! user created, `novabmc --version` and `novabmc check` on the example
//! configuration, `man novabmc`, the bash completion) and purged.
//! Installing needs root, as CI has; the test says so rather than skip.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{Out, require_tool};

fn run(program: &str, args: &[&str]) -> Out {
    require_tool(program);
    Out::collect(Command::new(program).args(args), program)
}

/// Purges the package when dropped, so a failing test leaves nothing
/// installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let out = run("dpkg", &["-P", "novabmc"]);
        if out.code != Some(0) {
            eprintln!("dpkg -P novabmc failed: {out:#?}");
        }
    }
}

#[test]
fn the_package_builds_installs_and_purges() {
    let uid = run("id", &["-u"]);
    assert_eq!(
        uid.ok().trim(),
        "0",
        "this test installs the package with dpkg -i and needs root: run the \
         suite as root (CI does)"
    );
    for tool in [
        "dpkg-deb",
        "dpkg",
        "dpkg-query",
        "dpkg-buildpackage",
        "dh",
        "adduser",
        "lintian",
        "man",
    ] {
        require_tool(tool);
    }
    let before = run("dpkg-query", &["-W", "-f", "${Status}", "novabmc"]);
    assert!(
        !before.stdout.contains("installed"),
        "a novabmc package is already installed here; this test would replace \
         and purge it: {before:#?}"
    );

    let out = tempfile::tempdir().expect("dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The debug symbols of the test binary (hundreds of megabytes) would
    // take a minute to compress into novabmc-dbgsym: not built here.
    let built = Out::collect(
        Command::new("sh")
            .arg(root.join("contrib/deb/build.sh"))
            .arg(env!("CARGO_BIN_EXE_novabmc"))
            .arg(out.path())
            .env("DEB_BUILD_OPTIONS", "noautodbgsym"),
        "contrib/deb/build.sh",
    );
    let deb = built.ok().trim().to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert!(deb.contains(&format!("novabmc_{version}_")), "{deb}");

    let contents = run("dpkg-deb", &["-c", &deb]);
    let listing = contents.ok();
    // debhelper puts units in /lib up to Debian 12 and in /usr/lib after.
    let unit_path = if listing.contains("./usr/lib/systemd/system/novabmc.service") {
        "./usr/lib/systemd/system/novabmc.service"
    } else {
        "./lib/systemd/system/novabmc.service"
    };
    for (path, mode) in [
        ("./usr/bin/novabmc", "-rwxr-xr-x"),
        (unit_path, "-rw-r--r--"),
        ("./etc/novabmc/novabmc.toml", "-rw-r-----"),
        ("./usr/share/doc/novabmc/README.md.gz", "-rw-r--r--"),
        ("./usr/share/doc/novabmc/copyright", "-rw-r--r--"),
        ("./usr/share/doc/novabmc/changelog.gz", "-rw-r--r--"),
        ("./usr/share/man/man1/novabmc.1.gz", "-rw-r--r--"),
        ("./usr/share/man/man1/novabmc-serve.1.gz", "-rw-r--r--"),
        ("./usr/share/man/man1/novabmc-routes.1.gz", "-rw-r--r--"),
        (
            "./usr/share/bash-completion/completions/novabmc",
            "-rw-r--r--",
        ),
        ("./usr/share/zsh/vendor-completions/_novabmc", "-rw-r--r--"),
        (
            "./usr/share/fish/vendor_completions.d/novabmc.fish",
            "-rw-r--r--",
        ),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path)),
            "{path} ({mode}) missing:\n{listing}"
        );
    }
    let info = run("dpkg-deb", &["-I", &deb]);
    let info = info.ok();
    for want in [
        "Package: novabmc",
        &format!("Version: {version}"),
        "Depends: adduser, libc6",
        "conffiles",
        "postinst",
        "prerm",
        "postrm",
    ] {
        assert!(info.contains(want), "{want} missing:\n{info}");
    }
    let conffiles = run("dpkg-deb", &["-I", &deb, "conffiles"]);
    assert_eq!(conffiles.ok().trim(), "/etc/novabmc/novabmc.toml");
    let postinst = run("dpkg-deb", &["-I", &deb, "postinst"]);
    let postinst = postinst.ok();
    for want in ["adduser --system", "deb-systemd-helper update-state"] {
        assert!(postinst.contains(want), "{want} missing:\n{postinst}");
    }
    // Installed, not enabled: nothing starts before the example is edited.
    assert!(
        !postinst.contains("deb-systemd-helper enable novabmc"),
        "{postinst}"
    );
    let prerm = run("dpkg-deb", &["-I", &deb, "prerm"]);
    assert!(prerm.ok().contains("deb-systemd-invoke stop"), "{prerm:#?}");
    let copyright = Out::collect(
        Command::new("sh").arg("-c").arg(format!(
            "dpkg-deb --fsys-tarfile '{deb}' | tar -xO ./usr/share/doc/novabmc/copyright"
        )),
        "read the packaged copyright",
    );
    let copyright = copyright.ok();
    for want in [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        "Files: vendor/tokio-",
        "Files: vendor/unsafe-libyaml-",
        "License: MIT\n",
    ] {
        assert!(copyright.contains(want), "{want} missing:\n{copyright}");
    }

    // The packaged page, read from the package: minimal Debian images
    // tell dpkg not to install /usr/share/man.
    let man = Out::collect(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "dpkg-deb --fsys-tarfile '{deb}' \
                 | tar -xO ./usr/share/man/man1/novabmc-routes.1.gz | man -l -"
            ))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80"),
        "man -l the packaged novabmc-routes(1)",
    );
    assert!(man.ok().contains("novabmc routes"), "{man:#?}");

    // Debian's own checker: no error, no warning, and no override but the
    // two intended ones (the conffile's mode, serde_yaml's libyaml), each
    // shown with its reason.
    let lintian = Out::collect(
        Command::new("lintian").args(["--show-overrides", &deb]),
        "lintian",
    );
    println!("lintian {deb}:\n{}{}", lintian.stdout, lintian.stderr);
    // With --show-overrides lintian counts the overridden error
    // (embedded-library) and exits 2; the tags below are what counts.
    assert!(
        matches!(lintian.code, Some(0 | 2)),
        "lintian failed: {lintian:#?}"
    );
    let tags: Vec<&str> = lintian
        .stdout
        .lines()
        .filter(|l| !l.starts_with("N: "))
        .collect();
    assert_eq!(
        tags,
        [
            "O: novabmc: embedded-library libyaml [usr/bin/novabmc]",
            "O: novabmc: non-standard-file-perm 0640 != 0644 [etc/novabmc/novabmc.toml]",
        ],
        "lintian found problems: {lintian:#?}"
    );

    let installed = run("dpkg", &["-i", &deb]);
    let guard = Installed;
    installed.ok();
    let v = run("/usr/bin/novabmc", &["--version"]);
    assert_eq!(v.ok().trim(), format!("novabmc {version}"));
    run("getent", &["passwd", "novabmc"]).ok();
    let group = run("stat", &["-c", "%G %a", "/etc/novabmc/novabmc.toml"]);
    assert_eq!(group.ok().trim(), "novabmc 640");
    let checked = run(
        "/usr/bin/novabmc",
        &["check", "--config", "/etc/novabmc/novabmc.toml"],
    );
    assert!(checked.ok().contains("example-0"), "{checked:#?}");
    let completion = run(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/novabmc && complete -p novabmc",
        ],
    );
    assert!(completion.ok().contains("-F _novabmc"), "{completion:#?}");

    drop(guard);
    assert!(
        !Path::new("/usr/bin/novabmc").exists(),
        "purge left the binary"
    );
    assert!(
        !Path::new("/etc/novabmc/novabmc.toml").exists(),
        "purge left the conffile"
    );
}
