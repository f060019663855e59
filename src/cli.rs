//! The command line: `novabmc serve --config FILE`, `novabmc check`,
//! `novabmc demo`,
//! `novabmc routes show|apply|flush --config FILE`,
//! `novabmc network apply|show|destroy --config FILE`, `novabmc export`,
//! `novabmc nova-simulator` and `novabmc completions SHELL`, the logging
//! set-up, signal handling and the exit status.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use novabmc_novasim as novasim;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::routing::{self, RouteSpec};
use crate::{check, daemon, demo, export, ipmi, network};

/// IPMI-over-LAN virtual BMC for cloud servers.
#[derive(Debug, Parser)]
#[command(name = "novabmc", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true, env = "NOVABMC_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG also works.
    #[arg(long, global = true, env = "NOVABMC_LOG", default_value = "info")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the nodes of a configuration file.
    Serve {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Check a configuration against the cloud without serving: every
    /// node's server, iPXE image and firmware, addresses and routes; exits
    /// non-zero if any node has a problem.
    Check {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
        format: CheckFormat,
    },
    /// Serve the servers of a built-in Nova simulator on loopback, ready
    /// to try with ipmitool.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        address: IpAddr,
        /// Port of the first node; the others follow.
        #[arg(long, default_value_t = 6230)]
        base_port: u16,
        /// Number of nodes.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
        nodes: u16,
    },
    /// Run the Nova simulator alone (Keystone, Nova and Glance on one port,
    /// controlled under /_sim/), for trying the Nova backend and for tests.
    NovaSimulator {
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:5000")]
        listen: SocketAddr,
        /// Write a clouds.yaml naming the simulator as cloud "sim" here.
        #[arg(long)]
        clouds_yaml: Option<PathBuf>,
        /// Create this many servers, named PREFIX-0, PREFIX-1...
        #[arg(long, default_value_t = 0)]
        servers: u32,
        /// Name prefix of the created servers.
        #[arg(long, default_value = "server")]
        prefix: String,
        /// Serve the serial consoles as wss:// with this PEM certificate
        /// chain (the leaf first), on a listener of their own.
        #[arg(long, requires = "console_key")]
        console_cert: Option<PathBuf>,
        /// The PEM private key of --console-cert.
        #[arg(long, requires = "console_cert")]
        console_key: Option<PathBuf>,
        /// Address and port of the wss:// serial consoles (default: the
        /// address of --listen, any free port).
        #[arg(long, requires = "console_cert")]
        console_listen: Option<SocketAddr>,
    },
    /// Show, install or remove the nodes' policy routes ([nodes.NAME.route]).
    Routes {
        /// What to do with them.
        #[arg(value_enum)]
        action: RoutesAction,
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Provision the BMC network in the cloud ([network]): the nodes'
    /// ports, subnets and router interfaces, their addresses on the BMC
    /// instance, their routes, the iPXE images; tagged as novabmc's.
    Network {
        /// What to do.
        #[command(subcommand)]
        action: NetworkAction,
    },
    /// Write what Ironic, TripleO or MAAS needs to enroll the nodes: BMC
    /// address, port and credentials, and the machine as Nova describes it
    /// (MACs, vCPUs, RAM, disk, architecture, firmware).
    Export {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
        /// What to write.
        #[arg(long, value_enum)]
        format: export::Format,
        /// The BMC user to export (default: the first administrator for
        /// ironic and instackenv, the first operator or administrator for
        /// maas).
        #[arg(long)]
        user: Option<String>,
        /// Refer to the file or environment variable the password (and BMC
        /// key) comes from instead of writing it.
        #[arg(long)]
        password_ref: bool,
        /// MAAS CLI profile for the maas format (default: "$PROFILE").
        #[arg(long)]
        maas_profile: Option<String>,
        /// Write here (mode 0600) instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print the completion script for a shell on standard output (the
    /// Debian package installs the bash, zsh and fish ones).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages, novabmc(1) and one per subcommand, into a
    /// directory (for packagers).
    #[command(hide = true)]
    Man {
        /// The directory (created if missing).
        dir: PathBuf,
    },
}

/// How `check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// A table, one row per node, then the problems and warnings.
    Table,
    /// One JSON document.
    Json,
}

