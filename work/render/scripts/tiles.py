# Kiln: render tiles of a .blend scene with Cycles on the CPU, one border render per tile.
# Run as: blender --factory-startup -b SCENE.blend --python tiles.py -- JSON
# JSON: {"samples", "seed", "width", "height", "threads",
#        "tiles": [{"frame", "x0", "y0", "x1", "y1", "out"}]}  (pixel rect, y = 0 at the top)
import json
import sys

import bpy

args = json.loads(sys.argv[sys.argv.index("--") + 1])
sc = bpy.context.scene
sc.render.engine = "CYCLES"
sc.cycles.device = "CPU"
sc.cycles.samples = args["samples"]
sc.cycles.seed = args["seed"]
sc.cycles.use_animated_seed = False
# Samples mean samples: no adaptive stopping, no denoiser (both would make a tile depend
# on more than its own pixels' samples).
sc.cycles.use_adaptive_sampling = False
sc.cycles.use_denoising = False
sc.render.resolution_x = args["width"]
sc.render.resolution_y = args["height"]
sc.render.resolution_percentage = 100
sc.render.use_stamp = False
if args["threads"] > 0:
    sc.render.threads_mode = "FIXED"
    sc.render.threads = args["threads"]
sc.render.image_settings.file_format = "PNG"
sc.render.image_settings.color_mode = "RGB"
sc.render.image_settings.color_depth = "16"
sc.render.use_border = True
sc.render.use_crop_to_border = True
W, H = args["width"], args["height"]
for t in args["tiles"]:
    if sc.frame_current != t["frame"]:
        sc.frame_set(t["frame"])
    # Blender truncates border*size to whole pixels: aim at pixel centres so float
    # rounding can never move an edge by one.
    sc.render.border_min_x = (t["x0"] + 0.5) / W
    sc.render.border_max_x = min(1.0, (t["x1"] + 0.5) / W)
    sc.render.border_min_y = (H - t["y1"] + 0.5) / H
    sc.render.border_max_y = min(1.0, (H - t["y0"] + 0.5) / H)
    sc.render.filepath = t["out"]
    bpy.ops.render.render(write_still=True)
    print("KILN_TILE_DONE", t["out"], flush=True)
