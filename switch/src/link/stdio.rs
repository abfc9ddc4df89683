//! `-listen-stdio accept`: one port on standard input and output, 2-byte little-endian
//! length before each frame (as gvforwarder and vpnkit-style stdio speak it).
//!
//! [`serve`] is generic over the reader and writer so tests (and other pipes) can use it; the
//! binary passes stdin and stdout. Logs must not go to stdout while this link runs.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::stream::{self, StreamSpec};
use super::{CloseReason, LinkCounters, LinkLimits};
use crate::framing::LengthPrefix;
use crate::port::Attacher;

/// The value gvproxy documents for `-listen-stdio`.
pub const ACCEPT: &str = "accept";

/// A running stdio port.
#[derive(Debug)]
pub struct StdioLink {
    pub counters: Arc<LinkCounters>,
    pub thread: JoinHandle<CloseReason>,
}

/// Attaches one port and runs it over `reader`/`writer` on a thread of its own. The thread
/// ends, returning why, when the reader reaches end of stream or framing is bad.
pub fn serve<R, W>(
    attacher: &Attacher,
    reader: R,
    writer: W,
    limits: LinkLimits,
) -> io::Result<StdioLink>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let port = attacher
        .attach("stdio")
        .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
    let counters = Arc::new(LinkCounters::default());
    // The single port takes the only slot.
    counters
        .accepted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let spec = StreamSpec {
        prefix: LengthPrefix::U16Le,
        max_frame: limits.max_frame,
    };
    let thread = {
        let counters = counters.clone();
        std::thread::Builder::new()
            .name("stdio-rx".into())
            .spawn(move || {
                tracing::info!(id = port.id().0, "stdio port attached");
                // A pipe cannot be shut down from here; a blocked read ends with the input.
                stream::run(port, reader, writer, spec, &[], &counters, || {})
            })?
    };
    Ok(StdioLink { counters, thread })
}
