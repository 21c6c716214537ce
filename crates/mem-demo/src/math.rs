//! The little linear algebra the demo needs: column-major 4x4 matrices as
//! glTF stores them (`m[column][row]`), Vulkan clip space (Y down, depth 0..1).

pub(crate) type Mat4 = [[f32; 4]; 4];
pub(crate) type Vec3 = [f32; 3];

pub(crate) const IDENTITY: Mat4 = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// `a * b` (apply `b` first).
pub(crate) fn mul(a: &Mat4, b: &Mat4) -> Mat4 {
    let mut out = [[0.0; 4]; 4];
    for (c, col) in out.iter_mut().enumerate() {
        for (r, value) in col.iter_mut().enumerate() {
            *value = (0..4).map(|k| a[k][r] * b[c][k]).sum();
        }
    }
    out
}

pub(crate) fn transform_point(m: &Mat4, p: Vec3) -> Vec3 {
    let mut out = [0.0; 3];
    for (r, value) in out.iter_mut().enumerate() {
        *value = m[0][r] * p[0] + m[1][r] * p[1] + m[2][r] * p[2] + m[3][r];
    }
    out
}

pub(crate) fn translation(t: Vec3) -> Mat4 {
    let mut m = IDENTITY;
    m[3] = [t[0], t[1], t[2], 1.0];
    m
}

#[cfg(test)]
pub(crate) fn scaling(s: Vec3) -> Mat4 {
    let mut m = IDENTITY;
    m[0][0] = s[0];
    m[1][1] = s[1];
    m[2][2] = s[2];
    m
}

pub(crate) fn rotation_y(angle: f32) -> Mat4 {
    let (s, c) = angle.sin_cos();
    let mut m = IDENTITY;
    m[0] = [c, 0.0, -s, 0.0];
    m[2] = [s, 0.0, c, 0.0];
    m
}

pub(crate) fn rotation_x(angle: f32) -> Mat4 {
    let (s, c) = angle.sin_cos();
    let mut m = IDENTITY;
    m[1] = [0.0, c, s, 0.0];
    m[2] = [0.0, -s, c, 0.0];
    m
}

pub(crate) fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub(crate) fn scale(a: Vec3, s: f32) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub(crate) fn dot(a: Vec3, b: Vec3) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// `v / |v|`, or `fallback` for a (near) zero vector.
pub(crate) fn normalize_or(v: Vec3, fallback: Vec3) -> Vec3 {
    let len = dot(v, v).sqrt();
    if len > 1e-20 && len.is_finite() {
        scale(v, 1.0 / len)
    } else {
        fallback
    }
}

/// A right-handed view matrix looking from `eye` at `target`.
pub(crate) fn look_at(eye: Vec3, target: Vec3, up: Vec3) -> Mat4 {
    let f = normalize_or(sub(target, eye), [0.0, 0.0, -1.0]);
    let s = normalize_or(cross(f, up), [1.0, 0.0, 0.0]);
    let u = cross(s, f);
    [
        [s[0], u[0], -f[0], 0.0],
        [s[1], u[1], -f[1], 0.0],
        [s[2], u[2], -f[2], 0.0],
        [-dot(s, eye), -dot(u, eye), dot(f, eye), 1.0],
    ]
}

/// A right-handed perspective projection into Vulkan's clip space: Y points
/// down (hence the negative `[1][1]`), depth maps `near..far` to `0..1`.
pub(crate) fn perspective(fov_y: f32, aspect: f32, near: f32, far: f32) -> Mat4 {
    let f = 1.0 / (fov_y * 0.5).tan();
    let range = far / (near - far);
    [
        [f / aspect, 0.0, 0.0, 0.0],
        [0.0, -f, 0.0, 0.0],
        [0.0, 0.0, range, -1.0],
        [0.0, 0.0, near * range, 0.0],
    ]
}

/// The inverse transpose of `m`'s upper 3x3 (to transform normals), as a
/// 4x4 with no translation; the identity when `m` is singular.
pub(crate) fn normal_matrix(m: &Mat4) -> Mat4 {
    // Cofactor matrix of the 3x3 = determinant * inverse transpose; the
    // scale does not matter (the shader normalizes) but the sign does.
    let a = |c: usize, r: usize| m[c][r];
    let cof = |c: usize, r: usize| {
        let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        a(c1, r1) * a(c2, r2) - a(c2, r1) * a(c1, r2)
    };
    let det = a(0, 0) * cof(0, 0) + a(1, 0) * cof(1, 0) + a(2, 0) * cof(2, 0);
    if det.abs() < 1e-30 || !det.is_finite() {
        return IDENTITY;
    }
    let inv = 1.0 / det;
    let mut out = IDENTITY;
    for (c, col) in out.iter_mut().take(3).enumerate() {
        for (r, value) in col.iter_mut().take(3).enumerate() {
            *value = cof(c, r) * inv;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Mat4, b: &Mat4) -> bool {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn normal_matrix_of_rotation_is_rotation() {
        let r = mul(&rotation_y(0.7), &rotation_x(-0.3));
        assert!(close(&normal_matrix(&r), &r));
    }

    #[test]
    fn normal_matrix_of_scale_is_inverse_scale() {
        let n = normal_matrix(&scaling([2.0, 4.0, 0.5]));
        assert!(close(&n, &scaling([0.5, 0.25, 2.0])));
    }

    #[test]
    fn projection_maps_near_far_to_0_1() {
        let p = perspective(1.0, 1.0, 0.5, 10.0);
        let clip = |z: f32| {
            let v = [0.0, 0.0, z, 1.0];
            let w: f32 = (0..4).map(|k| p[k][3] * v[k]).sum();
            let d: f32 = (0..4).map(|k| p[k][2] * v[k]).sum();
            d / w
        };
        assert!((clip(-0.5) - 0.0).abs() < 1e-5);
        assert!((clip(-10.0) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn look_at_puts_target_on_negative_z() {
        let v = look_at([3.0, 4.0, 5.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
        let p = transform_point(&v, [0.0, 0.0, 0.0]);
        assert!(p[0].abs() < 1e-5 && p[1].abs() < 1e-5);
        assert!((p[2] + (50.0f32).sqrt()).abs() < 1e-4);
    }
}
