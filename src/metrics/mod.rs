//! What the BMCs are doing, for Prometheus: the `[metrics]` endpoint's
//! series, and the health the `/healthz` check reports ([`http`] serves
//! both).
//!
//! Three kinds of source:
//!
//! - every engine's own counters (`novabmc_proto::Counters`: sessions by
//!   event, setup refusals by message and RMCP+ status, drops by reason,
//!   requests by command, responses by completion code), summed over the
//!   nodes at scrape time, those of stopped engines included so a counter
//!   never goes back when a reload removes a node;
//! - counters the daemon's parts report to as they work, through the
//!   [`Recorder`] they are given: chassis controls by kind (from the front
//!   doors), and every Keystone, Nova and Glance call by operation and
//!   outcome with its latency (from the backend, as its
//!   [`CallRecorder`]); one recorder lives as long as the daemon, so a
//!   reload that restarts the backend keeps counting;
//! - gauges read from the backend when scraped: per node only power state
//!   and pending work (so 10,000 nodes make 20,000 short lines), the total
//!   of pending operations, and the age of the last successful refresh.
//!
//! Counting never waits on the endpoint: the counters are atomics, and the
//! endpoint reads them when asked. The families have stable names, all
//! prefixed `novabmc_`.

pub mod http;

use std::sync::{Arc, Mutex, RwLock};

use novabmc_proto::Counters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::backend::telemetry::{CallRecorder, CloudCall, CloudHealth};
use crate::backend::{Backend, NodeId};

/// Labels of a family: (name, value) pairs.
type Labels = Vec<(&'static str, String)>;

/// The counters the daemon's parts report to: cloud calls, counted and
/// timed, and chassis controls by kind.
#[derive(Debug)]
pub struct Recorder {
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    controls: Family<Labels, Counter>,
    redfish_requests: Family<Labels, Counter>,
    redfish_latency: Family<Labels, Histogram, fn() -> Histogram>,
    redfish_sessions: prometheus_client::metrics::gauge::Gauge,
    media_loads: Family<Labels, Counter>,
    media_load_seconds: Family<Labels, Counter<f64>>,
}

/// Latency buckets of cloud calls, in seconds: from a quick local Nova to
/// the 30 s request timeout.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Latency buckets of Redfish requests, in seconds: every answer comes
/// from memory, so microseconds to a few milliseconds.
const REDFISH_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
];

fn redfish_histogram() -> Histogram {
    Histogram::new(REDFISH_BUCKETS)
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            controls: Family::default(),
            redfish_requests: Family::default(),
            redfish_latency: Family::new_with_constructor(redfish_histogram as fn() -> Histogram),
            redfish_sessions: Default::default(),
            media_loads: Family::default(),
            media_load_seconds: Family::default(),
        }
    }
}

impl Recorder {
    /// Counts one chassis control (`power_up`, `hard_reset`, ...) a
    /// client asked for and the backend accepted.
    pub fn control(&self, kind: &'static str) {
        self.controls
            .get_or_create(&vec![("control", kind.to_string())])
            .inc();
    }
}

impl Recorder {
    /// Counts one Redfish request: the route (a fixed template, never an
    /// Id), the method and the status, with its latency.
    pub fn redfish_request(
        &self,
        resource: &'static str,
        method: &str,
        status: u16,
        took: std::time::Duration,
    ) {
        let base = vec![
            ("resource", resource.to_string()),
            ("method", method.to_string()),
        ];
        let mut labels = base.clone();
        labels.push(("status", status.to_string()));
        self.redfish_requests.get_or_create(&labels).inc();
        self.redfish_latency
            .get_or_create(&base)
            .observe(took.as_secs_f64());
    }
}

impl Recorder {
    /// The number of Redfish sessions open.
    pub fn redfish_sessions(&self, open: usize) {
        self.redfish_sessions
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }
}

impl CallRecorder for Recorder {
    /// Records one call: its service (`identity`, `compute`, `image`,
    /// `volume`), fixed operation name and status (`ok`, or the kind of
    /// failure).
    fn record(&self, call: CloudCall<'_>) {
        let base = vec![
            ("service", call.service.to_string()),
            ("operation", call.operation.to_string()),
        ];
        let mut labels = base.clone();
        labels.push(("status", call.status.to_string()));
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&base)
            .observe(call.took.as_secs_f64());
    }

    fn media_load(&self, outcome: &'static str, took: std::time::Duration) {
        let labels = vec![("outcome", outcome.to_string())];
        self.media_loads.get_or_create(&labels).inc();
        self.media_load_seconds
            .get_or_create(&labels)
            .inc_by(took.as_secs_f64());
    }
}