/// What `network` does.
#[derive(Debug, Subcommand)]
pub enum NetworkAction {
    /// Make whatever is missing (running it again changes nothing), and
    /// write the nodes' routes for `serve`.
    Apply {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
        /// Print the calls it would make, and make none.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for the NICs that attaching the node ports
        /// hot-plugs into the BMC instance.
        #[arg(long, default_value_t = 120)]
        wait_secs: u64,
    },
    /// Per node: what exists against what the configuration wants.
    Show {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Remove everything novabmc made in the cloud for this [network]
    /// name, its addresses on the BMC instance and its routes file.
    Destroy {
        /// The TOML configuration.
        #[arg(short, long)]
        config: PathBuf,
        /// Print the calls it would make, and make none.
        #[arg(long)]
        dry_run: bool,
    },
}

/// What `routes` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoutesAction {
    /// Per node: the rule and route wanted, and whether they are installed,
    /// missing or blocked by someone else's entry.
    Show,
    /// Install every node's rule and route (as `serve` does at start);
    /// running it again changes nothing.
    Apply,
    /// Remove the rules and routes novabmc installed for these nodes (as
    /// `serve` does at shutdown); others' entries stay.
    Flush,
}

/// Runs the command line and returns the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli) {
        eprintln!("novabmc: {e:#}");
        return ExitCode::from(2);
    }
    raise_capabilities();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("novabmc: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("novabmc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) -> Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .with_context(|| format!("invalid log filter {filter:?}"))?;
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Makes the permitted capabilities effective. The container image gives
/// the binary CAP_NET_BIND_SERVICE and CAP_NET_ADMIN as permitted file
/// capabilities only (`setcap ...=p`): a non-root user then holds those of
/// them the container is granted, and exec does not fail when it is
/// granted fewer (as it would with `=ep`). Under systemd (ambient
/// capabilities) or as root this changes nothing.
fn raise_capabilities() {
    use caps::CapSet;
    match caps::read(None, CapSet::Permitted) {
        Ok(permitted) => {
            if let Err(e) = caps::set(None, CapSet::Effective, &permitted) {
                tracing::warn!(error = %e, "cannot make the permitted capabilities effective");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the permitted capabilities"),
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let c = Config::load(&config)?;
            info!(
                config = %config.display(),
                nodes = c.nodes.len(),
                "configuration loaded"
            );
            serve(c, None, Some(config)).await
        }
        Command::Check { config, format } => {
            let c = Config::load(&config)?;
            let report = check::check(&c).await;
            let text = match format {
                CheckFormat::Table => check::report::table(&report),
                CheckFormat::Json => check::report::json(&report),
            };
            write_export(&text, None)?;
            let failing: Vec<&str> = report.failing().map(|n| n.name.as_str()).collect();
            if let Some(first) = report.problems.first() {
                let more = match report.problems.len() {
                    1 => String::new(),
                    n => format!(" (and {} more problems)", n - 1),
                };
                anyhow::bail!("{first}{more}");
            }
            if !failing.is_empty() {
                // The report lists every problem; the names here stay short.
                const NAMED: usize = 10;
                let more = match failing.len().saturating_sub(NAMED) {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                anyhow::bail!(
                    "{} of {} nodes have problems: {}{more}",
                    failing.len(),
                    report.nodes.len(),
                    failing[..failing.len().min(NAMED)].join(", ")
                );
            }
            Ok(())
        }
        Command::Demo {
            address,
            base_port,
            nodes,
        } => {
            let shutdown = CancellationToken::new();
            let listener = tokio::net::TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0))
                .await
                .context("cannot start the Nova simulator")?;
            let sim = novasim::start(listener, novasim::Identity::default(), shutdown.clone())
                .context("cannot start the Nova simulator")?;
            let state = tempfile::tempdir().context("cannot create the demo's state directory")?;
            let c = demo::config(&sim.sim, address, base_port, nodes, state.path())
                .map_err(|e| anyhow::anyhow!("cannot create the demo servers: {e}"))?;
            let text = demo::instructions(&c, sim.sim.base_url());
            let served = serve(c, Some(text), None).await;
            shutdown.cancel();
            served
        }
        Command::NovaSimulator {
            listen,
            clouds_yaml,
            servers,
            prefix,
            console_cert,
            console_key,
            console_listen,
        } => {
            let console_tls = match (console_cert, console_key) {
                (Some(cert), Some(key)) => Some(SimConsoleTls {
                    cert,
                    key,
                    listen: console_listen.unwrap_or(SocketAddr::new(listen.ip(), 0)),
                }),
                _ => None,
            };
            nova_simulator(listen, clouds_yaml, servers, &prefix, console_tls).await
        }
        Command::Routes { action, config } => {
            let c = Config::load(&config)?;
            // Discovered nodes have routes too (the defaults', or the
            // routes file's): one look at the cloud, recording nothing.
            let resolved = crate::discovery::resolve(&c, false).await;
            if let Some(e) = &resolved.error {
                eprintln!("warning: discovered nodes left out: {e}");
            }
            routes(action, &resolved.config.route_specs(), &config).await
        }
        Command::Network { action } => {
            let (config, action) = match action {
                NetworkAction::Apply {
                    config,
                    dry_run,
                    wait_secs,
                } => (
                    config,
                    network::Action::Apply {
                        dry_run,
                        wait: std::time::Duration::from_secs(wait_secs),
                    },
                ),
                NetworkAction::Show { config } => (config, network::Action::Show),
                NetworkAction::Destroy { config, dry_run } => {
                    (config, network::Action::Destroy { dry_run })
                }
            };
            let c = Config::load(&config)?;
            network::run(&c, &config, action).await
        }
        Command::Export {
            config,
            format,
            user,
            password_ref,
            maas_profile,
            output,
        } => {
            let c = Config::load(&config)?;
            let options = export::Options {
                format,
                user,
                password_ref,
                maas_profile,
            };
            let text = export::export(&c, &options).await?;
            write_export(&text, output.as_deref())?;
            info!(nodes = c.nodes.len(), ?format, "exported");
            Ok(())
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "novabmc", &mut script);
            write_export(&String::from_utf8_lossy(&script), None)
        }
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("cannot write the manual pages to {}", dir.display()))
        }
    }
}

