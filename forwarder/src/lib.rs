//! host-switch's host side: worker threads that own flow tables and host sockets.
