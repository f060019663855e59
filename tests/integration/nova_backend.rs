//! The Nova backend against the Nova simulator over real HTTP: resolution,
//! every power mapping, network boot modes, boot options kept in metadata,
//! and the shared refresh that does not grow with the node count.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use novabmc::backend::Backend;
use novabmc::backend::nova::cloud::CloudSource;
use novabmc::backend::nova::{NetworkBoot, Nova, NovaNode, NovaSettings};
use novabmc::backend::telemetry::NoRecorder;
use novabmc_novasim::{self as novasim, NewServer, SimServer, Timings};
use novabmc_proto::{BootParameterWrite, ChassisControl};
use tokio_util::sync::CancellationToken;

struct World {
    sim: SimServer,
    dir: tempfile::TempDir,
    settings: NovaSettings,
    shutdown: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.sim.abort();
    }
}

async fn world() -> World {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_test_writer()
        .try_init();
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sim =
        novasim::start(listener, novasim::Identity::default(), shutdown.clone()).expect("sim");
    sim.sim.set_timings(Timings {
        start_ms: 150,
        stop_ms: 100,
        reboot_ms: 150,
        rebuild_ms: 150,
        rescue_ms: 100,
    });
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("clouds.yaml");
    std::fs::write(&path, sim.sim.clouds_yaml("sim")).expect("clouds.yaml");
    let mut settings = NovaSettings::new(CloudSource::Named {
        name: "sim".into(),
        file: Some(path),
    });
    settings.refresh = Duration::from_millis(300);
    settings.task_poll = Duration::from_millis(50);
    settings.state_dir = dir.path().join("state");
    World {
        sim,
        dir,
        settings,
        shutdown,
    }
}

fn node(name: &str, mode: NetworkBoot) -> NovaNode {
    NovaNode {
        name: name.into(),
        server: name.into(),
        network_boot: mode,
        ipxe_image: Some("ipxe-boot".into()),
        efi: None,
    }
}

use common::eventually_async as eventually;

/// Adds a server to the simulator.
fn add(w: &World, spec: NewServer) {
    w.sim.sim.add_server(spec).expect("add server");
}

fn server(w: &World, name: &str) -> novasim::model::Server {
    w.sim
        .sim
        .servers()
        .into_iter()
        .find(|s| s.name == name)
        .expect("server")
}

fn actions(w: &World) -> Vec<String> {
    w.sim
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/action") && (200..300).contains(&r.status))
        .filter_map(|r| {
            r.body
                .and_then(|b| b.as_object().and_then(|o| o.keys().next().cloned()))
        })
        .collect()
}

