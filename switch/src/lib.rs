//! host-switch's L2 learning switch, its links and control API.
//!
//! - [`netns`]: run code inside another network namespace without moving the process.
//! - [`tap`]: TAP devices, created in any namespace and optionally configured.

pub mod netns;
pub mod tap;
