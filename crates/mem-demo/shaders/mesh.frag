#version 450
// Fragment shader of mem-demo's headless frame: the texture's colour lit by
// one directional light (the sun) plus a sky/ground hemisphere ambient term.
//
// The texture and its sampler are separate bindings (0 and 1) because naga's
// GLSL front end has no combined `sampler2D` uniforms.

layout(location = 0) in vec3 v_normal;
layout(location = 1) in vec2 v_uv;

layout(set = 0, binding = 0) uniform texture2D u_texture;
layout(set = 0, binding = 1) uniform sampler u_sampler;

layout(location = 0) out vec4 o_color;

void main() {
    vec4 base = texture(sampler2D(u_texture, u_sampler), v_uv);
    // glTF meshes without normals get generated ones, but a degenerate
    // triangle still yields a zero normal: light it as if facing up.
    vec3 n = vec3(0.0, 1.0, 0.0);
    float len = length(v_normal);
    if (len > 0.000001) {
        n = v_normal / len;
    }
    vec3 sun = normalize(vec3(0.35, 0.85, 0.4));
    float diffuse = max(dot(n, sun), 0.0);
    vec3 sky = vec3(0.55, 0.62, 0.75);
    vec3 ground = vec3(0.28, 0.24, 0.2);
    vec3 ambient = mix(ground, sky, n.y * 0.5 + 0.5);
    vec3 light = ambient * 0.45 + vec3(1.0, 0.96, 0.9) * diffuse * 0.8;
    o_color = vec4(base.rgb * light, 1.0);
}
