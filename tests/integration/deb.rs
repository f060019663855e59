//! The Debian package: built by contrib/deb/build.sh from the binary the
//! tests run, its contents and maintainer scripts read back with
//! `dpkg-deb`, then installed with `dpkg -i` (the system user created,
//! `novabmc --version` and `novabmc check` on the example configuration)
//! and purged. Installing needs root, as CI has; the test says so
//! rather than skip.

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
    for tool in ["dpkg-deb", "dpkg", "dpkg-query", "adduser"] {
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
    let built = run(
        "sh",
        &[
            root.join("contrib/deb/build.sh").to_str().expect("path"),
            env!("CARGO_BIN_EXE_novabmc"),
            out.path().to_str().expect("path"),
        ],
    );
    let deb = built.ok().trim().to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert!(deb.contains(&format!("novabmc_{version}_")), "{deb}");

    let contents = run("dpkg-deb", &["-c", &deb]);
    let listing = contents.ok();
    for (path, mode) in [
        ("./usr/bin/novabmc", "-rwxr-xr-x"),
        ("./lib/systemd/system/novabmc.service", "-rw-r--r--"),
        ("./etc/novabmc/novabmc.toml", "-rw-r-----"),
        ("./usr/share/doc/novabmc/README.md", "-rw-r--r--"),
        ("./usr/share/doc/novabmc/copyright", "-rw-r--r--"),
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
        "Depends: libc6",
        "conffiles",
        "postinst",
        "postrm",
    ] {
        assert!(info.contains(want), "{want} missing:\n{info}");
    }
    let conffiles = run("dpkg-deb", &["-I", &deb, "conffiles"]);
    assert_eq!(conffiles.ok().trim(), "/etc/novabmc/novabmc.toml");
    let postinst = run("dpkg-deb", &["-I", &deb, "postinst"]);
    assert!(postinst.ok().contains("adduser --system"), "{postinst:#?}");
    let unit = Out::collect(
        Command::new("sh").arg("-c").arg(format!(
            "dpkg-deb --fsys-tarfile '{deb}' | tar -xO ./lib/systemd/system/novabmc.service"
        )),
        "read the packaged unit",
    );
    let unit = unit.ok();
    for want in [
        "ExecStart=/usr/bin/novabmc serve --config /etc/novabmc/novabmc.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=novabmc",
        "NoNewPrivileges=yes",
        "User=novabmc",
    ] {
        assert!(unit.contains(want), "{want} missing:\n{unit}");
    }

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
