//! [`Tlsf::validate`]: every invariant of the node chains, the free lists,
//! the bitmaps and the counters, checked from scratch.

use super::lists::{mapping, FL_COUNT, NIL, SL_COUNT};
use super::{State, Tlsf};

impl<T> Tlsf<T> {
    ///
    /// Each region's nodes in address order start at its first node at 0,
    /// tile the region with no gap, have consistent links, belong to it, and
    /// no two adjacent ones are free; every free node is in the list of its
    /// class exactly once and every listed node is free; the bitmaps say
    /// which lists are non-empty; spare nodes are outside every chain; the
    /// byte, live and free counters (per region and in all) agree. O(nodes).
    pub fn validate(&self) -> Result<(), String> {
        let (mut live, mut free, mut allocated, mut chained) = (0usize, 0usize, 0u64, 0usize);
        for region in self.regions() {
            let r = self.region(region).expect("listed");
            let mut expect_offset = 0u64;
            let mut prev = NIL;
            let mut n = r.first;
            let mut prev_free = false;
            let (mut r_live, mut r_alloc) = (0u32, 0u64);
            while n != NIL {
                let node = self
                    .nodes
                    .get(n as usize)
                    .ok_or_else(|| format!("node {n} out of range"))?;
                chained += 1;
                if chained > self.nodes.len() {
                    return Err("physical chains have a cycle".into());
                }
                if node.region != region {
                    return Err(format!(
                        "node {n} in region {region}'s chain says {}",
                        node.region
                    ));
                }
                if u64::from(node.offset) != expect_offset {
                    return Err(format!(
                        "node {n} starts at unit {} where {expect_offset} was expected",
                        node.offset
                    ));
                }
                if node.size == 0 {
                    return Err(format!("node {n} is empty"));
                }
                if node.prev_phys != prev {
                    return Err(format!(
                        "node {n} links back to {} not {prev}",
                        node.prev_phys
                    ));
                }
                match node.state {
                    State::Free => {
                        if prev_free {
                            return Err(format!("free node {n} follows a free node"));
                        }
                        if self.nodes[n as usize].payload.is_some() {
                            return Err(format!("free node {n} has a payload"));
                        }
                        free += 1;
                    }
                    State::Live => {
                        if self.nodes[n as usize].payload.is_none() {
                            return Err(format!("live node {n} has no payload"));
                        }
                        r_live += 1;
                        r_alloc += u64::from(node.size);
                    }
                    State::Spare => return Err(format!("spare node {n} is in a chain")),
                }
                prev_free = node.state == State::Free;
                expect_offset += u64::from(node.size);
                prev = n;
                n = node.next_phys;
            }
            if expect_offset != u64::from(r.units) {
                return Err(format!(
                    "region {region}: nodes cover {expect_offset} units of {}",
                    r.units
                ));
            }
            if r_live != r.live || r_alloc != r.allocated_units {
                return Err(format!(
                    "region {region}: counters live {} / {r_live}, allocated {} / {r_alloc}",
                    r.live, r.allocated_units
                ));
            }
            live += r_live as usize;
            allocated += r_alloc;
        }
        if chained + self.spare.len() != self.nodes.len() {
            return Err(format!(
                "{chained} chained + {} spare nodes != {} nodes",
                self.spare.len(),
                self.nodes.len()
            ));
        }
        for &s in &self.spare {
            match self.nodes.get(s as usize) {
                Some(n) if n.state == State::Spare && n.payload.is_none() => {}
                Some(n) if n.state == State::Spare => {
                    return Err(format!("spare node {s} holds a payload"))
                }
                _ => return Err(format!("spare node {s} is not marked spare")),
            }
        }
        if live != self.live || allocated != self.allocated_units || free != self.free_nodes {
            return Err(format!(
                "counters: live {}/{live}, allocated {}/{allocated}, free {}/{free}",
                self.live, self.allocated_units, self.free_nodes
            ));
        }
        let mut listed = 0usize;
        for fl in 0..FL_COUNT as u32 {
            let fl_bit = self.fl_bitmap >> fl & 1 != 0;
            if fl_bit != (self.sl_bitmaps[fl as usize] != 0) {
                return Err(format!("first-level bit {fl} disagrees with its lists"));
            }
            for sl in 0..SL_COUNT {
                let head = self.heads[Self::list(fl, sl)];
                if (self.sl_bitmaps[fl as usize] >> sl & 1 != 0) != (head != NIL) {
                    return Err(format!("list ({fl}, {sl}) bit disagrees with its head"));
                }
                let mut p = NIL;
                let mut m = head;
                while m != NIL {
                    let node = &self.nodes[m as usize];
                    if node.state != State::Free {
                        return Err(format!("listed node {m} is not free"));
                    }
                    if mapping(node.size) != (fl, sl) {
                        return Err(format!("node {m} is in list ({fl}, {sl}) of another class"));
                    }
                    if node.prev_free != p {
                        return Err(format!("node {m} free-list back link broken"));
                    }
                    listed += 1;
                    if listed > free {
                        return Err("free lists hold more nodes than are free".into());
                    }
                    p = m;
                    m = node.next_free;
                }
            }
        }
        if listed != free {
            return Err(format!(
                "{listed} listed free nodes, {free} free in the chains"
            ));
        }
        Ok(())
    }
}
