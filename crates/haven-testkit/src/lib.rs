//! What Haven's tests share, kept out of the product's crates:
//!
//! - [`Proxy`], a TCP proxy on loopback that cuts, delays and refuses
//!   connections on command, and fails over between several servers the
//!   way a load balancer does;
//! - [`fold_history`], what the merge rule makes of a partition's whole
//!   server history, to compare devices and the server's state against.

mod history;
mod proxy;

pub use history::{fold_history, Fields};
pub use proxy::{Faults, Proxy};
