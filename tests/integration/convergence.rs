//! The Nova backend's convergent commands on paused time: the real worker,
//! planner and state directory against the simulator's model in process
//! (the same state machine, bodies, errors and faults the HTTP simulator
//! serves), with Nova's transitions seconds long as on a real cloud. Storms,
//! backoff, give-up times and hung calls run here in milliseconds of real
//! time, deterministically.
//!
//! These tests wait with their own [`until`] rather than `tests/common`'s
//! `eventually*`: those poll against the wall clock, which does not move
//! here, while `until` lets the paused virtual clock advance between polls.

use crate::local_cloud;

use std::sync::Arc;
use std::time::Duration;

use local_cloud::LocalCloud;
use novabmc::backend::nova::node::Resolution;
use novabmc::backend::nova::{NetworkBoot, Nova, NovaNode, NovaSettings};
use novabmc::backend::{Backend, BackendError};
use novabmc_novasim::model::Phase;
use novabmc_novasim::{Faults, NewServer, Sim, Timings};
use novabmc_proto::{BootParameterWrite, ChassisControl};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use ChassisControl::{
    DiagnosticInterrupt as Diag, HardReset as Reset, PowerCycle as Cycle, PowerDown as Off,
    PowerUp as On, SoftShutdown as Soft,
};

/// Transitions as a real cloud takes them: seconds.
const REALISTIC: Timings = Timings {
    start_ms: 6000,
    stop_ms: 5000,
    reboot_ms: 6000,
    rebuild_ms: 9000,
    rescue_ms: 6000,
};

