//! Connection slots: how many sessions run at once, in all and from each client address, so that one client
//! cannot take every slot while devices are turned away.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, u32>,
}

/// The slots in use.
#[derive(Debug, Default)]
pub struct Slots {
    counts: Mutex<Counts>,
}

/// Why a connection got no slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// `gateway.max_connections` sessions run already.
    All,
    /// `gateway.max_connections_per_address` sessions run from this address already.
    Address,
}

/// A session's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    /// Takes a slot for a session from `ip`, within both limits.
    pub fn take(self: &Arc<Self>, ip: IpAddr, max: u32, max_per_address: u32) -> Result<Slot, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= max as usize {
            return Err(Full::All);
        }
        let from = counts.by_address.entry(ip).or_default();
        if *from >= max_per_address {
            return Err(Full::Address);
        }
        *from += 1;
        counts.total += 1;
        Ok(Slot { slots: self.clone(), ip })
    }

    /// Sessions running now.
    pub fn in_use(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.by_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot() {
        let slots = Arc::new(Slots::default());
        let (a, b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
        let held: Vec<Slot> = (0..2).map(|_| slots.take(a, 3, 2).expect("within both limits")).collect();
        assert_eq!(slots.take(a, 3, 2).err(), Some(Full::Address));
        let other = slots.take(b, 3, 2).expect("another address still gets one");
        assert_eq!(slots.take(b, 3, 2).err(), Some(Full::All));
        assert_eq!(slots.in_use(), 3);
        drop(held);
        drop(other);
        assert_eq!(slots.in_use(), 0);
        assert!(slots.counts.lock().unwrap_or_else(|e| e.into_inner()).by_address.is_empty());
    }
}
