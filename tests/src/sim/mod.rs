//! The fleet simulator: the real handlers over the in-memory kit, in virtual time, with AWS
//! modelled from its documented quotas and behaviour.
//!
//! Why: no local stack carries 100,000 hosts (moto manages about 100 calls a second), yet the
//! pipeline's limits only show at that size: Private CA's 25 issuances a second, SendCommand's
//! rate, Lambda's asynchronous queue and timeouts. Here a simulated month takes minutes, one
//! seed gives one trace, and the invariants are checked at every step.
//!
//! - [`scenario`]: every number, from a TOML file, overridable by upper-case name;
//! - [`queue`]: the timed events; [`engine`]: the loop, the fleet's setup, the invariants;
//! - [`env`]: the running invocation's virtual time, deadline, calls and effects;
//! - AWS models over the kit's fakes, implementing the same ports: [`dynamo`], [`ssm`],
//!   [`pca`], [`sns`], with [`bucket`] for quotas; [`lambda`] for the asynchronous queue;
//! - [`fleet`]: the hosts; [`driver`]: the one module that calls the handlers;
//! - [`report`], [`cost`], [`chart`]: what a run writes.
//!
//! What is not modelled: EventBridge's own target retries (its delivery to Lambda's
//! asynchronous queue is taken as always succeeding; loss is modelled at the event), the
//! CRL path (no revocations are simulated), reordering beyond what random delays give, and
//! handler crashes mid-way other than the timeout's kill.

pub mod bucket;
pub mod chart;
pub mod cost;
pub mod driver;
pub mod dynamo;
pub mod engine;
pub mod env;
pub mod fleet;
pub mod lambda;
pub mod pca;
pub mod queue;
pub mod report;
pub mod scenario;
pub mod sns;
pub mod ssm;

pub use engine::Sim;
pub use report::Report;
pub use scenario::Scenario;

/// Runs `scenario` to its end on a paused single-thread runtime (the handlers' waits take no
/// wall time, and the order of tasks is fixed), calling `progress` with the share done.
///
/// # Panics
/// If the runtime cannot be built.
pub fn run(scenario: Scenario, progress: Option<Box<dyn FnMut(f64)>>) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let started = std::time::Instant::now();
        let mut sim = Sim::new(scenario).await;
        sim.progress = progress;
        sim.run().await;
        Report::of(&sim, started.elapsed().as_secs_f64())
    })
}
