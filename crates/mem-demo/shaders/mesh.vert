#version 450
// Vertex shader of mem-demo's headless frame: positions through the
// per-draw MVP, normals through the per-draw normal matrix (the inverse
// transpose of the model matrix, computed on the CPU), uvs passed through.
// Vertex layout: mem_demo::scene::Vertex (32 bytes: position, normal, uv).

layout(location = 0) in vec3 a_position;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec2 a_uv;

// 128 bytes: the minimum maxPushConstantsSize every Vulkan device supports.
layout(push_constant) uniform Push {
    mat4 mvp;
    mat4 normal_matrix;
} pc;

layout(location = 0) out vec3 v_normal;
layout(location = 1) out vec2 v_uv;

void main() {
    gl_Position = pc.mvp * vec4(a_position, 1.0);
    v_normal = (pc.normal_matrix * vec4(a_normal, 0.0)).xyz;
    v_uv = a_uv;
}