struct World {
    sim: Arc<Sim>,
    state: tempfile::TempDir,
    settings: NovaSettings,
    shutdown: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn world() -> World {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let sim = Sim::in_process();
    sim.set_timings(REALISTIC);
    let state = tempfile::tempdir().expect("state dir");
    let mut settings = NovaSettings::new(novabmc::backend::nova::cloud::CloudSource::Environment);
    settings.state_dir = state.path().join("state");
    World {
        sim,
        state,
        settings,
        shutdown: CancellationToken::new(),
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

impl World {
    fn server(&self, name: &str, on: bool) -> String {
        self.sim
            .add_server(NewServer {
                name: name.into(),
                on,
                image: Some("centos-stream-9".into()),
                ..Default::default()
            })
            .expect("add server")
    }

    fn start(&self, nodes: Vec<NovaNode>) -> (Arc<Nova<LocalCloud>>, JoinSet<()>) {
        self.start_with(nodes, self.settings.clone(), self.shutdown.clone())
    }

    fn start_with(
        &self,
        nodes: Vec<NovaNode>,
        settings: NovaSettings,
        shutdown: CancellationToken,
    ) -> (Arc<Nova<LocalCloud>>, JoinSet<()>) {
        let cloud = LocalCloud::new(self.sim.clone(), settings.request_timeout);
        Nova::start_with(cloud, settings, nodes, shutdown).expect("start")
    }

    fn record(&self, name: &str) -> novabmc_novasim::model::Server {
        self.sim
            .servers()
            .into_iter()
            .find(|s| s.name == name && !s.deleted)
            .expect("server")
    }

    /// The actions Nova accepted, in order.
    fn actions(&self) -> Vec<String> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/action") && (200..300).contains(&r.status))
            .filter_map(|r| {
                r.body
                    .and_then(|b| b.as_object().and_then(|o| o.keys().next().cloned()))
            })
            .collect()
    }

    fn faults(&self, f: impl FnOnce(&mut Faults)) {
        let mut x = Faults::default();
        f(&mut x);
        self.sim.set_faults(x);
    }
}

/// Lets virtual time pass until `f` holds (at most an hour of it).
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..36_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within an hour");
}

/// Until the node has nothing pending and Nova has no task for its server.
async fn settled(w: &World, nova: &Nova<LocalCloud>, node: usize, name: &str) {
    until("settled", || {
        nova.node_state(node).is_some_and(|s| s.desired.is_none())
            && w.record(name).pending.is_empty()
    })
    .await;
    // Nothing more comes of it.
    let before = w.actions().len();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(w.actions().len(), before, "calls after settling");
}

async fn resolved(nova: &Nova<LocalCloud>, node: usize) {
    until("resolved", || {
        matches!(
            nova.node_state(node).map(|s| s.resolution),
            Some(Resolution::Found { .. })
        )
    })
    .await;
}

fn send(nova: &Nova<LocalCloud>, c: ChassisControl) {
    nova.chassis_control(0, c)
        .expect("every command is accepted");
}

fn on(nova: &Nova<LocalCloud>) -> bool {
    nova.chassis_status(0).expect("status").power_on
}

fn boot_param(nova: &Nova<LocalCloud>, bytes: &[u8]) {
    let (w, inv) = BootParameterWrite::parse(bytes).expect("param");
    nova.set_boot_parameter(0, w, inv).expect("set");
}

const STOPS: [&str; 1] = ["os-stop"];
const BOOTS: [&str; 4] = ["os-start", "reboot", "rebuild", "rescue"];

fn count(actions: &[String], kinds: &[&str]) -> usize {
    actions
        .iter()
        .filter(|a| kinds.contains(&a.as_str()))
        .count()
}

/// A pseudo-random command from a seed.
fn pick(seed: &mut u64) -> ChassisControl {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    [On, Off, Cycle, Soft, Reset][(*seed % 5) as usize]
}

#[tokio::test(start_paused = true)]
async fn any_storm_ends_in_the_last_state_with_one_stop_and_one_boot() {
    for seed0 in 1..=24u64 {
        let w = world();
        let starts_on = seed0 % 2 == 0;
        w.server("storm", starts_on);
        let (nova, _tasks) = w.start(vec![node("storm", NetworkBoot::Rebuild)]);
        resolved(&nova, 0).await;
        // A first command that gives Nova a task, then a storm of 200
        // arriving every 20 ms while it runs (4 s, under the 5-6 s
        // transitions).
        send(&nova, if starts_on { Off } else { On });
        let mut seed = seed0 * 7919;
        let mut last = On;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            last = pick(&mut seed);
            send(&nova, last);
            let heading = on(&nova);
            assert_eq!(
                heading,
                !matches!(last, Off | Soft),
                "reported as commanded"
            );
        }
        settled(&w, &nova, 0, "storm").await;
        let s = w.record("storm");
        let want = if matches!(last, Off | Soft) {
            "SHUTOFF"
        } else {
            "ACTIVE"
        };
        assert_eq!(
            s.stable.status, want,
            "seed {seed0}: ends as the last command said"
        );
        let actions = w.actions();
        assert!(
            count(&actions, &STOPS) <= 1 && count(&actions, &BOOTS) <= 1,
            "seed {seed0}: at most one stop and one boot beyond the first call: {actions:?}"
        );
        assert_eq!(on(&nova), want == "ACTIVE");
    }
}

