//! Accessors: type and bounds checks, decoding (each accessor once, its
//! size charged to the budget first).

use std::rc::Rc;

use gltf::accessor::{DataType, Dimensions};

use super::{view_slice, Loader};
use crate::error::{DemoError, GltfItem};

/// `(bytes from the first element, stride, count)` of an accessor.
type Elements<'a> = (&'a [u8], usize, usize);

fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

impl<'a> Loader<'a> {
    /// An accessor's elements as byte slices, bounds-checked: `(data from
    /// the first element, stride, count)`; `None` when it has no buffer
    /// view (all zeros, per the spec).
    fn accessor_bytes(
        &self,
        accessor: &gltf::Accessor<'_>,
        role: &'static str,
        allowed: &[(DataType, bool)],
        dims: Dimensions,
    ) -> Result<Option<Elements<'a>>, DemoError> {
        let bad = |reason: String| DemoError::BadAccessor {
            path: self.path.to_owned(),
            accessor: accessor.index(),
            role,
            reason,
        };
        if accessor.sparse().is_some() {
            return Err(DemoError::SparseAccessor {
                path: self.path.to_owned(),
                accessor: accessor.index(),
            });
        }
        let (data_type, normalized) = (accessor.data_type(), accessor.normalized());
        if accessor.dimensions() != dims || !allowed.contains(&(data_type, normalized)) {
            return Err(bad(format!(
                "is {:?} of {:?}{}; expected {dims:?} of {}",
                accessor.dimensions(),
                data_type,
                if normalized { " (normalized)" } else { "" },
                allowed
                    .iter()
                    .map(|(t, n)| format!("{t:?}{}", if *n { " (normalized)" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        let count = accessor.count();
        let Some(view) = accessor.view() else {
            return Ok(None);
        };
        let elem = data_type.size() * dims.multiplicity();
        let stride = view.stride().unwrap_or(elem);
        if stride < elem {
            return Err(bad(format!(
                "byteStride {stride} is smaller than its {elem}-byte elements"
            )));
        }
        let slice = view_slice(&self.buffers, &view).ok_or_else(|| {
            bad(format!(
                "buffer view {} (offset {}, length {}) is outside its buffer",
                view.index(),
                view.offset(),
                view.length()
            ))
        })?;
        if count == 0 {
            return Ok(Some((&[], stride, 0)));
        }
        let needed = (count - 1)
            .checked_mul(stride)
            .and_then(|n| n.checked_add(elem))
            .and_then(|n| n.checked_add(accessor.offset()));
        match needed {
            Some(end) if end <= slice.len() => {
                Ok(Some((&slice[accessor.offset()..end], stride, count)))
            }
            _ => Err(bad(format!(
                "{count} elements at offset {} with stride {stride} do not fit buffer view {} ({} bytes)",
                accessor.offset(),
                view.index(),
                slice.len()
            ))),
        }
    }

    /// Checks an accessor's type and bounds, then charges its decoded size.
    fn decode_start(
        &mut self,
        accessor: &gltf::Accessor<'_>,
        role: &'static str,
        allowed: &[(DataType, bool)],
        dims: Dimensions,
        element_size: usize,
    ) -> Result<Option<Elements<'a>>, DemoError> {
        let elements = self.accessor_bytes(accessor, role, allowed, dims)?;
        let bytes = (accessor.count() as u64).saturating_mul(element_size as u64);
        self.budget
            .charge(GltfItem::Accessor(accessor.index()), bytes)?;
        Ok(elements)
    }

    pub(super) fn read_vec3(
        &mut self,
        accessor: &gltf::Accessor<'_>,
        role: &'static str,
    ) -> Result<Rc<Vec<[f32; 3]>>, DemoError> {
        if let Some(v) = self.vec3.get(&accessor.index()) {
            return Ok(v.clone());
        }
        let allowed = [(DataType::F32, false)];
        let elements = self.decode_start(accessor, role, &allowed, Dimensions::Vec3, 12)?;
        let values = match elements {
            None => vec![[0.0; 3]; accessor.count()],
            Some((data, stride, count)) => (0..count)
                .map(|i| {
                    let o = i * stride;
                    [f32_at(data, o), f32_at(data, o + 4), f32_at(data, o + 8)]
                })
                .collect(),
        };
        let values = Rc::new(values);
        self.vec3.insert(accessor.index(), values.clone());
        Ok(values)
    }

    pub(super) fn read_uvs(
        &mut self,
        accessor: &gltf::Accessor<'_>,
    ) -> Result<Rc<Vec<[f32; 2]>>, DemoError> {
        if let Some(v) = self.vec2.get(&accessor.index()) {
            return Ok(v.clone());
        }
        let allowed = [
            (DataType::F32, false),
            (DataType::U8, true),
            (DataType::U16, true),
        ];
        let elements = self.decode_start(accessor, "TEXCOORD", &allowed, Dimensions::Vec2, 8)?;
        let dt = accessor.data_type();
        let values = match elements {
            None => vec![[0.0; 2]; accessor.count()],
            Some((data, stride, count)) => (0..count)
                .map(|i| {
                    let o = i * stride;
                    match dt {
                        DataType::U8 => {
                            [f32::from(data[o]) / 255.0, f32::from(data[o + 1]) / 255.0]
                        }
                        DataType::U16 => [
                            f32::from(u16::from_le_bytes([data[o], data[o + 1]])) / 65535.0,
                            f32::from(u16::from_le_bytes([data[o + 2], data[o + 3]])) / 65535.0,
                        ],
                        _ => [f32_at(data, o), f32_at(data, o + 4)],
                    }
                })
                .collect(),
        };
        let values = Rc::new(values);
        self.vec2.insert(accessor.index(), values.clone());
        Ok(values)
    }

    pub(super) fn read_indices(
        &mut self,
        accessor: &gltf::Accessor<'_>,
    ) -> Result<Rc<Vec<u32>>, DemoError> {
        if let Some(v) = self.indices.get(&accessor.index()) {
            return Ok(v.clone());
        }
        let allowed = [
            (DataType::U8, false),
            (DataType::U16, false),
            (DataType::U32, false),
        ];
        let elements = self.decode_start(accessor, "indices", &allowed, Dimensions::Scalar, 4)?;
        let dt = accessor.data_type();
        let values = match elements {
            None => vec![0; accessor.count()],
            Some((data, stride, count)) => (0..count)
                .map(|i| {
                    let o = i * stride;
                    match dt {
                        DataType::U8 => u32::from(data[o]),
                        DataType::U16 => u32::from(u16::from_le_bytes([data[o], data[o + 1]])),
                        _ => u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]),
                    }
                })
                .collect(),
        };
        let values = Rc::new(values);
        self.indices.insert(accessor.index(), values.clone());
        Ok(values)
    }
}
