//! `agx-server` as a library: the modules the binary (`main.rs`) wires
//! together. They are public so that the fuzz targets (`fuzz/`) can drive
//! the server's own parsers and validators; this is not a stable API.

pub mod admin;
pub mod app;
pub mod audit;
pub mod backend;
pub mod conversations;
pub mod cors;
pub mod count;
pub mod dashboard;
pub mod errors;
pub mod forward;
pub mod host_routes;
pub mod input;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod ops;
pub mod public;
pub mod routing;
pub mod scan;
pub mod schema;
pub mod secret_scanning;
pub mod serve;
pub mod state;
pub mod time;
pub mod verify;