/// Writes an export: to standard output, or to a file only the owner can
/// read, as it may hold passwords. Nothing is written unless the export
/// succeeded as a whole.
fn write_export(text: &str, output: Option<&std::path::Path>) -> Result<()> {
    use std::io::Write;
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("cannot write to standard output")
        }
        Some(path) => {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            // An existing file keeps its mode on open; narrow it first.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict {}", path.display()))?;
            file.write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))
        }
    }
}

/// `novabmc routes`: reports on stdout, failures on stderr, and an error
/// (so a non-zero exit status) if any node failed.
async fn routes(action: RoutesAction, specs: &[RouteSpec], config: &std::path::Path) -> Result<()> {
    if specs.is_empty() {
        println!(
            "no node in {} has a [nodes.NAME.route]; nothing to do",
            config.display()
        );
        return Ok(());
    }
    let results = match action {
        RoutesAction::Show => {
            for report in routing::ops::show(specs).await? {
                print!("{report}");
            }
            return Ok(());
        }
        RoutesAction::Apply => routing::ops::apply(specs).await?,
        RoutesAction::Flush => routing::ops::flush(specs).await?,
    };
    let mut failed = 0;
    for (node, result) in &results {
        match result {
            Ok(steps) if steps.is_empty() => match action {
                RoutesAction::Flush => println!("{node}: nothing of novabmc's to remove"),
                _ => println!("{node}: already in place"),
            },
            Ok(steps) => {
                for step in steps {
                    println!("{node}: {step}");
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("novabmc: {e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} nodes failed", results.len());
    }
    Ok(())
}

/// The simulator's serial consoles over TLS: certificate, key, address.
struct SimConsoleTls {
    cert: PathBuf,
    key: PathBuf,
    listen: SocketAddr,
}

/// `novabmc nova-simulator`: serves until SIGINT or SIGTERM.
async fn nova_simulator(
    listen: SocketAddr,
    clouds_yaml: Option<PathBuf>,
    servers: u32,
    prefix: &str,
    console_tls: Option<SimConsoleTls>,
) -> Result<()> {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let console_tls = match console_tls {
        None => None,
        Some(c) => {
            let read = |p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let (cert, key) = (read(&c.cert)?, read(&c.key)?);
            let listener = tokio::net::TcpListener::bind(c.listen)
                .await
                .with_context(|| format!("cannot listen on {}", c.listen))?;
            Some(
                novasim::ConsoleTls::from_pem(listener, &cert, &key).map_err(|e| {
                    anyhow::anyhow!("{} and {}: {e}", c.cert.display(), c.key.display())
                })?,
            )
        }
    };
    let sim = novasim::start_with(
        listener,
        novasim::Identity::default(),
        console_tls,
        shutdown.clone(),
    )
    .context("cannot start the simulator")?;
    for i in 0..servers {
        sim.sim
            .add_server(novasim::NewServer {
                name: format!("{prefix}-{i}"),
                ..novasim::NewServer::default()
            })
            .map_err(|e| anyhow::anyhow!("cannot create server {prefix}-{i}: {e}"))?;
    }
    if let Some(path) = clouds_yaml {
        std::fs::write(&path, sim.sim.clouds_yaml("sim"))
            .with_context(|| format!("cannot write {}", path.display()))?;
        info!(path = %path.display(), "clouds.yaml written (cloud \"sim\")");
    }
    let signal = wait_for_signal().await;
    shutdown.cancel();
    sim.abort();
    signal
}

/// Binds every node and serves until SIGINT or SIGTERM; the banner is
/// printed once the sockets are bound. With the configuration's `path`,
/// SIGHUP reads it again and applies it; a file that does not load is
/// refused (the error logged) and the running configuration kept. With
/// `[discovery]`, the servers it finds are served from its first look on,
/// right after the start.
async fn serve(config: Config, banner: Option<String>, path: Option<PathBuf>) -> Result<()> {
    raise_fd_limit(config.nodes.len());
    // IP_FREEBIND: a node's address may be configured (by DHCP) after the
    // start; requests arrive as soon as it is.
    let sockets = ipmi::bind_all(&config.nodes, true)
        .map_err(|errors| anyhow::anyhow!(ipmi::report_bind_errors(&errors)))?;
    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel();
    let signals = tokio::spawn(async move {
        let r = wait_for_signal().await;
        let _ = signal_tx.send(());
        r
    });
    if let Some(text) = banner {
        print!("{text}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    // SIGHUP's configurations go through discovery, which adds the
    // servers it finds (and looks again every refresh interval) before
    // the daemon applies them.
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let sources = std::sync::Arc::new(crate::metrics::Sources::default());
    let reloader = path.map(|path| {
        let (file_tx, file_rx) = tokio::sync::mpsc::channel(1);
        (
            tokio::spawn(reload_on_sighup(path, file_tx)),
            tokio::spawn(daemon::discovery::run(
                config.clone(),
                Some(file_rx),
                reload_tx,
                sources.recorder(),
            )),
        )
    });
    daemon::serve_reloading(
        config,
        sockets,
        async {
            let _ = signal_rx.await;
        },
        reloader.is_some().then_some(reload_rx),
        sources,
    )
    .await?;
    signals.abort();
    if let Some((hup, watch)) = reloader {
        hup.abort();
        watch.abort();
    }
    Ok(())
}

/// Reads the configuration again at each SIGHUP and hands it to the
/// daemon if it loads.
async fn reload_on_sighup(path: PathBuf, to: tokio::sync::mpsc::Sender<Config>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGHUP; reloading is off");
            return;
        }
    };
    while hup.recv().await.is_some() {
        info!(config = %path.display(), "SIGHUP: reading the configuration again");
        match Config::load(&path) {
            Ok(c) => {
                if to.send(c).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!(
                config = %path.display(),
                "reload refused, keeping the running configuration: {e}"
            ),
        }
    }
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot watch SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Each node holds a socket; lift the soft descriptor limit to the hard one
/// so thousands of nodes fit.
fn raise_fd_limit(nodes: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if (limit as usize) < nodes + 64 => tracing::warn!(
            limit,
            nodes,
            "the open file limit is below the number of nodes; some sockets will fail"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
}
