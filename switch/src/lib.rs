//! host-switch's L2 learning switch, its links and control API.
