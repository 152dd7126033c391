"""Ray-cast rendering: z-depth, masks, boxes, occlusion and visual prompts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from workbench.world import render
from workbench.world.scenes import Scene, SceneObject, look_at, sample_scene

W = 96


def _scene(objects, eye=(0.0, -3.0, 0.25), target=(0.0, 0.0, 0.25)):
    c2w = look_at(np.array(eye), np.array(target))
    f = 80.0
    return Scene(objects, c2w, (f, f, W / 2, W / 2), W, W, "in", "scatter")


def _cube(x=0.0, y=0.0, color="red", side=0.5):
    return SceneObject("cube", "cube", color, (side, side, side), 0.0, (x, y, side / 2))


def test_depth_is_z_depth_not_ray_length():
    view = render.render(_scene([_cube()]))
    # the cube's front face is the plane y = -0.25, 2.75 m ahead of a camera looking along +y
    assert view.depth[W // 2, W // 2] == pytest.approx(2.75, abs=1e-4)
    assert view.instance[W // 2, W // 2] == 0
    # off-center on the same face the ray is longer, but z-depth is the same
    ys, xs = np.nonzero(view.instance == 0)
    far = np.argmax(np.abs(xs - W / 2) + np.abs(ys - W / 2))
    assert view.depth[ys[far], xs[far]] == pytest.approx(2.75, abs=1e-3)
    assert view.depth.dtype == np.float32 and view.depth.shape == (W, W)


def test_masks_boxes_and_usability():
    view = render.render(_scene([_cube(), _cube(y=1.5, color="blue")]))
    assert view.visible_px[0] == np.sum(view.instance == 0) > 0
    x1, y1, x2, y2 = view.bbox_2d[0]
    ys, xs = np.nonzero(view.instance == 0)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
    u, v = view.center_px[0]
    assert x1 <= u <= x2 and y1 <= v <= y2
    assert view.usable[0]
    # the blue cube hides behind the red one: its rays exist but it is (nearly) not seen
    assert view.full_px[1] > 0 and view.visible_px[1] < 0.5 * view.full_px[1]
    assert not view.usable[1]


def test_rendered_scene_shades_objects_in_their_color():
    view = render.render(_scene([_cube(color="green")]))
    pixels = view.rgb[view.instance == 0].astype(int)
    assert np.all(pixels[:, 1] > pixels[:, 0]) and np.all(pixels[:, 1] > pixels[:, 2])


def test_random_scenes_have_usable_objects_with_consistent_views():
    for seed in range(10):
        scene = sample_scene(np.random.default_rng(seed), "in", 112)
        view = render.render(scene)
        centers = scene.camera_centers()
        assert view.usable.sum() >= 1
        for i in np.flatnonzero(view.usable):
            u, v = view.center_px[i]
            assert 0 < view.depth[int(v), int(u)] < centers[i, 2]


def test_mark_colors_are_far_apart():
    for a, b in itertools.combinations(render.MARK_COLORS.values(), 2):
        assert np.linalg.norm(np.subtract(a, b)) > 150, (a, b)


def test_draw_marks_box_and_point():
    view = render.render(_scene([_cube(x=-0.5), _cube(x=0.6, color="white", side=0.3)]))
    regions = [render.region_for(view, 0, "red box"), render.region_for(view, 1, "blue point")]
    assert regions[0]["bbox_2d"] == [int(v) for v in view.bbox_2d[0]]
    pu, pv = regions[1]["point"]
    assert view.instance[pv, pu] == 1, "a point sits on its object"
    x1, y1, x2, y2 = regions[1]["bbox_2d"]
    assert x1 <= pu < x2 and y1 <= pv < y2
    before = view.rgb.copy()
    img = np.asarray(render.draw_marks(view.rgb, regions))
    assert np.array_equal(view.rgb, before), "marks go into a copy"
    red = np.all(img == render.MARK_COLORS["red"], axis=-1)
    blue = np.all(img == render.MARK_COLORS["blue"], axis=-1)
    bx1, by1, bx2, by2 = regions[0]["bbox_2d"]
    assert red[by1 - 1, bx1:bx2].all(), "box outline runs along the top edge"
    assert blue[pv, pu], "the point is filled with its color"
    png = render.png_bytes(render.draw_marks(view.rgb, regions))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == render.png_bytes(render.draw_marks(view.rgb, regions))


@pytest.mark.parametrize("label", ["purple box", "red circle", "red", ""])
def test_bad_region_label(label):
    view = render.render(_scene([_cube()]))
    with pytest.raises(ValueError, match="region label"):
        render.region_for(view, 0, label)