#[tokio::test(start_paused = true)]
async fn ironic_reboot_is_exactly_one_reboot_from_the_device_set() {
    for gap_ms in [0u64, 50, 500, 2000, 7000] {
        let w = world();
        w.server("r", true);
        let (nova, _tasks) = w.start(vec![node("r", NetworkBoot::Rescue)]);
        resolved(&nova, 0).await;
        // Ironic's deploy: one-time PXE, then off, status polls, on.
        boot_param(&nova, &[5, 0x80, 0x04, 0, 0, 0]);
        send(&nova, Off);
        assert!(!on(&nova));
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
        send(&nova, On);
        assert!(on(&nova));
        settled(&w, &nova, 0, "r").await;
        let s = w.record("r");
        let boots: Vec<&str> = s.boots.iter().map(|b| b.from).collect();
        assert_eq!(boots, ["rescue"], "gap {gap_ms} ms: one network boot");
        assert_eq!(s.stable.status, "RESCUE");
        assert!(
            !nova.boot_options(0).expect("boot").flags.valid(),
            "the one-time flag was used"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_reboot_asked_during_a_boot_is_covered_unless_the_device_changed() {
    let w = world();
    w.server("c", true);
    let (nova, _tasks) = w.start(vec![node("c", NetworkBoot::Rescue)]);
    resolved(&nova, 0).await;
    send(&nova, Reset);
    tokio::time::sleep(Duration::from_secs(1)).await;
    send(&nova, Cycle);
    send(&nova, Reset);
    settled(&w, &nova, 0, "c").await;
    assert_eq!(
        w.actions(),
        ["reboot"],
        "repeats during the reboot are covered"
    );
    // During a reboot the console selects PXE and resets again: that is a
    // new boot, from the new device.
    send(&nova, Reset);
    tokio::time::sleep(Duration::from_secs(1)).await;
    boot_param(&nova, &[5, 0x80, 0x04, 0, 0, 0]);
    send(&nova, Reset);
    settled(&w, &nova, 0, "c").await;
    assert_eq!(w.actions(), ["reboot", "reboot", "rescue"]);
}

#[tokio::test(start_paused = true)]
async fn nmi_is_delivered_once_in_order_and_refused_when_off() {
    let w = world();
    w.server("n", false);
    let (nova, _tasks) = w.start(vec![node("n", NetworkBoot::Rebuild)]);
    resolved(&nova, 0).await;
    assert!(matches!(
        nova.chassis_control(0, Diag),
        Err(BackendError::Unavailable(_))
    ));
    send(&nova, On);
    send(&nova, Diag);
    send(&nova, Diag);
    settled(&w, &nova, 0, "n").await;
    assert_eq!(w.actions(), ["os-start", "trigger_crash_dump"]);
    // NMI then off: the NMI first.
    send(&nova, Diag);
    send(&nova, Off);
    settled(&w, &nova, 0, "n").await;
    assert_eq!(
        w.actions(),
        [
            "os-start",
            "trigger_crash_dump",
            "trigger_crash_dump",
            "os-stop"
        ]
    );
    assert_eq!(w.record("n").nmis, 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_never_ends_times_out_and_frees_its_permit() {
    let w = world();
    w.server("h0", false);
    w.server("h1", false);
    let mut settings = w.settings.clone();
    settings.max_concurrent_calls = 1;
    settings.request_timeout = Duration::from_secs(30);
    let (nova, _tasks) = w.start_with(
        vec![
            node("h0", NetworkBoot::Rebuild),
            node("h1", NetworkBoot::Rebuild),
        ],
        settings,
        w.shutdown.clone(),
    );
    resolved(&nova, 0).await;
    resolved(&nova, 1).await;
    w.faults(|f| f.hang_next = 1);
    let t0 = tokio::time::Instant::now();
    nova.chassis_control(0, On).expect("on");
    nova.chassis_control(1, On).expect("on");
    until("both on", || {
        w.record("h0").stable.status == "ACTIVE" && w.record("h1").stable.status == "ACTIVE"
    })
    .await;
    let took = t0.elapsed();
    // One call hung for its 30 s and was abandoned; its permit was then
    // free for the other node and for the retry.
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(60),
        "{took:?}"
    );
    assert_eq!(w.actions(), ["os-start", "os-start"]);
}

#[tokio::test(start_paused = true)]
async fn other_nodes_keep_working_while_one_call_hangs() {
    let w = world();
    w.server("a", false);
    w.server("b", false);
    let (nova, _tasks) = w.start(vec![
        node("a", NetworkBoot::Rebuild),
        node("b", NetworkBoot::Rebuild),
    ]);
    resolved(&nova, 0).await;
    resolved(&nova, 1).await;
    w.faults(|f| f.hang_next = 1);
    nova.chassis_control(0, On).expect("on");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let t0 = tokio::time::Instant::now();
    nova.chassis_control(1, On).expect("on");
    until("b on", || w.record("b").stable.status == "ACTIVE").await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "b waited for a: {:?}",
        t0.elapsed()
    );
    until("a on after its timeout", || {
        w.record("a").stable.status == "ACTIVE"
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_operation_nova_never_allows_is_given_up_and_reported_as_nova_says() {
    let w = world();
    w.server("g", false);
    let mut settings = w.settings.clone();
    settings.give_up_after = Duration::from_secs(120);
    let (nova, _tasks) = w.start_with(
        vec![node("g", NetworkBoot::Rebuild)],
        settings,
        w.shutdown.clone(),
    );
    resolved(&nova, 0).await;
    w.faults(|f| f.nova_down = true);
    send(&nova, On);
    assert!(on(&nova), "heading on while Nova is down");
    let state_file = w.state.path().join("state/nodes/g.json");
    assert!(state_file.exists(), "recorded before the answer");
    until("given up", || {
        nova.node_state(0).is_some_and(|s| s.desired.is_none())
    })
    .await;
    assert!(!on(&nova), "falls back to what Nova says");
    assert!(!state_file.exists(), "nothing left pending");
    // Bounded retries, with backoff: not a call per poll.
    let attempts = w.sim.requests().iter().filter(|r| r.status == 503).count();
    assert!((3..=40).contains(&attempts), "{attempts} calls in 120 s");
}

#[tokio::test(start_paused = true)]
async fn a_server_in_error_is_retried_with_backoff_never_forever() {
    let w = world();
    w.server("e", true);
    let mut settings = w.settings.clone();
    settings.give_up_after = Duration::from_secs(300);
    let (nova, _tasks) = w.start_with(
        vec![node("e", NetworkBoot::Rebuild)],
        settings,
        w.shutdown.clone(),
    );
    resolved(&nova, 0).await;
    w.faults(|f| f.tasks_fail = true);
    send(&nova, Reset);
    until("fault reported", || {
        nova.chassis_status(0).is_ok_and(|s| s.power_fault)
    })
    .await;
    until("given up", || {
        nova.node_state(0).is_some_and(|s| s.desired.is_none())
    })
    .await;
    let reboots = count(&w.actions(), &["reboot"]);
    assert!(
        (2..=30).contains(&reboots),
        "{reboots} reboots of a failing server in 300 s"
    );
    let calls_then = w.actions().len();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(w.actions().len(), calls_then, "nothing after giving up");
}

#[tokio::test(start_paused = true)]
async fn a_rescued_server_whose_guest_halted_powers_on_from_disk() {
    let w = world();
    let id = w.server("h", true);
    let (nova, _tasks) = w.start(vec![node("h", NetworkBoot::Rescue)]);
    resolved(&nova, 0).await;
    boot_param(&nova, &[5, 0x80, 0x04, 0, 0, 0]);
    send(&nova, Reset);
    settled(&w, &nova, 0, "h").await;
    assert_eq!(w.record("h").stable.status, "RESCUE");
    assert!(w.sim.halt(&id));
    // The poller sees it off.
    until("seen off", || !on(&nova)).await;
    send(&nova, On);
    settled(&w, &nova, 0, "h").await;
    let s = w.record("h");
    assert_eq!(
        (s.stable.status.as_str(), s.stable.power_state.code()),
        ("ACTIVE", 1)
    );
    assert_eq!(w.actions(), ["rescue", "unrescue"]);
    assert_eq!(s.boots.last().map(|b| b.from), Some("disk"));
}

#[tokio::test(start_paused = true)]
async fn a_server_deleted_and_recreated_under_its_name_is_picked_up() {
    let w = world();
    let old = w.server("re", true);
    let (nova, _tasks) = w.start(vec![node("re", NetworkBoot::Rebuild)]);
    resolved(&nova, 0).await;
    assert!(w.sim.delete_server(&old));
    until("missing", || {
        matches!(
            nova.node_state(0).map(|s| s.resolution),
            Some(Resolution::Missing(_))
        )
    })
    .await;
    assert!(matches!(
        nova.chassis_control(0, On),
        Err(BackendError::Unavailable(_))
    ));
    let t0 = tokio::time::Instant::now();
    let new = w.server("re", false);
    until("found again", || {
        matches!(nova.node_state(0).map(|s| s.resolution),
            Some(Resolution::Found { id }) if id == new)
    })
    .await;
    assert!(
        t0.elapsed() <= w.settings.refresh * 2,
        "within two refresh intervals: {:?}",
        t0.elapsed()
    );
    send(&nova, On);
    settled(&w, &nova, 0, "re").await;
    assert_eq!(w.record("re").stable.status, "ACTIVE");
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_is_not_sent_again() {
    let w = world();
    w.server("l", true);
    let (nova, _tasks) = w.start(vec![node("l", NetworkBoot::Rebuild)]);
    resolved(&nova, 0).await;
    w.faults(|f| f.lose_answer_next = 1);
    send(&nova, Reset);
    settled(&w, &nova, 0, "l").await;
    assert_eq!(w.record("l").boots.len(), 1);
    let posts = w
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/action"))
        .count();
    assert_eq!(posts, 1);
}

#[tokio::test(start_paused = true)]
async fn pending_work_survives_a_restart_and_is_reconciled_with_nova() {
    let w = world();
    let id = w.server("p", false);
    let stop = CancellationToken::new();
    let (nova, mut tasks) = w.start_with(
        vec![node("p", NetworkBoot::Rebuild)],
        w.settings.clone(),
        stop.clone(),
    );
    resolved(&nova, 0).await;
    w.faults(|f| f.nova_down = true);
    boot_param(&nova, &[5, 0x80, 0x04, 0, 0, 0]);
    send(&nova, On);
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    drop(nova);
    // The next process, with Nova still down for a while.
    let (nova, _tasks) = w.start(vec![node("p", NetworkBoot::Rebuild)]);
    assert!(
        on(&nova),
        "the pending power-on is reported before Nova answers"
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    w.faults(|_| {});
    settled(&w, &nova, 0, "p").await;
    assert_eq!(
        w.actions(),
        ["rebuild", "os-start"],
        "one network boot, once"
    );
    assert!(
        w.sim
            .servers()
            .iter()
            .any(|s| s.id == id && s.stable.status == "ACTIVE")
    );
    assert!(!nova.boot_options(0).expect("boot").flags.valid());
}

#[tokio::test(start_paused = true)]
async fn a_resumed_record_nova_already_shows_makes_no_call() {
    let w = world();
    let id = w.server("q", false);
    let stop = CancellationToken::new();
    let (nova, mut tasks) = w.start_with(
        vec![node("q", NetworkBoot::Rebuild)],
        w.settings.clone(),
        stop.clone(),
    );
    resolved(&nova, 0).await;
    w.faults(|f| f.nova_down = true);
    send(&nova, On);
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    drop(nova);
    // Someone else started the server meanwhile.
    w.faults(|_| {});
    w.sim.set_state(
        &id,
        Phase {
            status: novabmc_novasim::states::Status::Active,
            task_state: None,
            vm_state: novabmc_novasim::states::VmState::Active,
            power_state: novabmc_novasim::states::PowerState::Running,
        },
    );
    let (nova, _tasks) = w.start(vec![node("q", NetworkBoot::Rebuild)]);
    settled(&w, &nova, 0, "q").await;
    assert!(w.actions().is_empty(), "{:?}", w.actions());
}

#[tokio::test(start_paused = true)]
async fn an_entry_older_than_the_give_up_time_is_dropped() {
    let w = world();
    w.server("o", false);
    let mut settings = w.settings.clone();
    settings.give_up_after = Duration::from_secs(60);
    let stop = CancellationToken::new();
    let (nova, mut tasks) = w.start_with(
        vec![node("o", NetworkBoot::Rebuild)],
        settings.clone(),
        stop.clone(),
    );
    resolved(&nova, 0).await;
    w.faults(|f| f.nova_down = true);
    send(&nova, On);
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    drop(nova);
    // The entry's age is wall-clock time: make it old.
    let path = w.state.path().join("state/nodes/o.json");
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("entry")).expect("json");
    let changed = entry["power"]["changed_unix_ms"].as_u64().expect("ms");
    entry["power"]["changed_unix_ms"] = (changed - 61_000).into();
    std::fs::write(&path, entry.to_string()).expect("write");
    w.faults(|_| {});
    let (nova, _tasks) = w.start_with(
        vec![node("o", NetworkBoot::Rebuild)],
        settings,
        w.shutdown.clone(),
    );
    resolved(&nova, 0).await;
    settled(&w, &nova, 0, "o").await;
    assert!(w.actions().is_empty());
    assert!(!on(&nova));
    assert!(!path.exists());
}

#[tokio::test(start_paused = true)]
async fn keystone_that_never_answers_delays_nothing_else() {
    let w = world();
    w.server("k", false);
    w.faults(|f| f.keystone_hang = true);
    let (nova, _tasks) = w.start(vec![node("k", NetworkBoot::Rebuild)]);
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert!(matches!(
        nova.chassis_status(0),
        Err(BackendError::NotReady(_))
    ));
    send(&nova, On);
    assert!(on(&nova));
    w.faults(|_| {});
    settled(&w, &nova, 0, "k").await;
    assert_eq!(w.actions(), ["os-start"]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_call_finish_and_keeps_the_rest() {
    let w = world();
    w.server("s", true);
    let stop = CancellationToken::new();
    let (nova, mut tasks) = w.start_with(
        vec![node("s", NetworkBoot::Rebuild)],
        w.settings.clone(),
        stop.clone(),
    );
    resolved(&nova, 0).await;
    // Nova answers the stop after 4 s; shutdown begins during it.
    w.faults(|f| f.latency_ms = 4000);
    send(&nova, Off);
    // The "on" comes while the stop is under way.
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&nova, On);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = tokio::time::Instant::now();
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(11), "{took:?}");
    assert_eq!(w.actions(), ["os-stop"], "the call under way finished");
    let entry = std::fs::read_to_string(w.state.path().join("state/nodes/s.json")).expect("kept");
    assert!(entry.contains("\"on\": true"), "{entry}");
}

/// A command that cannot be written to the state directory is refused
/// with an error (IPMI gets a completion code), not acknowledged and then
/// lost at the next restart; nothing of it is carried out.
#[tokio::test(start_paused = true)]
async fn a_command_that_cannot_be_recorded_is_refused() {
    let w = world();
    w.server("r", false);
    let (nova, _tasks) = w.start(vec![node("r", NetworkBoot::Rebuild)]);
    resolved(&nova, 0).await;
    // The records' directory is replaced by a file: every write fails,
    // for root too.
    let nodes = w.state.path().join("state/nodes");
    std::fs::remove_dir_all(&nodes).expect("rm");
    std::fs::write(&nodes, "").expect("file in the way");
    let e = nova
        .chassis_control(0, On)
        .expect_err("refused when it cannot be recorded");
    assert_eq!(
        novabmc::ipmi::actions::completion_code(&e),
        novabmc_proto::CompletionCode::UNSPECIFIED,
        "{e}"
    );
    assert!(!on(&nova), "nothing pending in memory either");
    let (write, inv) = BootParameterWrite::parse(&[5, 0x80, 0x04, 0, 0, 0]).expect("param");
    nova.set_boot_parameter(0, write, inv)
        .expect_err("a boot write too");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(w.actions().is_empty(), "{:?}", w.actions());
}
