//! Creation of one resource or a batch, all or nothing: validate every
//! desc, create every object, allocate each one's memory from its
//! requirements, bind them all with one `vkBind*Memory2` call, name them,
//! and only then register them. A failure at any step destroys the objects
//! made so far and frees their memory, last made first, so nothing of the
//! call is left.

use super::*;

/// Objects made so far in one creation call, undone on failure.
struct Pending<H> {
    handles: SmallVec<[H; 1]>,
    allocations: SmallVec<[Allocation; 1]>,
}

impl ResourceManager {
    pub(super) fn create_buffers_inner(
        &self,
        descs: &[BufferDesc],
        batch: bool,
    ) -> Result<SmallVec<[Buffer; 1]>, ResourceError> {
        let wrap = |index: usize, e: ResourceError| {
            if batch {
                ResourceError::Batch {
                    index,
                    source: Box::new(e),
                }
            } else {
                e
            }
        };
        for (i, d) in descs.iter().enumerate() {
            validate::buffer(d, &self.limits).map_err(|e| wrap(i, e))?;
        }
        if descs.is_empty() {
            // vkBindBufferMemory2 needs bindInfoCount > 0.
            return Ok(SmallVec::new());
        }
        let mut p: Pending<vk::Buffer> = Pending {
            handles: SmallVec::with_capacity(descs.len()),
            allocations: SmallVec::with_capacity(descs.len()),
        };
        for (i, d) in descs.iter().enumerate() {
            match self.create_buffer_object(d) {
                Ok(h) => p.handles.push(h),
                Err(e) => return Err(wrap(i, self.undo_buffers(p, e))),
            }
        }
        for (i, d) in descs.iter().enumerate() {
            let handle = p.handles[i];
            let (requirements, dedicated) = self.buffer_requirements(handle);
            let mut adesc = AllocationDesc::new(requirements, d.memory)
                .class(ResourceClass::Linear)
                .dedicated(dedicated);
            if let Some(n) = &d.name {
                adesc = adesc.name(n);
            }
            match self.allocator.allocate(&adesc) {
                Ok(a) => p.allocations.push(a),
                Err(e) => return Err(wrap(i, self.undo_buffers(p, e.into()))),
            }
        }
        let binds: SmallVec<[vk::BindBufferMemoryInfo<'_>; 1]> = p
            .handles
            .iter()
            .zip(&p.allocations)
            .map(|(&b, a)| {
                vk::BindBufferMemoryInfo::default()
                    .buffer(b)
                    .memory(a.memory())
                    .memory_offset(a.offset())
            })
            .collect();
        let bound = self
            .faults
            .check(FaultPoint::BindBufferMemory)
            .and_then(|()| {
                // SAFETY: each buffer is fresh (no memory bound) and its
                // allocation was made from its own requirements, so size,
                // alignment and memory type satisfy the bind's valid usage.
                unsafe { self.device.bind_buffer_memory2(&binds) }
            });
        drop(binds);
        if let Err(result) = bound {
            // If the bind failed, spec: the buffers' memory binding state is
            // undefined, but destroying them and freeing the memory is valid.
            return Err(self.undo_buffers(
                p,
                ResourceError::Vulkan {
                    call: "vkBindBufferMemory2",
                    result,
                },
            ));
        }
        for (i, d) in descs.iter().enumerate() {
            if let Some(name) = &d.name {
                let named = self
                    .set_name(p.handles[i], name)
                    .and_then(|()| self.name_memory(&p.allocations[i], name));
                if let Err(e) = named {
                    return Err(wrap(i, self.undo_buffers(p, e)));
                }
            }
        }
        let mut out = SmallVec::with_capacity(descs.len());
        let mut registry = self.registry.lock();
        for ((d, handle), allocation) in descs.iter().zip(p.handles).zip(p.allocations) {
            let slot = registry.insert(Entry {
                kind: ResourceKind::Buffer,
                handle: vk::Handle::as_raw(handle),
                name: d.name.clone(),
                memory_size: allocation.reserved_size(),
                retired: None,
            });
            out.push(Buffer {
                handle,
                allocation,
                desc: d.clone(),
                owner: self.id,
                slot,
            });
        }
        Ok(out)
    }

    pub(super) fn create_images_inner(
        &self,
        descs: &[ImageDesc],
        batch: bool,
    ) -> Result<SmallVec<[Image; 1]>, ResourceError> {
        let wrap = |index: usize, e: ResourceError| {
            if batch {
                ResourceError::Batch {
                    index,
                    source: Box::new(e),
                }
            } else {
                e
            }
        };
        for (i, d) in descs.iter().enumerate() {
            self.validate_image_desc(d).map_err(|e| wrap(i, e))?;
        }
        if descs.is_empty() {
            // vkBindImageMemory2 needs bindInfoCount > 0.
            return Ok(SmallVec::new());
        }
        let mut p: Pending<vk::Image> = Pending {
            handles: SmallVec::with_capacity(descs.len()),
            allocations: SmallVec::with_capacity(descs.len()),
        };
        for (i, d) in descs.iter().enumerate() {
            match self.create_image_object(d) {
                Ok(h) => p.handles.push(h),
                Err(e) => return Err(wrap(i, self.undo_images(p, e))),
            }
        }
        for (i, d) in descs.iter().enumerate() {
            let handle = p.handles[i];
            let (requirements, dedicated) = self.image_requirements(handle);
            let class = if d.tiling == vk::ImageTiling::OPTIMAL {
                ResourceClass::Optimal
            } else {
                ResourceClass::Linear
            };
            let mut adesc = AllocationDesc::new(requirements, d.memory)
                .class(class)
                .dedicated(dedicated);
            if let Some(n) = &d.name {
                adesc = adesc.name(n);
            }
            match self.allocator.allocate(&adesc) {
                Ok(a) => p.allocations.push(a),
                Err(e) => return Err(wrap(i, self.undo_images(p, e.into()))),
            }
        }
        let binds: SmallVec<[vk::BindImageMemoryInfo<'_>; 1]> = p
            .handles
            .iter()
            .zip(&p.allocations)
            .map(|(&img, a)| {
                vk::BindImageMemoryInfo::default()
                    .image(img)
                    .memory(a.memory())
                    .memory_offset(a.offset())
            })
            .collect();
        let bound = self
            .faults
            .check(FaultPoint::BindImageMemory)
            .and_then(|()| {
                // SAFETY: each image is fresh, not disjoint (refused by
                // validation), and its allocation satisfies its requirements.
                unsafe { self.device.bind_image_memory2(&binds) }
            });
        drop(binds);
        if let Err(result) = bound {
            return Err(self.undo_images(
                p,
                ResourceError::Vulkan {
                    call: "vkBindImageMemory2",
                    result,
                },
            ));
        }
        for (i, d) in descs.iter().enumerate() {
            if let Some(name) = &d.name {
                let named = self
                    .set_name(p.handles[i], name)
                    .and_then(|()| self.name_memory(&p.allocations[i], name));
                if let Err(e) = named {
                    return Err(wrap(i, self.undo_images(p, e)));
                }
            }
        }
        let mut out = SmallVec::with_capacity(descs.len());
        let mut registry = self.registry.lock();
        for ((d, handle), allocation) in descs.iter().zip(p.handles).zip(p.allocations) {
            let slot = registry.insert(Entry {
                kind: ResourceKind::Image,
                handle: vk::Handle::as_raw(handle),
                name: d.name.clone(),
                memory_size: allocation.reserved_size(),
                retired: None,
            });
            out.push(Image {
                handle,
                allocation,
                desc: d.clone(),
                owner: self.id,
                slot,
                layouts: ImageLayouts::new(d.mip_levels, d.array_layers),
            });
        }
        Ok(out)
    }

    /// Frees the allocations of a failed creation, last made first.
    fn free_in_reverse(&self, allocations: impl DoubleEndedIterator<Item = Allocation>) {
        for a in allocations.rev() {
            let freed = self.allocator.free(a);
            debug_assert!(
                freed.is_ok(),
                "allocation from our own allocator: {freed:?}"
            );
        }
    }

    /// Destroys the objects and frees the allocations of a failed creation,
    /// objects first (reverse of creation), and returns `error`.
    fn undo_buffers(&self, p: Pending<vk::Buffer>, error: ResourceError) -> ResourceError {
        for &b in p.handles.iter().rev() {
            // SAFETY: the buffer was created by this call and never handed out,
            // so no GPU work can use it.
            unsafe { self.device.destroy_buffer(b, self.callbacks.get()) };
        }
        self.free_in_reverse(p.allocations.into_iter());
        error
    }

    fn undo_images(&self, p: Pending<vk::Image>, error: ResourceError) -> ResourceError {
        for &img in p.handles.iter().rev() {
            // SAFETY: created by this call, never handed out.
            unsafe { self.device.destroy_image(img, self.callbacks.get()) };
        }
        self.free_in_reverse(p.allocations.into_iter());
        error
    }
}

pub(super) fn dedicated_hint(
    req: &vk::MemoryDedicatedRequirements<'_>,
    target: DedicatedTarget,
) -> Dedicated {
    if req.requires_dedicated_allocation == vk::TRUE {
        Dedicated::Required(Some(target))
    } else if req.prefers_dedicated_allocation == vk::TRUE {
        Dedicated::Preferred(Some(target))
    } else {
        Dedicated::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedicated_hints() {
        let t = DedicatedTarget::Buffer(vk::Buffer::null());
        let mut req = vk::MemoryDedicatedRequirements::default();
        assert_eq!(dedicated_hint(&req, t), Dedicated::No);
        req.prefers_dedicated_allocation = vk::TRUE;
        assert_eq!(dedicated_hint(&req, t), Dedicated::Preferred(Some(t)));
        req.requires_dedicated_allocation = vk::TRUE;
        assert_eq!(dedicated_hint(&req, t), Dedicated::Required(Some(t)));
    }
}