/// One served node, as the endpoint reads it.
#[derive(Clone)]
pub struct NodeSource {
    /// The node's name (the only per-node label).
    pub name: String,
    /// Its backend.
    pub backend: Arc<dyn Backend>,
    /// Its index in that backend.
    pub id: NodeId,
}

impl std::fmt::Debug for NodeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSource")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What the daemon serves, kept current across reloads.
#[derive(Debug, Default)]
pub struct Sources {
    /// Every engine's counters, those of stopped engines included.
    engines: Mutex<Vec<Arc<Counters>>>,
    /// The nodes served now.
    nodes: RwLock<Vec<NodeSource>>,
    /// The cloud's health, when there is a cloud.
    cloud: RwLock<Option<Arc<dyn CloudHealth>>>,
    /// What the daemon's parts count as they work.
    recorder: Arc<Recorder>,
}

/// `/healthz`'s verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Serving, and the cloud (if any) answered recently.
    Ok(String),
    /// The cloud has not answered within three refresh intervals.
    Unhealthy(String),
}

impl Sources {
    /// The recorder every part of this daemon reports to.
    pub fn recorder(&self) -> Arc<Recorder> {
        self.recorder.clone()
    }

    /// Adds the counters of a new engine.
    pub fn add_engine(&self, counters: Arc<Counters>) {
        self.engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(counters);
    }

    /// Replaces the list of served nodes.
    pub fn set_nodes(&self, nodes: Vec<NodeSource>) {
        *self.nodes.write().unwrap_or_else(|e| e.into_inner()) = nodes;
    }

    /// Sets (or clears) the cloud whose health `/healthz` reports.
    pub fn set_cloud(&self, cloud: Option<Arc<dyn CloudHealth>>) {
        *self.cloud.write().unwrap_or_else(|e| e.into_inner()) = cloud;
    }

    /// Healthy while the cloud answered a refresh within three refresh
    /// intervals (or there is no cloud).
    pub fn health(&self) -> Health {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner()).len();
        let cloud = self.cloud.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(cloud) = cloud else {
            return Health::Ok(format!("ok: {nodes} nodes, simulated backend\n"));
        };
        let limit = cloud.refresh_interval() * 3;
        match cloud.last_refresh() {
            None => Health::Unhealthy(format!(
                "unhealthy: {nodes} nodes; the cloud has not been reached yet\n"
            )),
            Some(t) if t.elapsed() > limit => Health::Unhealthy(format!(
                "unhealthy: {nodes} nodes; the cloud was last reached {:.1} s ago \
                 (more than three refresh intervals, {:.1} s)\n",
                t.elapsed().as_secs_f64(),
                limit.as_secs_f64()
            )),
            Some(t) => Health::Ok(format!(
                "ok: {nodes} nodes; the cloud was reached {:.1} s ago\n",
                t.elapsed().as_secs_f64()
            )),
        }
    }
}

/// The registry the endpoint encodes: the recorder's families and a
/// collector over `sources`.
pub fn registry(sources: Arc<Sources>) -> Registry {
    let mut r = Registry::default();
    r.register(
        "novabmc_chassis_controls",
        "Chassis controls accepted, by kind",
        sources.recorder.controls.clone(),
    );
    r.register(
        "novabmc_cloud_requests",
        "Keystone, Nova, Glance and Cinder calls, by service, operation and outcome",
        sources.recorder.requests.clone(),
    );
    r.register(
        "novabmc_cloud_request_duration_seconds",
        "How long cloud calls took, by service and operation",
        sources.recorder.latency.clone(),
    );
    r.register(
        "novabmc_redfish_requests",
        "Redfish requests, by resource, method and status",
        sources.recorder.redfish_requests.clone(),
    );
    r.register(
        "novabmc_redfish_request_duration_seconds",
        "How long Redfish requests took to answer, by resource and method",
        sources.recorder.redfish_latency.clone(),
    );
    r.register(
        "novabmc_media_loads",
        "Virtual media loads into the cloud that ended, by outcome (ok, failed)",
        sources.recorder.media_loads.clone(),
    );
    r.register(
        "novabmc_media_load_seconds",
        "Time spent loading virtual media into the cloud, by outcome",
        sources.recorder.media_load_seconds.clone(),
    );
    r.register(
        "novabmc_redfish_sessions",
        "Redfish sessions open, as of the last request",
        sources.recorder.redfish_sessions.clone(),
    );
    r.register_collector(Box::new(Collected(sources)));
    r
}

