//! Host access through the persistent mapping: [`Allocator::write`],
//! [`Allocator::read`], [`Allocator::flush`] and [`Allocator::invalidate`].
//! Every range is checked against the allocation first (a typed error,
//! never a panic); flush and invalidate round out to `nonCoherentAtomSize`
//! and clamp to the memory's end, which never touches a neighbour's atoms
//! because placements are aligned to the minimum block, itself at least
//! `nonCoherentAtomSize`.

use super::*;
use crate::device::MappedRange;

impl Allocator {
    /// Checks that `[offset, offset + size)` of a host-visible allocation
    /// of this allocator lies inside it.
    fn check_range(
        &self,
        allocation: &Allocation,
        offset: u64,
        size: u64,
    ) -> Result<(), AllocError> {
        if allocation.allocator_id != self.id {
            return Err(AllocError::ForeignAllocation {
                owner: allocation.allocator_id,
                this: self.id,
            });
        }
        if allocation.mapped.is_none() {
            return Err(AllocError::NotHostVisible {
                memory_type_index: allocation.memory_type_index,
            });
        }
        if offset
            .checked_add(size)
            .is_none_or(|end| end > allocation.size)
        {
            return Err(AllocError::OutOfBounds {
                offset,
                size,
                allocation_size: allocation.size,
            });
        }
        Ok(())
    }

    /// The mapped range covering `[offset, offset + size)` of the allocation,
    /// rounded out to `nonCoherentAtomSize` and clamped to the memory's end.
    fn atom_range(&self, allocation: &Allocation, offset: u64, size: u64) -> MappedRange {
        let atom = self.props.non_coherent_atom_size;
        let start = allocation.offset + offset;
        let end = (start + size).div_ceil(atom) * atom;
        let start = start / atom * atom;
        MappedRange {
            memory: allocation.memory,
            offset: start,
            size: end.min(allocation.memory_size) - start,
        }
    }

    /// Makes host writes to `[offset, offset + size)` of the allocation visible
    /// to the device (`vkFlushMappedMemoryRanges`, rounded to
    /// `nonCoherentAtomSize`); a no-op on coherent memory.
    #[doc(alias = "vmaFlushAllocation")]
    pub fn flush(&self, allocation: &Allocation, offset: u64, size: u64) -> Result<(), AllocError> {
        self.check_range(allocation, offset, size)?;
        if allocation.coherent || size == 0 {
            return Ok(());
        }
        let range = self.atom_range(allocation, offset, size);
        // SAFETY: the range lies inside the allocation's mapped memory, is
        // atom-aligned and clamped to the memory's end.
        unsafe { self.device.flush_ranges(&[range]) }.map_err(AllocError::Device)
    }

    /// Makes device writes to `[offset, offset + size)` visible to the host
    /// (`vkInvalidateMappedMemoryRanges`, rounded to `nonCoherentAtomSize`);
    /// a no-op on coherent memory.
    #[doc(alias = "vmaInvalidateAllocation")]
    pub fn invalidate(
        &self,
        allocation: &Allocation,
        offset: u64,
        size: u64,
    ) -> Result<(), AllocError> {
        self.check_range(allocation, offset, size)?;
        if allocation.coherent || size == 0 {
            return Ok(());
        }
        let range = self.atom_range(allocation, offset, size);
        // SAFETY: as in `flush`. Rounding out cannot discard a neighbour's
        // writes: allocations are aligned to the minimum block, which is at
        // least nonCoherentAtomSize.
        unsafe { self.device.invalidate_ranges(&[range]) }.map_err(AllocError::Device)
    }

    /// Copies `data` into the allocation at `offset` through its mapping and
    /// flushes it when the memory is not coherent. The GPU must not be using
    /// the range.
    pub fn write(
        &self,
        allocation: &mut Allocation,
        offset: u64,
        data: &[u8],
    ) -> Result<(), AllocError> {
        self.check_range(allocation, offset, data.len() as u64)?;
        let base = allocation.mapped.expect("checked host-visible").0;
        // SAFETY: the range is inside the mapped allocation (checked), the
        // `&mut Allocation` makes the host access exclusive, and `data` cannot
        // overlap device memory mappings handed out as `&mut`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                base.as_ptr().add(offset as usize),
                data.len(),
            )
        };
        self.flush(allocation, offset, data.len() as u64)
    }

    /// Invalidates (when not coherent) and copies `out.len()` bytes from the
    /// allocation at `offset`. The GPU must have finished writing the range.
    pub fn read(
        &self,
        allocation: &Allocation,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), AllocError> {
        self.check_range(allocation, offset, out.len() as u64)?;
        self.invalidate(allocation, offset, out.len() as u64)?;
        let base = allocation.mapped.expect("checked host-visible").0;
        // SAFETY: the range is inside the mapped allocation (checked); writers
        // need `&mut Allocation`, so none runs while we hold `&Allocation`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                base.as_ptr().add(offset as usize),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }
}
