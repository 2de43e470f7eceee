//! The dashboard: Settings > API Keys, usage, agents' domains, behind a
//! sign-in with the admin token or an org dashboard token.
//!
//! - `store`: dashboard tokens and sessions, in memory or PostgreSQL;
//! - `access`: who calls the admin API (token or session + CSRF), and the
//!   guard that tells the handlers;
//! - `pages`: the server-rendered pages and their embedded assets;
//! - `chart`: a key's 30 days as SVG, and the rule that flags a day;
//! - `throttle`: wrong tokens per client address, through the core's GCRA.

pub mod access;
mod chart;
pub mod pages;
mod store;
mod throttle;

pub use access::{Caller, NO_ORG};
pub use pages::Settings;
pub use store::{DashboardError, DashboardStore, TokenInfo};
pub use throttle::SignInThrottle;