/// Encodes the registry in the Prometheus text format (0.0.4), which
/// every Prometheus and promtool reads (the OpenMetrics form names
/// counter families without their `_total`, which older parsers reject).
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

/// The series read when scraped.
#[derive(Debug)]
struct Collected(Arc<Sources>);

/// Help texts of the engine families, by the engine's metric name.
fn engine_help(name: &str) -> &'static str {
    match name {
        "ipmi_sessions_total" => "RMCP+ sessions by what happened to them",
        "ipmi_refusals_total" => "Session setup messages refused, by message and RMCP+ status",
        "ipmi_drops_total" => "Datagrams dropped without an answer, by reason",
        "ipmi_requests_total" => "IPMI requests in sessions, by command",
        "ipmi_responses_total" => "IPMI responses in sessions, by completion code",
        _ => "IPMI engine counter",
    }
}

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_engines(&mut encoder)?;
        self.encode_nodes(&mut encoder)
    }
}

impl Collected {
    /// The engines' counters, summed position by position (every engine
    /// lists the same samples in the same order).
    fn encode_engines(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let engines = self
            .0
            .engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let template = Counters::default();
        let samples: Vec<_> = template.samples().collect();
        let mut sums = vec![0u64; samples.len()];
        for e in &engines {
            for (sum, s) in sums.iter_mut().zip(e.samples()) {
                *sum += s.value;
            }
        }
        let mut i = 0;
        while i < samples.len() {
            let name = samples[i].name;
            let family = format!("novabmc_{}", name.trim_end_matches("_total"));
            let mut metric =
                encoder.encode_descriptor(&family, engine_help(name), None, MetricType::Counter)?;
            while i < samples.len() && samples[i].name == name {
                let s = &samples[i];
                let mut labels: Labels = vec![(s.label.0, s.label.1.to_string())];
                if let Some((k, v)) = s.label2 {
                    labels.push((k, v.to_string()));
                }
                ConstCounter::new(sums[i]).encode(metric.encode_family(&labels)?)?;
                i += 1;
            }
        }
        Ok(())
    }

    /// Per-node power and pending work, the total pending, and the age of
    /// the last refresh.
    fn encode_nodes(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let nodes = self
            .0
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, v: i64| {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        gauge(encoder, "novabmc_nodes", "Nodes served", nodes.len() as i64)?;
        let states: Vec<(Option<bool>, bool)> = nodes
            .iter()
            .map(|n| {
                (
                    n.backend.chassis_status(n.id).ok().map(|s| s.power_on),
                    n.backend.power_pending(n.id),
                )
            })
            .collect();
        let pending = states.iter().filter(|(_, p)| *p).count();
        gauge(
            encoder,
            "novabmc_power_operations_pending",
            "Power operations acknowledged and not yet carried out, all nodes together",
            pending as i64,
        )?;
        let mut metric = encoder.encode_descriptor(
            "novabmc_node_power_on",
            "1 if the node reports power on, 0 if off; absent while unknown",
            None,
            MetricType::Gauge,
        )?;
        for (n, (on, _)) in nodes.iter().zip(&states) {
            if let Some(on) = on {
                ConstGauge::new(i64::from(*on))
                    .encode(metric.encode_family(&vec![("node", n.name.clone())])?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "novabmc_node_power_pending",
            "1 while the node has a power operation pending",
            None,
            MetricType::Gauge,
        )?;
        for (n, (_, p)) in nodes.iter().zip(&states) {
            ConstGauge::new(i64::from(*p))
                .encode(metric.encode_family(&vec![("node", n.name.clone())])?)?;
        }
        let cloud = self
            .0
            .cloud
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(t) = cloud.and_then(|c| c.last_refresh()) {
            let g = ConstGauge::new(t.elapsed().as_secs_f64());
            g.encode(encoder.encode_descriptor(
                "novabmc_cloud_last_refresh_age_seconds",
                "Seconds since the server listing last succeeded",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
