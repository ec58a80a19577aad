//! A heap buffer whose address is aligned for O_DIRECT.

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Zero-initialised bytes at an address aligned to `align` (a power of two). O_DIRECT needs the buffer
/// address, the file offset and the length to be multiples of the device's logical block size; `Vec<u8>`
/// only guarantees alignment 1, hence this type.
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl AlignedBuf {
    /// `len` > 0 bytes aligned to `align`; `None` when the layout is invalid (align not a power of two,
    /// overflow) or the allocation fails.
    pub(crate) fn new(len: usize, align: usize) -> Option<AlignedBuf> {
        if len == 0 {
            return None;
        }
        let layout = Layout::from_size_align(len, align).ok()?;
        // SAFETY: the layout has a non-zero size (checked above); the pointer is checked for null and
        // released in Drop with the same layout.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        NonNull::new(raw).map(|ptr| AlignedBuf { ptr, layout })
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised (zeroed) bytes owned by `self`, alive as long
        // as the borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and the `&mut self` borrow makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed(self.layout)` and is freed exactly once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::AlignedBuf;

    #[test]
    fn buffers_are_aligned_zeroed_and_sized() {
        for align in [512usize, 4096, 65536] {
            for len in [1usize, 4096, 1 << 20] {
                let mut b = AlignedBuf::new(len, align).unwrap();
                assert_eq!(b.as_ptr() as usize % align, 0);
                assert_eq!(b.len(), len);
                assert!(b.iter().all(|&x| x == 0));
                b[len - 1] = 7;
                assert_eq!(b[len - 1], 7);
            }
        }
        assert!(AlignedBuf::new(0, 4096).is_none());
        assert!(AlignedBuf::new(10, 3).is_none());
    }
}
