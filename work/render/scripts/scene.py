# Kiln: build a small animated Cycles scene and save it as a .blend (for tests, the
# benchmark and the README's example). Run as:
#   blender --factory-startup -b --python scene.py -- OUT.blend
import math
import sys

import bpy

out = sys.argv[sys.argv.index("--") + 1]
bpy.ops.wm.read_factory_settings(use_empty=True)
sc = bpy.context.scene
sc.render.engine = "CYCLES"
sc.frame_start, sc.frame_end = 1, 24


def material(name, rgb, rough=0.5, metal=0.0):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    p = m.node_tree.nodes["Principled BSDF"]
    p.inputs["Base Color"].default_value = (*rgb, 1)
    p.inputs["Roughness"].default_value = rough
    p.inputs["Metallic"].default_value = metal
    return m


bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 0, 0))
bpy.context.active_object.data.materials.append(material("floor", (0.6, 0.6, 0.6), 0.8))
bpy.ops.mesh.primitive_uv_sphere_add(radius=1, location=(-2, 0, 1), segments=48, ring_count=24)
ball = bpy.context.active_object
ball.data.materials.append(material("red", (0.8, 0.1, 0.1), 0.3))
ball.keyframe_insert(data_path="location", frame=1)
ball.location = (2, 0, 1)
ball.keyframe_insert(data_path="location", frame=24)
bpy.ops.mesh.primitive_cube_add(size=1.2, location=(0, 2, 0.6))
bpy.context.active_object.data.materials.append(material("gold", (0.9, 0.7, 0.2), 0.2, 1.0))
bpy.ops.mesh.primitive_torus_add(location=(2.5, 1.5, 0.4), major_radius=0.7, minor_radius=0.25)
bpy.context.active_object.data.materials.append(material("blue", (0.1, 0.2, 0.8), 0.4))
bpy.ops.object.light_add(type="AREA", location=(0, -1, 6))
bpy.context.active_object.data.energy = 900
bpy.context.active_object.data.size = 3
bpy.ops.object.camera_add(location=(0, -9, 4.5), rotation=(math.radians(66), 0, 0))
sc.camera = bpy.context.active_object
w = bpy.data.worlds.new("sky")
w.color = (0.05, 0.06, 0.09)
sc.world = w
bpy.ops.wm.save_as_mainfile(filepath=out)
