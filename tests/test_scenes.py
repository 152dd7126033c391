"""Procedural scenes: physical validity, camera conventions, domains, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.world import scenes
from workbench.world.scenes import (
    HELD_OUT_COLORS,
    HELD_OUT_SHAPES,
    SceneObject,
    camera_from_world,
    camera_pitch,
    look_at,
    project,
    sample_scene,
    world_from_camera,
)


@pytest.mark.parametrize("domain", ["in", "ood"])
def test_scenes_are_physically_valid(domain):
    for seed in range(40):
        scene = sample_scene(np.random.default_rng(seed), domain, 112)
        assert 3 <= len(scene.objects) <= 8
        scenes.check_no_interpenetration(scene)
        for obj in scene.objects:
            assert all(s > 0 for s in obj.size)
            # every object box lies in front of the camera and inside the frame
            uv = project(camera_from_world(obj.corners(), scene.camera_to_world), scene.intrinsics)
            assert np.all(uv >= 0) and np.all(uv <= 112), f"seed {seed}: {obj.category} leaves the frame"


def test_interpenetration_check_can_fail():
    a = SceneObject("cube", "cube", "red", (0.4, 0.4, 0.4), 0.0, (0.0, 0.0, 0.2))
    b = SceneObject("cube", "cube", "blue", (0.4, 0.4, 0.4), 0.0, (0.3, 0.0, 0.2))
    scene = sample_scene(np.random.default_rng(0))
    scene.objects = [a, b]
    with pytest.raises(AssertionError, match="overlap"):
        scenes.check_no_interpenetration(scene)


def test_some_objects_are_stacked():
    stacked = 0
    for seed in range(40):
        scene = sample_scene(np.random.default_rng(seed), "in", 112, stack_probability=0.6)
        stacked += sum(o.support >= 0 for o in scene.objects)
    assert stacked >= 5


def test_same_seed_same_scene_other_seed_other_scene():
    a = sample_scene(np.random.default_rng(7))
    b = sample_scene(np.random.default_rng(7))
    c = sample_scene(np.random.default_rng(8))
    assert a.objects == b.objects and np.array_equal(a.camera_to_world, b.camera_to_world)
    assert a.objects != c.objects


def test_domains_hold_out_shapes_and_colors():
    in_shapes, in_colors, ood_shapes, ood_colors = set(), set(), set(), set()
    for seed in range(30):
        for domain, shapes, colors in (("in", in_shapes, in_colors), ("ood", ood_shapes, ood_colors)):
            scene = sample_scene(np.random.default_rng(seed), domain)
            shapes |= {o.category for o in scene.objects}
            colors |= {o.color for o in scene.objects}
    assert not in_shapes & set(HELD_OUT_SHAPES) and not in_colors & set(HELD_OUT_COLORS)
    assert ood_shapes & set(HELD_OUT_SHAPES) and ood_colors & set(HELD_OUT_COLORS)
    with pytest.raises(ValueError, match="domain"):
        sample_scene(np.random.default_rng(0), "mars")


def test_camera_frame_conventions():
    eye, target = np.array([0.0, -3.0, 1.5]), np.array([0.0, 0.0, 0.3])
    m = look_at(eye, target)
    r = m[:3, :3]
    assert np.allclose(r.T @ r, np.eye(3)) and math.isclose(np.linalg.det(r), 1.0)
    assert math.isclose(m[2, 0], 0.0, abs_tol=1e-12), "zero roll: camera x is horizontal"
    assert np.allclose(r[:, 0], [1, 0, 0]), "looking along +y with z up, +x is to the right"
    assert r[2, 1] < 0, "camera +y points down"
    # the target sits on the optical axis, in front of the camera
    c = camera_from_world(target, m)
    assert np.allclose(c[:2], 0) and c[2] > 0
    assert np.allclose(world_from_camera(c, m), target)
    assert camera_pitch(m) == pytest.approx(math.atan2(1.2, 3.0))
    # a point to the right in the world projects right of the image center
    intr = (100.0, 100.0, 56.0, 56.0)
    u = project(camera_from_world(target + [0.5, 0, 0], m), intr)[0]
    assert u > 56.0


def test_world_centers_roundtrip():
    scene = sample_scene(np.random.default_rng(3))
    row = {
        "objects": [{"center": c.tolist()} for c in scene.camera_centers()],
        "camera_to_world": scene.camera_to_world.tolist(),
    }
    assert np.allclose(scenes.world_centers(row), [o.position for o in scene.objects])
