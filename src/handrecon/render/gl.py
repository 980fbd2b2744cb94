"""moderngl rasterizer on a headless EGL context (Mesa llvmpipe on the CPU): the fast path.

One context per process and thread, created lazily on first use and made anew in a forked child,
so every DataLoader worker gets its own (a context is never shared across processes or threads).
No window and no X server are involved.

Fork safety: llvmpipe's rasterizer threads do not survive fork(), and a child that draws on the
driver state it inherited waits for them forever. So unless the user sets LP_NUM_THREADS
themselves, handrecon sets LP_NUM_THREADS=0 (llvmpipe rasterizes in the calling thread) before
the first context is made; with it, a parent may render and then fork workers that render too
(one process per core is the parallelism that pays on a CPU). If a threaded context existed in
a parent, a forked child refuses GL (auto mode falls back to the numpy rasterizer).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from handrecon.render.common import MAX_LIGHTS, Lights, Mesh, RenderResult, composite

_VERTEX_SHADER = """
#version 330
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in float in_inst;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
flat out float v_inst;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    v_color = in_color;
    v_inst = in_inst;
    gl_Position = proj * vec4(in_pos, 1.0);
}
"""

_FRAGMENT_SHADER = f"""
#version 330
uniform vec3 ambient;
uniform int num_lights;
uniform vec3 light_dir[{MAX_LIGHTS}];
uniform vec3 light_color[{MAX_LIGHTS}];
uniform float specular;
uniform float shininess;
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
flat in float v_inst;
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec2 out_depth_inst;
layout(location = 2) out vec4 out_normal;
void main() {{
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;
    vec3 view = normalize(-v_pos);
    vec3 diffuse = vec3(0.0);
    vec3 spec = vec3(0.0);
    for (int i = 0; i < num_lights; ++i) {{
        vec3 l = -light_dir[i];
        diffuse += light_color[i] * max(dot(n, l), 0.0);
        spec += light_color[i] * pow(max(dot(n, normalize(l + view)), 0.0), shininess);
    }}
    out_color = vec4(clamp(v_color * (ambient + diffuse) + specular * spec, 0.0, 1.0), 1.0);
    out_depth_inst = vec2(v_pos.z, v_inst);
    out_normal = vec4(n, 0.0);
}}
"""


def opengl_projection(K: np.ndarray, H: int, W: int, near: float, far: float) -> np.ndarray:
    """(4, 4) matrix taking OpenCV camera points to OpenGL clip space for an (H, W) viewport.

    Window x = u + 0.5 and window y = v + 0.5, where (u, v) is the projection by K: GL fragment
    centres sit at half-integers, so pixel (row r, col c) is shaded at exactly (u, v) = (c, r).
    Window rows follow image rows (no y flip), so the read-back buffer is already top-down; that
    mirrors the screen-space winding, handled by declaring clockwise triangles front-facing.
    """
    fx, s, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
    return np.array([
        [2 * fx / W, 2 * s / W, 2 * (cx + 0.5) / W - 1, 0],
        [0, 2 * fy / H, 2 * (cy + 0.5) / H - 1, 0],
        [0, 0, (far + near) / (far - near), -2 * far * near / (far - near)],
        [0, 0, 1, 0],
    ])


class GLRenderer:
    """Owns one EGL context, the shader program, growing vertex/index buffers and one framebuffer per size."""

    def __init__(self) -> None:
        import moderngl

        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.front_face = "cw"  # with the un-flipped y, camera-facing triangles wind clockwise
        self.prog = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self.vbo = self.ctx.buffer(reserve=1 << 16)
        self.ibo = self.ctx.buffer(reserve=1 << 16)
        self.vao = self.ctx.vertex_array(
            self.prog, [(self.vbo, "3f 3f 3f 1f", "in_pos", "in_normal", "in_color", "in_inst")],
            index_buffer=self.ibo, index_element_size=4,
        )
        self.fbos: dict[tuple[int, int], object] = {}

    def _fbo(self, H: int, W: int):
        if (H, W) not in self.fbos:
            ctx = self.ctx
            self.fbos[(H, W)] = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((W, H), 4), ctx.renderbuffer((W, H), 2, dtype="f4"),
                                   ctx.renderbuffer((W, H), 4, dtype="f4")],
                depth_attachment=ctx.depth_renderbuffer((W, H)),
            )
        return self.fbos[(H, W)]

    @staticmethod
    def _write(buffer, data: bytes) -> None:
        if len(data) > buffer.size:
            buffer.orphan(max(len(data), 2 * buffer.size))
        buffer.write(data)

    def render(self, meshes: list[Mesh], K: np.ndarray, H: int, W: int, lights: Lights, background,
               near: float, far: float, normals: bool = True) -> RenderResult:
        """Rasterize `meshes` into an (H, W) image; see handrecon.render.render for the arguments.
        The normal map is read back only if `normals` (a third of the read-back time)."""
        fbo = self._fbo(H, W)
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        num_indices = sum(3 * len(m.faces) for m in meshes)
        if num_indices:
            verts = np.concatenate([
                np.concatenate([m.vertices, m.normals, m.color, np.full((len(m.vertices), 1), i + 1, np.float32)], 1)
                for i, m in enumerate(meshes)
            ]).astype(np.float32)
            offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
            faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]).astype(np.uint32)
            self._write(self.vbo, verts.tobytes())
            self._write(self.ibo, faces.tobytes())
            prog = self.prog
            prog["proj"].write(opengl_projection(K, H, W, near, far).T.astype(np.float32).tobytes())
            dirs = np.zeros((MAX_LIGHTS, 3), np.float32)
            cols = np.zeros((MAX_LIGHTS, 3), np.float32)
            dirs[: len(lights.directions)] = lights.directions
            cols[: len(lights.colors)] = lights.colors
            prog["ambient"].value = tuple(float(a) for a in lights.ambient)
            prog["num_lights"].value = len(lights.directions)
            prog["light_dir"].write(dirs.tobytes())
            prog["light_color"].write(cols.tobytes())
            prog["specular"].value = float(lights.specular)
            prog["shininess"].value = float(lights.shininess)
            self.vao.render(vertices=num_indices)
        rgb = np.empty((H, W, 3), np.uint8)
        depth_inst = np.empty((H, W, 2), np.float32)
        fbo.read_into(rgb, components=3, attachment=0, alignment=1)
        fbo.read_into(depth_inst, components=2, attachment=1, dtype="f4")
        normal_map = None
        if normals:
            normal_map = np.empty((H, W, 4), np.float32)
            fbo.read_into(normal_map, components=4, attachment=2, dtype="f4")
            normal_map = normal_map[..., :3]
        instance = depth_inst[..., 1].astype(np.int32)  # exact: small integers stored in float32
        depth = np.where(instance > 0, depth_inst[..., 0], np.float32(np.inf))
        return RenderResult(composite(rgb, instance, background), depth, instance, normal_map)


# A context is current in one thread only: each thread keeps its own (thread-local storage, not a
# dict by thread id: ids are reused by new threads, which would find a dead thread's context).
_LOCAL = threading.local()
_FAILURE: dict[int, str] = {}  # by pid
_THREADED: set[int] = set()  # pids whose context runs llvmpipe threads (unsafe to inherit)


def get_gl_renderer() -> GLRenderer:
    """This thread's GLRenderer, created on first use (and anew in a forked child or another thread).

    A parent's context is unusable after fork and is left alone. Raises RuntimeError with the
    reason if no EGL context can be made.
    """
    pid = os.getpid()
    if pid in _FAILURE:
        raise RuntimeError(_FAILURE[pid])
    if getattr(_LOCAL, "pid", None) != pid:
        if _THREADED - {pid}:
            _FAILURE[pid] = (
                "this process was forked from one that already rendered with a multi-threaded llvmpipe "
                f"context (LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS')!r}); its threads do not survive "
                "fork. Leave LP_NUM_THREADS unset or 0, start workers with the 'spawn' method, or set "
                "HANDRECON_RENDERER=soft."
            )
            raise RuntimeError(_FAILURE[pid])
        os.environ.setdefault("LP_NUM_THREADS", "0")
        try:
            _LOCAL.renderer, _LOCAL.pid = GLRenderer(), pid
            if os.environ["LP_NUM_THREADS"] != "0":
                _THREADED.add(pid)
        except Exception as e:  # moderngl raises plain Exception when EGL is missing
            _FAILURE[pid] = (
                f"could not create a headless EGL OpenGL context with moderngl ({type(e).__name__}: {e}). "
                "Install Mesa's EGL (e.g. apt-get install libegl1 libgl1-mesa-dri) or set "
                "HANDRECON_RENDERER=soft to use the numpy rasterizer."
            )
            raise RuntimeError(_FAILURE[pid]) from e
    return _LOCAL.renderer