async fn started(w: &World, nodes: Vec<NovaNode>) -> (Arc<Nova>, tokio::task::JoinSet<()>) {
    let (nova, tasks) = Nova::start(
        w.settings.clone(),
        nodes.clone(),
        Arc::new(NoRecorder),
        w.shutdown.clone(),
    )
    .expect("start");
    for i in 0..nodes.len() {
        let n = nova.clone();
        eventually("resolution", move || {
            n.chassis_status(i).is_ok()
                || matches!(
                    n.chassis_status(i),
                    Err(novabmc::backend::BackendError::Unavailable(_))
                )
        })
        .await;
    }
    (nova, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_mapping_and_rebuild_boot() {
    let w = world().await;
    add(&w, NewServer::named("n0").image("centos-stream-9"));
    let (nova, _tasks) = started(&w, vec![node("n0", NetworkBoot::Rebuild)]).await;
    assert!(!nova.chassis_status(0).expect("status").power_on);
    // One-time PXE, then power on: rebuild with the iPXE image, then start.
    let (wr, inv) = BootParameterWrite::parse(&[5, 0xa0, 0x04, 0, 0, 0]).expect("param");
    nova.set_boot_parameter(0, wr, inv).expect("set");
    nova.chassis_control(0, ChassisControl::PowerUp)
        .expect("on");
    assert!(
        nova.chassis_status(0).expect("status").power_on,
        "heading on at once"
    );
    eventually("ACTIVE", || {
        server(&w, "n0").stable.status == "ACTIVE" && server(&w, "n0").pending.is_empty()
    })
    .await;
    settle(&w, &nova, "n0").await;
    assert_eq!(actions(&w), ["rebuild", "os-start"]);
    let s = server(&w, "n0");
    assert!(
        s.metadata
            .get("novabmc_boot")
            .is_some_and(|v| v.starts_with("v1:")),
        "{:?}",
        s.metadata
    );
    assert!(
        !nova.boot_options(0).expect("boot").flags.valid(),
        "one-time flag used"
    );
    // Reboot now boots the disk.
    nova.chassis_control(0, ChassisControl::PowerCycle)
        .expect("cycle");
    nova.chassis_control(0, ChassisControl::PowerCycle)
        .expect("repeat absorbed");
    // Settled: the worker has nothing left to do, so a second reboot would
    // have been sent by now.
    settle(&w, &nova, "n0").await;
    assert_eq!(actions(&w), ["rebuild", "os-start", "reboot"]);
    nova.chassis_control(0, ChassisControl::DiagnosticInterrupt)
        .expect("nmi");
    eventually("nmi", || server(&w, "n0").nmis == 1).await;
    nova.chassis_control(0, ChassisControl::PowerDown)
        .expect("off");
    assert!(!nova.chassis_status(0).expect("status").power_on);
    eventually("SHUTOFF", || server(&w, "n0").stable.status == "SHUTOFF").await;
    let crash = w
        .sim
        .sim
        .requests()
        .into_iter()
        .find(|r| {
            r.body
                .as_ref()
                .is_some_and(|b| b.get("trigger_crash_dump").is_some())
        })
        .expect("crash dump");
    assert_eq!(crash.microversion.as_deref(), Some("2.17"));
}

fn set_boot(nova: &Nova, bytes: &[u8]) {
    let (wr, inv) = BootParameterWrite::parse(bytes).expect("param");
    nova.set_boot_parameter(0, wr, inv).expect("set");
}

async fn settle(w: &World, nova: &Nova, name: &str) {
    // Boot options may stay unsaved while a server is rescued (Nova
    // refuses metadata writes then): only the power work counts here.
    eventually("settled", || {
        nova.node_state(0).is_some_and(|s| s.desired.is_none())
            && server(w, name).pending.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescue_mode() {
    let w = world().await;
    add(&w, NewServer::named("r0").on());
    let (nova, _tasks) = started(&w, vec![node("r0", NetworkBoot::Rescue)]).await;
    // Persistent PXE: a reboot rescues with the iPXE image, every time.
    set_boot(&nova, &[5, 0xc0, 0x04, 0, 0, 0]);
    nova.chassis_control(0, ChassisControl::HardReset)
        .expect("reset");
    settle(&w, &nova, "r0").await;
    assert_eq!(server(&w, "r0").stable.status, "RESCUE");
    nova.chassis_control(0, ChassisControl::PowerCycle)
        .expect("cycle");
    settle(&w, &nova, "r0").await;
    assert_eq!(actions(&w), ["rescue", "unrescue", "rescue"]);
    // Disk, one-time: the next reboot unrescues, the one after reboots.
    set_boot(&nova, &[5, 0x80, 0x08, 0, 0, 0]);
    nova.chassis_control(0, ChassisControl::PowerCycle)
        .expect("cycle");
    settle(&w, &nova, "r0").await;
    assert_eq!(server(&w, "r0").stable.status, "ACTIVE");
    nova.chassis_control(0, ChassisControl::PowerCycle)
        .expect("cycle");
    settle(&w, &nova, "r0").await;
    assert_eq!(
        actions(&w),
        ["rescue", "unrescue", "rescue", "unrescue", "reboot"]
    );
    let boots: Vec<&str> = server(&w, "r0").boots.iter().map(|b| b.from).collect();
    assert_eq!(boots, ["rescue", "disk", "rescue", "disk", "disk"]);
    // Off while rescued: unrescue, then stop.
    set_boot(&nova, &[5, 0x80, 0x04, 0, 0, 0]);
    nova.chassis_control(0, ChassisControl::PowerCycle)
        .expect("cycle");
    settle(&w, &nova, "r0").await;
    nova.chassis_control(0, ChassisControl::PowerDown)
        .expect("off");
    settle(&w, &nova, "r0").await;
    assert_eq!(server(&w, "r0").stable.status, "SHUTOFF");
    let a = actions(&w);
    assert_eq!(&a[a.len() - 3..], ["rescue", "unrescue", "os-stop"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_mode_and_persistent_pxe() {
    let w = world().await;
    add(&w, NewServer::named("m0"));
    let (nova, _tasks) = started(&w, vec![node("m0", NetworkBoot::Metadata)]).await;
    set_boot(&nova, &[5, 0xc0, 0x04, 0, 0, 0]);
    nova.chassis_control(0, ChassisControl::PowerUp)
        .expect("on");
    settle(&w, &nova, "m0").await;
    nova.chassis_control(0, ChassisControl::PowerCycle)
        .expect("cycle");
    settle(&w, &nova, "m0").await;
    set_boot(&nova, &[5, 0xc0, 0x08, 0, 0, 0]);
    nova.chassis_control(0, ChassisControl::PowerCycle)
        .expect("cycle");
    settle(&w, &nova, "m0").await;
    let boots: Vec<&str> = server(&w, "m0").boots.iter().map(|b| b.from).collect();
    assert_eq!(
        boots,
        ["network", "network", "disk"],
        "persistent PXE twice, then disk"
    );
    assert_eq!(actions(&w), ["os-start", "reboot", "reboot"]);
    assert_eq!(
        server(&w, "m0")
            .metadata
            .get("libvirt:pxe-first")
            .map(String::as_str),
        Some("")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_boot_options_and_processes_keep_to_their_servers() {
    let w = world().await;
    for name in ["a", "b"] {
        add(&w, NewServer::named(name));
    }
    let first = CancellationToken::new();
    let (nova, mut tasks) = Nova::start(
        w.settings.clone(),
        vec![node("a", NetworkBoot::Rebuild)],
        Arc::new(NoRecorder),
        first.clone(),
    )
    .expect("start");
    // The other process has a state directory of its own.
    let mut other_settings = w.settings.clone();
    other_settings.state_dir = w.dir.path().join("other-state");
    let (other, _other_tasks) = Nova::start(
        other_settings,
        vec![node("b", NetworkBoot::Rebuild)],
        Arc::new(NoRecorder),
        w.shutdown.clone(),
    )
    .expect("start");
    eventually("b resolved", || other.boot_options(0).is_ok()).await;
    eventually("a resolved", || nova.boot_options(0).is_ok()).await;
    set_boot(&nova, &[5, 0xe0, 0x08, 0, 0, 0]);
    set_boot(&other, &[5, 0x80, 0x04, 0, 0, 0]);
    let before = nova.boot_options(0).expect("boot");
    eventually("saved", || {
        server(&w, "a").metadata.contains_key("novabmc_boot")
    })
    .await;
    first.cancel();
    while tasks.join_next().await.is_some() {}
    drop(nova);
    let (again, _again_tasks) = started(&w, vec![node("a", NetworkBoot::Rebuild)]).await;
    eventually("restored", || again.boot_options(0).is_ok()).await;
    assert_eq!(
        again.boot_options(0).expect("boot"),
        before,
        "nothing lost across a restart"
    );
    eventually("b saved", || {
        server(&w, "b").metadata.contains_key("novabmc_boot")
    })
    .await;
    assert_ne!(
        server(&w, "a").metadata.get("novabmc_boot"),
        server(&w, "b").metadata.get("novabmc_boot")
    );
    assert_eq!(other.boot_options(0).expect("b").flags.0[1], 0x04);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_ambiguous_servers_fail_alone() {
    let w = world().await;
    add(&w, NewServer::named("ok"));
    add(&w, NewServer::named("twin"));
    add(&w, NewServer::named("twin"));
    let (nova, _tasks) = started(
        &w,
        vec![
            node("ok", NetworkBoot::Rebuild),
            node("twin", NetworkBoot::Rebuild),
            node("ghost", NetworkBoot::Rebuild),
        ],
    )
    .await;
    assert!(nova.chassis_status(0).is_ok());
    match nova.chassis_status(1) {
        Err(novabmc::backend::BackendError::Unavailable(why)) => {
            assert!(why.contains("ambiguous"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    match nova.chassis_status(2) {
        Err(novabmc::backend::BackendError::Unavailable(why)) => {
            assert!(why.contains("not found"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // A server created later is picked up by the refresh.
    add(&w, NewServer::named("ghost"));
    eventually("ghost resolved", || nova.chassis_status(2).is_ok()).await;
}

fn faults(f: impl FnOnce(&mut novasim::Faults)) -> novasim::Faults {
    let mut x = novasim::Faults {
        token_lifetime_secs: 3600,
        fail_status: 500,
        ..Default::default()
    };
    f(&mut x);
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_down_at_start_then_back() {
    let w = world().await;
    add(&w, NewServer::named("k0"));
    w.sim.sim.set_faults(faults(|f| f.keystone_down = true));
    let (nova, _tasks) = Nova::start(
        w.settings.clone(),
        vec![node("k0", NetworkBoot::Rebuild)],
        Arc::new(NoRecorder),
        w.shutdown.clone(),
    )
    .expect("start");
    // Keystone refuses the backend's logins (and it retries them); no Nova
    // request has gone out, and the node says it is not ready.
    let refused_logins = || {
        w.sim
            .sim
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/auth/tokens") && r.status == 503)
            .count()
    };
    eventually("logins refused and retried", || refused_logins() >= 2).await;
    assert!(
        !w.sim
            .sim
            .requests()
            .iter()
            .any(|r| r.path.contains("/compute")),
        "nothing reached Nova"
    );
    match nova.chassis_status(0) {
        Err(novabmc::backend::BackendError::NotReady(why)) => {
            assert!(why.contains("not been read from the cloud"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // A power-on asked for while the cloud is away is kept, and reported.
    nova.chassis_control(0, ChassisControl::PowerUp)
        .expect("queued");
    assert!(nova.chassis_status(0).expect("status").power_on);
    w.sim.sim.set_faults(faults(|_| {}));
    eventually("ACTIVE", || server(&w, "k0").stable.status == "ACTIVE").await;
    assert_eq!(actions(&w), ["os-start"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_conflicts_errors_and_drops_are_ridden_out() {
    let w = world().await;
    add(&w, NewServer::named("t0"));
    let (nova, _tasks) = started(&w, vec![node("t0", NetworkBoot::Rebuild)]).await;
    // Keystone forgets every token: the next call gets 401 and the
    // backend authenticates again.
    w.sim.sim.expire_tokens();
    nova.chassis_control(0, ChassisControl::PowerUp)
        .expect("on");
    settle(&w, &nova, "t0").await;
    assert_eq!(server(&w, "t0").stable.status, "ACTIVE");
    let log = w.sim.sim.requests();
    assert!(log.iter().any(|r| r.status == 401), "a token was refused");
    assert!(
        log.iter()
            .filter(|r| r.path.ends_with("/auth/tokens"))
            .count()
            >= 2,
        "and renewed"
    );
    // A storm of 409s, then 500s, 503s and dropped connections.
    w.sim.sim.set_faults(faults(|f| f.conflict_next = 6));
    nova.chassis_control(0, ChassisControl::PowerDown)
        .expect("off");
    settle(&w, &nova, "t0").await;
    assert_eq!(server(&w, "t0").stable.status, "SHUTOFF");
    for fault in [
        faults(|f| f.fail_next = 4),
        faults(|f| {
            f.fail_next = 4;
            f.fail_status = 503;
        }),
        faults(|f| f.drop_next = 3),
    ] {
        w.sim.sim.set_faults(fault);
        nova.chassis_control(0, ChassisControl::PowerUp)
            .expect("on");
        settle(&w, &nova, "t0").await;
        assert_eq!(server(&w, "t0").stable.status, "ACTIVE");
        nova.chassis_control(0, ChassisControl::PowerDown)
            .expect("off");
        settle(&w, &nova, "t0").await;
        assert_eq!(server(&w, "t0").stable.status, "SHUTOFF");
    }
    let conflicts = w
        .sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.status == 409)
        .count();
    assert_eq!(conflicts, 6);
    // Every accepted start and stop reached Nova exactly once.
    assert_eq!(actions(&w).iter().filter(|a| *a == "os-start").count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_does_not_repeat_a_reboot() {
    let w = world().await;
    add(&w, NewServer::named("l0").on());
    let (nova, _tasks) = started(&w, vec![node("l0", NetworkBoot::Rebuild)]).await;
    w.sim.sim.set_faults(faults(|f| f.lose_answer_next = 1));
    nova.chassis_control(0, ChassisControl::HardReset)
        .expect("reset");
    settle(&w, &nova, "l0").await;
    // Nova carried the reboot out but its answer was lost: the backend saw
    // the reboot under way and did not send a second one.
    assert_eq!(server(&w, "l0").boots.len(), 1);
    let resent = w
        .sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/action"))
        .count();
    assert_eq!(resent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_nova_never_slows_the_bmc() {
    let w = world().await;
    add(&w, NewServer::named("s0"));
    let (nova, _tasks) = started(&w, vec![node("s0", NetworkBoot::Rebuild)]).await;
    w.sim.sim.set_faults(faults(|f| f.latency_ms = 10_000));
    let answered = || {
        w.sim
            .sim
            .requests()
            .iter()
            .filter(|r| r.path.contains("/servers/"))
            .count()
    };
    let before = answered();
    nova.chassis_control(0, ChassisControl::PowerUp)
        .expect("on");
    assert!(nova.chassis_status(0).expect("status").power_on);
    // Accepted and reported before Nova answered anything: the command did
    // not wait for the cloud (each of its answers takes ten seconds).
    assert_eq!(answered(), before, "no Nova answer came before the reply");
    common::eventually_async_within("ACTIVE", Duration::from_secs(90), || {
        server(&w, "s0").stable.status == "ACTIVE"
    })
    .await;
}

/// With `n` nodes, once resolution and the one-time owner writes are over:
/// the requests between the 1st and the 6th listing that follow (five
/// refresh intervals), and those listings' queries.
async fn requests_over_five_intervals(n: usize) -> (Vec<novasim::LoggedRequest>, usize) {
    let w = world().await;
    let mut nodes = Vec::new();
    for i in 0..n {
        let name = format!("scale-{i}");
        add(&w, NewServer::named(&name));
        nodes.push(node(&name, NetworkBoot::Rebuild));
    }
    let (_nova, _tasks) = started(&w, nodes).await;
    eventually("owner keys written", || {
        w.sim
            .sim
            .servers()
            .iter()
            .all(|s| s.metadata.contains_key("novabmc_owner"))
    })
    .await;
    let listing = |r: &novasim::LoggedRequest| r.path.ends_with("/servers/detail");
    let listings_after = |from: usize| {
        w.sim.sim.requests()[from..]
            .iter()
            .filter(|r| listing(r))
            .count()
    };
    // Quiet: start counting at the next listing.
    let quiet = w.sim.sim.requests().len();
    eventually("a listing", || listings_after(quiet) >= 1).await;
    let log = w.sim.sim.requests();
    let first = quiet + log[quiet..].iter().position(listing).expect("listing");
    eventually("five more listings", || listings_after(first + 1) >= 5).await;
    let log = w.sim.sim.requests();
    let sixth = first
        + 1
        + log[first + 1..]
            .iter()
            .enumerate()
            .filter(|(_, r)| listing(r))
            .nth(4)
            .map(|(i, _)| i)
            .expect("sixth listing");
    (log[first..=sixth].to_vec(), n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_cost_does_not_grow_with_nodes() {
    for n in [1, 100, 1000] {
        let (requests, n) = requests_over_five_intervals(n).await;
        let others: Vec<_> = requests
            .iter()
            .filter(|r| !r.path.ends_with("/servers/detail"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(
            others.is_empty(),
            "{n} nodes: requests besides the listings: {others:?}"
        );
        assert_eq!(requests.len(), 6, "{n} nodes");
        for r in &requests {
            assert!(
                r.query.starts_with("changes-since=") && r.query.len() > "changes-since=".len(),
                "{n} nodes: a refresh lists only changed servers: {:?}",
                r.query
            );
        }
        eprintln!("{n} nodes: one listing per refresh interval, nothing else");
    }
}
