//! The behaviour contract as data, and the runner that holds every adapter and
//! store to it over real HTTP.
//!
//! `cases/*.json` are the cases, `cases/errors.json` how each documented
//! error looks on the wire. A [`Target`] is a server plus [`Fixtures`] that set
//! up its state; [`targets`] builds the in-process ones, and a running server
//! can be targeted through its admin API the same way.

pub mod app;
pub mod blackbox;
pub mod browser;
pub mod case;
pub mod client;
pub mod compare;
pub mod faults;
pub mod fixtures;
pub mod gateway;
pub mod matrix;
pub mod multi_instance;
pub mod nginx_conf;
pub mod runner;
pub mod schemathesis;
pub mod soak;
pub mod suite;
pub mod targets;

pub use fixtures::{Fixtures, InProcess};
pub use runner::{CaseResult, Target, Verdict, run_target};
pub use suite::Suite;
