//! The switch thread: port membership, forwarding, capture and MAC ageing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, select};
use stack::time::Epoch;

#[path = "switch_mcast.rs"]
pub(super) mod mcast;

use super::{PortStats, Query, SwitchStats};
use crate::forward::{Decision, Switch, SwitchConfig};
use crate::mac_table::PortId;
use crate::pcap::PcapSink;
use crate::port::{Control, Egress, Frame, Ingress, PortCounters, SwitchInputs};

/// How often aged MAC entries are swept.
const AGEING_INTERVAL: Duration = Duration::from_secs(1);
/// Frames handled per wake-up before the thread looks at its other inputs again.
const BATCH: usize = 256;

struct PortEntry {
    name: Arc<str>,
    egress: Egress,
    counters: Arc<PortCounters>,
}

pub(super) struct SwitchThread {
    switch: Switch,
    ports: HashMap<PortId, PortEntry>,
    inputs: SwitchInputs,
    queries: Receiver<Query<SwitchStats>>,
    stop: Receiver<()>,
    pcap: Option<PcapSink>,
    epoch: Epoch,
    guest_gone: Option<super::GuestGoneHook>,
    /// IGMP/MLD snooping; `None` floods every group.
    mcast: Option<mcast::Mcast>,
}

impl SwitchThread {
    pub(super) fn new(
        config: &SwitchConfig,
        inputs: SwitchInputs,
        queries: Receiver<Query<SwitchStats>>,
        stop: Receiver<()>,
        pcap: Option<PcapSink>,
        epoch: Epoch,
    ) -> SwitchThread {
        SwitchThread {
            switch: Switch::new(config),
            ports: HashMap::new(),
            inputs,
            queries,
            stop,
            pcap,
            epoch,
            guest_gone: None,
            mcast: None,
        }
    }

    /// Routes multicast by IGMP/MLD snooping, telling `hook` of group events.
    pub(super) fn with_snooper(
        mut self,
        snooper: Option<crate::snoop::Snooper>,
        hook: Option<mcast::GroupHook>,
    ) -> SwitchThread {
        self.mcast = snooper.map(|snooper| mcast::Mcast { snooper, hook });
        self
    }

    /// Tells `hook` which addresses were learned on each port that detaches.
    pub(super) fn with_guest_gone(mut self, hook: Option<super::GuestGoneHook>) -> SwitchThread {
        self.guest_gone = hook;
        self
    }

    pub(super) fn run(mut self) {
        let ageing = crossbeam_channel::tick(AGEING_INTERVAL);
        loop {
            select! {
                recv(self.inputs.control) -> msg => match msg {
                    Ok(control) => self.control(control),
                    // Every Attacher and Port is gone: nothing can reach us any more.
                    Err(_) => return,
                },
                recv(self.inputs.ingress) -> msg => match msg {
                    Ok(ingress) => self.ingress_batch(ingress),
                    Err(_) => return,
                },
                recv(self.queries) -> msg => {
                    if let Ok(reply) = msg {
                        let _ = reply.try_send(self.stats());
                    }
                },
                recv(ageing) -> _ => {
                    let now = self.epoch.instant(std::time::Instant::now());
                    self.switch.expire(now);
                    self.multicast_timers(now);
                },
                recv(self.stop) -> _ => return,
            }
        }
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::Attach {
                id,
                name,
                egress,
                counters,
            } => {
                self.switch.add_port(id);
                let now = self.epoch.instant(std::time::Instant::now());
                let egress = Egress::new(egress, counters.clone());
                self.ports.insert(
                    id,
                    PortEntry {
                        name,
                        egress,
                        counters,
                    },
                );
                self.multicast_port(now, id, true);
            }
            Control::Detach { id } => {
                let gone = self.switch.detach(id);
                // The gateway's port stays in the switch; its queue goes with the port.
                self.ports.remove(&id);
                let now = self.epoch.instant(std::time::Instant::now());
                self.multicast_port(now, id, false);
                if let (Some(macs), Some(hook)) = (gone, &self.guest_gone)
                    && !macs.is_empty()
                {
                    hook(&macs);
                }
            }
        }
    }

    /// Handles `first` and whatever else is queued, up to a batch.
    fn ingress_batch(&mut self, first: Ingress) {
        // A port's attach notice is sent before any of its frames: take notices first, so a
        // new port's first frame is not dropped as coming from an unknown port.
        while let Ok(control) = self.inputs.control.try_recv() {
            self.control(control);
        }
        let now = self.epoch.instant(std::time::Instant::now());
        self.forward(now, first);
        for _ in 1..BATCH {
            match self.inputs.ingress.try_recv() {
                Ok(next) => self.forward(now, next),
                Err(_) => break,
            }
        }
    }

    fn forward(&mut self, now: stack::time::Instant, Ingress { port, frame }: Ingress) {
        let decision = self.switch.handle_frame(now, port, &frame);
        match decision {
            Decision::Drop(_) => {}
            Decision::Unicast(to) => {
                self.capture(&frame);
                if let Some(entry) = self.ports.get(&to) {
                    entry.egress.push(frame);
                }
            }
            Decision::Flood => {
                if self.multicast(now, port, &frame) {
                    return;
                }
                self.capture(&frame);
                for to in self.switch.flood_ports(port) {
                    if let Some(entry) = self.ports.get(&to) {
                        entry.egress.push(Frame::clone(&frame));
                    }
                }
            }
        }
    }

    fn capture(&self, frame: &[u8]) {
        if let Some(pcap) = &self.pcap {
            pcap.capture(frame);
        }
    }

    fn stats(&self) -> SwitchStats {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let mut ports: Vec<PortStats> = self
            .ports
            .iter()
            .map(|(&id, e)| PortStats {
                id,
                name: e.name.clone(),
                rx_frames: load(&e.counters.rx_frames),
                rx_bytes: load(&e.counters.rx_bytes),
                rx_dropped: load(&e.counters.rx_dropped),
                tx_frames: load(&e.counters.tx_frames),
                tx_bytes: load(&e.counters.tx_bytes),
                tx_dropped: load(&e.counters.tx_dropped),
            })
            .collect();
        ports.sort_by_key(|p| p.id);
        let now = self.epoch.instant(std::time::Instant::now());
        SwitchStats {
            ports,
            counters: self.switch.counters().clone(),
            mac_table: self.switch.table().counters().clone(),
            mac_entries: self.switch.table().entries(now).count(),
            multicast: self.mcast.as_ref().map(|m| m.snooper.counters()),
        }
    }
}
