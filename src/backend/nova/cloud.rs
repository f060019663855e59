//! Which cloud to talk to, found as every OpenStack tool finds it: a named
//! entry of `clouds.yaml` (`./clouds.yaml`, `~/.config/openstack/`,
//! `/etc/openstack/`, or the file `OS_CLIENT_CONFIG_FILE` names), `OS_CLOUD`,
//! or the `OS_*` variables.
//!
//! Reading the configuration is separate from authenticating, so a missing
//! file or cloud stops the start with a clear error while an unreachable
//! Keystone only delays it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use osauth::CloudConfig;
use serde::Deserialize;

/// Where the cloud configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloudSource {
    /// `cloud = "name"` in novabmc's configuration, optionally with the
    /// clouds.yaml file to read it from.
    Named {
        /// Entry in clouds.yaml.
        name: String,
        /// Explicit file; otherwise `OS_CLIENT_CONFIG_FILE` or the usual
        /// places.
        file: Option<PathBuf>,
    },
    /// `OS_CLOUD`, else `OS_AUTH_URL`, `OS_USERNAME` and the rest.
    Environment,
    /// A clouds.yaml document held in memory (the demo's simulator).
    Inline {
        /// Entry in the document.
        name: String,
        /// The document.
        yaml: String,
    },
}

impl std::fmt::Display for CloudSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloudSource::Named {
                name,
                file: Some(p),
            } => {
                write!(f, "cloud {name:?} from {}", p.display())
            }
            CloudSource::Named { name, file: None } => write!(f, "cloud {name:?} from clouds.yaml"),
            CloudSource::Environment => f.write_str("the OS_CLOUD / OS_* environment"),
            CloudSource::Inline { name, .. } => write!(f, "built-in cloud {name:?}"),
        }
    }
}

#[derive(Deserialize)]
struct CloudsFile {
    clouds: HashMap<String, CloudConfig>,
}

/// Reads the cloud configuration (without contacting the cloud).
pub fn load(source: &CloudSource) -> Result<CloudConfig, String> {
    match source {
        CloudSource::Named { name, file } => {
            let file = file
                .clone()
                .or_else(|| std::env::var_os("OS_CLIENT_CONFIG_FILE").map(PathBuf::from));
            match file {
                Some(path) => from_file(&path, name),
                None => CloudConfig::from_config(name).map_err(|e| format!("cloud {name:?}: {e}")),
            }
        }
        CloudSource::Environment => CloudConfig::from_env().map_err(|e| {
            format!("no cloud configured (set backend.cloud, OS_CLOUD or OS_AUTH_URL...): {e}")
        }),
        CloudSource::Inline { name, yaml } => from_text(yaml, name, "the built-in clouds.yaml"),
    }
}

fn from_file(path: &Path, name: &str) -> Result<CloudConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    from_text(&text, name, &path.display().to_string())
}

fn from_text(text: &str, name: &str, origin: &str) -> Result<CloudConfig, String> {
    let mut file: CloudsFile =
        serde_yaml::from_str(text).map_err(|e| format!("cannot parse {origin}: {e}"))?;
    file.clouds
        .remove(name)
        .ok_or_else(|| format!("no cloud {name:?} in {origin}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_cloud_from_explicit_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("clouds.yaml");
        std::fs::write(
            &path,
            "clouds:\n  sim:\n    auth:\n      auth_url: http://127.0.0.1:1/identity/v3\n      username: u\n      password: p\n      project_name: x\n",
        )
        .expect("write");
        let source = CloudSource::Named {
            name: "sim".into(),
            file: Some(path.clone()),
        };
        assert!(load(&source).is_ok());
        let missing = CloudSource::Named {
            name: "other".into(),
            file: Some(path.clone()),
        };
        let e = load(&missing).expect_err("no such cloud");
        assert!(e.contains("no cloud \"other\""), "{e}");
        let e = load(&CloudSource::Named {
            name: "sim".into(),
            file: Some(dir.path().join("absent.yaml")),
        })
        .expect_err("no file");
        assert!(e.contains("absent.yaml"), "{e}");
    }
}
