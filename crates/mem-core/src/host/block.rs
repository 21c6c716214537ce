//! The block behind each pointer handed to Vulkan (see "Layout of an
//! allocation" in the [module docs](super)): `max(alignment, 16)` bytes of
//! prefix whose last 16 hold a [`Header`], then the caller's bytes. Every
//! function returns `None` (or null) on overflow or allocator failure and
//! never panics: these run inside Vulkan's callbacks.

use std::alloc::Layout;
use std::ptr::{self, NonNull};

/// Bookkeeping stored right before each pointer handed to Vulkan.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Header {
    /// Size requested by Vulkan, in bytes.
    pub(super) size: usize,
    /// log2 of the requested alignment.
    pub(super) align_log2: u32,
    /// Counter bucket of the scope it was (re)allocated in.
    pub(super) bucket: u32,
}

/// Space reserved for the header: a power of two (16 on 64-bit and 32-bit
/// targets), so the header stays aligned below any power-of-two alignment.
pub(super) const HEADER_SPACE: usize = std::mem::size_of::<Header>().next_power_of_two();

/// Where the user pointer sits from the start of the block, and the block's
/// alignment: `max(alignment, HEADER_SPACE)`, both powers of two.
pub(super) fn prefix(align: usize) -> usize {
    align.max(HEADER_SPACE)
}

/// The layout of a block holding `size` bytes at alignment `align`, or
/// `None` if it overflows. `align` must be a power of two.
pub(super) fn block_layout(size: usize, align: usize) -> Option<Layout> {
    let prefix = prefix(align);
    Layout::from_size_align(prefix.checked_add(size)?, prefix).ok()
}

/// Normalizes Vulkan's alignment argument: 0 means 1; other values must be
/// powers of two.
pub(super) fn checked_align(alignment: usize) -> Option<usize> {
    match alignment {
        0 => Some(1),
        a if a.is_power_of_two() => Some(a),
        _ => None,
    }
}

/// Allocates a block for `size` bytes at `align` and writes its header;
/// returns the user pointer, or `None` when the layout overflows or the
/// global allocator fails.
pub(super) fn raw_allocate(size: usize, align: usize, bucket: usize) -> Option<NonNull<u8>> {
    let layout = block_layout(size, align)?;
    // SAFETY: the layout's size is at least HEADER_SPACE > 0.
    let base = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
    // SAFETY: the block holds prefix(align) + size bytes, so user (at the
    // prefix) and the header (HEADER_SPACE bytes before it) are inside it;
    // both offsets are multiples of HEADER_SPACE from a base aligned to at
    // least HEADER_SPACE >= align_of::<Header>().
    unsafe { Some(write_header(base, size, align, bucket)) }
}

/// Writes the header of the block at `base` and returns its user pointer.
///
/// # Safety
///
/// - `base` is the start of a live block with `block_layout(size, align)`.
pub(super) unsafe fn write_header(
    base: NonNull<u8>,
    size: usize,
    align: usize,
    bucket: usize,
) -> NonNull<u8> {
    // SAFETY: the prefix lies within the block (caller's contract).
    let user = unsafe { base.add(prefix(align)) };
    let header = Header {
        size,
        align_log2: align.trailing_zeros(),
        bucket: bucket as u32,
    };
    // SAFETY: the header slot is inside the block's prefix and aligned (see raw_allocate).
    unsafe { user.sub(HEADER_SPACE).cast::<Header>().write(header) };
    user
}

/// Reads the header of a user pointer and returns it with the block's base
/// and layout.
///
/// # Safety
///
/// - `user` was returned by [`raw_allocate`] or [`raw_reallocate`] and not
///   freed since.
pub(super) unsafe fn read_block(user: NonNull<u8>) -> (Header, NonNull<u8>, Layout) {
    // SAFETY: the header slot precedes every user pointer (caller's contract).
    let header = unsafe { user.sub(HEADER_SPACE).cast::<Header>().read() };
    let align = 1usize << header.align_log2;
    // SAFETY: the prefix precedes the user pointer in the same block.
    let base = unsafe { user.sub(prefix(align)) };
    // SAFETY: this exact layout was validated when the block was made.
    let layout =
        unsafe { Layout::from_size_align_unchecked(prefix(align) + header.size, prefix(align)) };
    (header, base, layout)
}

/// Frees the block of `user`; returns its header.
///
/// # Safety
///
/// - as [`read_block`]; `user` is not used afterwards.
pub(super) unsafe fn raw_free(user: NonNull<u8>) -> Header {
    // SAFETY: caller's contract.
    let (header, base, layout) = unsafe { read_block(user) };
    // SAFETY: base/layout are the block's own allocation.
    unsafe { std::alloc::dealloc(base.as_ptr(), layout) };
    header
}

/// Resizes the block of `user` to `size` bytes at `align`, keeping
/// `min(old, new)` bytes; returns the new user pointer and the old header,
/// or `None` with the original block untouched.
///
/// # Safety
///
/// - as [`read_block`]; on success `user` is not used afterwards.
pub(super) unsafe fn raw_reallocate(
    user: NonNull<u8>,
    size: usize,
    align: usize,
    bucket: usize,
) -> Option<(NonNull<u8>, Header)> {
    // SAFETY: caller's contract.
    let (old, base, old_layout) = unsafe { read_block(user) };
    let new_layout = block_layout(size, align)?;
    if new_layout.align() == old_layout.align() {
        // Same prefix: std::alloc::realloc keeps header and data in place
        // relative to the base, and leaves the block intact on failure.
        // SAFETY: base/old_layout describe the live block; the new size is
        // non-zero and fits isize (checked by block_layout).
        let new_base = NonNull::new(unsafe {
            std::alloc::realloc(base.as_ptr(), old_layout, new_layout.size())
        })?;
        // SAFETY: new_base is a live block with block_layout(size, align)
        // (same alignment, new size).
        let new_user = unsafe { write_header(new_base, size, align, bucket) };
        return Some((new_user, old));
    }
    // Different alignment: new block, copy, free the old one.
    let new_user = raw_allocate(size, align, bucket)?;
    // SAFETY: both blocks are live and distinct; each holds at least
    // min(old.size, size) bytes at its user pointer.
    unsafe { ptr::copy_nonoverlapping(user.as_ptr(), new_user.as_ptr(), old.size.min(size)) };
    // SAFETY: base/old_layout describe the old block, not used afterwards.
    unsafe { std::alloc::dealloc(base.as_ptr(), old_layout) };
    Some((new_user, old))
}
