//! The TAP link: `--netns PID|PATH --tap NAME [--configure] [--mac] [--mtu]`.
//!
//! One TAP device is one port, served inside the workers' loops: the device is opened with
//! `IFF_MULTI_QUEUE` and one queue per worker (each worker reads and writes its own queue, so a
//! flow's frames never leave the thread that owns it), or handed over already open, as
//! `host-switch run` does with the queues its child created. It is optionally configured as
//! slirp4netns `--configure` does (see [`crate::tap`]). [`TapLink::shutdown`] (or drop) detaches
//! the port and closes every queue; the device disappears with its last descriptor. A device
//! deleted under us (`ip link del`) is noticed by the worker reading it, which detaches the
//! port at once. Queues opened for offloads ([`TapOptions::offload`]) get them negotiated
//! before the port attaches ([`crate::tap::TapOffloads`]).

use std::sync::Arc;

use crate::mac_table::PortId;
use crate::netns::Netns;
use crate::port::{AttachError, Attacher, PortCounters};
use crate::tap::{Tap, TapError, TapOffloads, TapOptions};

/// Why a TAP link could not start.
#[derive(Debug, thiserror::Error)]
pub enum TapLinkError {
    #[error(transparent)]
    Open(#[from] TapError),
    #[error("cannot attach the TAP port: {0}")]
    Attach(#[from] AttachError),
    #[error("cannot set up the TAP device's offloads: {0}")]
    Offload(std::io::Error),
}

/// A running TAP port.
#[derive(Debug)]
pub struct TapLink {
    name: String,
    id: PortId,
    offloads: TapOffloads,
    counters: Arc<PortCounters>,
    attacher: Attacher,
    attached: bool,
}

impl TapLink {
    /// Opens TAP `name` in `netns` (configuring it if `options` say so) and serves it, with as
    /// many queues as there are workers when `options.multi_queue` is set.
    pub fn open(
        name: &str,
        netns: &Netns,
        options: &TapOptions,
        attacher: &Attacher,
        mtu: u16,
    ) -> Result<TapLink, TapLinkError> {
        let first = Tap::open_with(name, netns, options)?;
        let mut queues = vec![first];
        if options.multi_queue {
            let more = TapOptions {
                multi_queue: true,
                configure: None,
                offload: options.offload,
            };
            let name = queues[0].name().to_owned();
            for _ in 1..attacher.board().workers() {
                queues.push(Tap::open_with(&name, netns, &more)?);
            }
        }
        TapLink::start(queues, attacher, mtu)
    }

    /// Serves the open queues of one TAP device, with the offloads the kernel agrees to on
    /// queues opened for them ([`Tap::negotiate_offloads`]).
    pub fn start(
        mut queues: Vec<Tap>,
        attacher: &Attacher,
        mtu: u16,
    ) -> Result<TapLink, TapLinkError> {
        let name = queues
            .first()
            .map(|q| q.name().to_owned())
            .unwrap_or_default();
        let count = queues.len();
        let mut offloads = TapOffloads::NONE;
        for queue in &mut queues {
            offloads = queue.negotiate_offloads().map_err(TapLinkError::Offload)?;
        }
        let (id, counters) = attacher
            .board()
            .attach_tap(&format!("tap:{name}"), queues, mtu)?;
        tracing::info!(
            tap = %name,
            id = id.0,
            queues = count,
            offloads = %offloads.describe(),
            "TAP port attached"
        );
        Ok(TapLink {
            name,
            id,
            offloads,
            counters,
            attacher: attacher.clone(),
            attached: true,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> PortId {
        self.id
    }

    /// What the kernel agreed to do for this device's queues.
    pub fn offloads(&self) -> TapOffloads {
        self.offloads
    }

    pub fn counters(&self) -> &PortCounters {
        &self.counters
    }

    /// Detaches the port and closes its queues.
    pub fn shutdown(mut self) {
        self.detach();
    }

    fn detach(&mut self) {
        if std::mem::take(&mut self.attached) {
            self.attacher.board().detach_and_wait(self.id);
            tracing::info!(tap = %self.name, id = self.id.0, "TAP port detached");
        }
    }
}

impl Drop for TapLink {
    fn drop(&mut self) {
        self.detach();
    }
}
