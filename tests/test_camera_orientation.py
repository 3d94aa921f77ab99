"""Rendered frames are upright: the floor/table lies below the robot in every family's cameras.

Two independent checks per camera: the camera pose in ``model``/``data`` (position, orientation,
fovy) projects the table/floor to larger image rows than the robot, and a segmentation render of
the same camera (geom ids per pixel) finds the table/floor pixels below the robot's pixels. The
frames that ``env.render`` and the ``images.<cam>`` observations return are checked to be that
same raw MuJoCo frame, not a flipped or mirrored copy of it.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import pytest
from dm_control import suite

from sim import make_env
from sim.metaworld_env import UPSIDE_DOWN_CAMERAS

SIZE = 96
TASK = "metaworld/drawer-open"
ORIENTATIONS = {
    "upright": lambda im: im,
    "flipped vertically": lambda im: im[::-1],
    "mirrored": lambda im: im[:, ::-1],
    "rotated 180": lambda im: im[::-1, ::-1],
}
# A floor plane, a box on a post above it and one actuated joint, viewed by the free camera.
FLOOR_XML = """<mujoco>
  <worldbody>
    <light pos="0 0 3"/>
    <geom name="floor" type="plane" size="2 2 0.1" rgba="0.3 0.5 0.3 1"/>
    <body name="box" pos="0 0 0.6">
      <joint name="spin" type="hinge" axis="0 0 1"/>
      <geom name="box" type="box" size="0.15 0.15 0.15" rgba="0.8 0.2 0.2 1"/>
    </body>
  </worldbody>
  <actuator><motor joint="spin"/></actuator>
</mujoco>"""


# -- helpers -----------------------------------------------------------------------------------
def _subtree_geoms(model: mujoco.MjModel, root: str) -> set[int]:
    """Geom ids of a body and all its descendants."""
    root_id = model.body(root).id
    bodies = {root_id}
    for b in range(root_id + 1, model.nbody):  # MuJoCo orders bodies parent-first
        if model.body_parentid[b] in bodies:
            bodies.add(b)
    return {g for g in range(model.ngeom) if model.geom_bodyid[g] in bodies}


def _body_geoms(model: mujoco.MjModel, *bodies: str) -> set[int]:
    ids = {model.body(b).id for b in bodies}
    return {g for g in range(model.ngeom) if model.geom_bodyid[g] in ids}


def _raw_renders(env, camera: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RGB, geom id per pixel, GL camera up vector) straight from mujoco.Renderer, env's scene flags."""
    renderer = mujoco.Renderer(env.model, size, size)
    try:
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        renderer.update_scene(env.data, camera=camera)
        rgb = renderer.render().copy()
        renderer.enable_segmentation_rendering()
        renderer.update_scene(env.data, camera=camera)
        seg = renderer.render()
        geom_ids = np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, seg[..., 0], -1)
        up = np.array(renderer.scene.camera[0].up)
    finally:
        renderer.close()
    return rgb, geom_ids, up


def _mean_row(geom_ids: np.ndarray, geoms: set[int]) -> float:
    rows, _ = np.nonzero(np.isin(geom_ids, list(geoms)))
    assert rows.size >= 10, f"only {rows.size} pixels of the geoms {sorted(geoms)} are visible"
    return float(rows.mean())


def _centroid(geom_ids: np.ndarray, geoms: set[int]) -> np.ndarray:
    rows, cols = np.nonzero(np.isin(geom_ids, list(geoms)))
    return np.array([rows.mean(), cols.mean()])


def _project(env, camera: int, points: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(row, col) pixel of world points seen by a model camera: pose and fovy from model/data.

    MuJoCo cameras look along their local -z with x to the right and y up in the image; image rows
    grow downwards.
    """
    pos, rot = env.data.cam_xpos[camera], env.data.cam_xmat[camera].reshape(3, 3)
    local = (np.atleast_2d(points) - pos) @ rot  # world -> camera frame
    depth = -local[:, 2]
    assert np.all(depth > 0), "point behind the camera"
    focal = 0.5 * size / np.tan(np.radians(env.model.cam_fovy[camera]) / 2)
    rows = 0.5 * size - focal * local[:, 1] / depth
    cols = 0.5 * size + focal * local[:, 0] / depth
    return np.stack([rows, cols], axis=1)


def _orientation(frame: np.ndarray, raw: np.ndarray) -> str:
    """Which transform of the raw MuJoCo frame the env's frame is (the closest one)."""
    errors = {name: np.abs(frame.astype(int) - f(raw).astype(int)).mean() for name, f in ORIENTATIONS.items()}
    return min(errors, key=errors.get)


def _table_top_below(model: mujoco.MjModel, data: mujoco.MjData, point: np.ndarray) -> np.ndarray:
    """The point of the table's top surface straight below ``point``."""
    tops = []
    for g in _body_geoms(model, "tablelink"):
        center, half = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]
        rot = data.geom_xmat[g].reshape(3, 3)
        tops.append(data.geom_xpos[g, 2] + rot[2] @ center + np.abs(rot[2]) @ half)
    return np.array([point[0], point[1], max(tops)])


def _assert_metaworld_camera_upright(env, camera: str) -> np.ndarray:
    """Pose and pixels of one Meta-World camera put the table below the gripper; returns raw RGB."""
    cam_id = env.model.camera(camera).id
    gripper, table = _subtree_geoms(env.model, "right_hand"), _body_geoms(env.model, "tablelink")
    hand = env.data.body("hand").xpos.copy()
    below = _table_top_below(env.model, env.data, hand)
    assert below[2] < hand[2] - 0.05, "the hand should start above the table"

    (hand_px, table_px) = _project(env, cam_id, np.stack([hand, below]))
    assert table_px[0] > hand_px[0] + 2, f"{camera}: the pose projects the table above the gripper"

    rgb, geom_ids, _ = _raw_renders(env, cam_id)
    assert _mean_row(geom_ids, table) > _mean_row(geom_ids, gripper), f"{camera}: table above the gripper"
    # The pose and the pixels agree in rows *and* columns (not flipped, not mirrored): the gripper,
    # and the robot's pedestal where the camera sees it (off to one side in the corner views).
    landmarks = [("gripper", hand, gripper)]
    pedestal = env.data.body("pedestal").xpos
    in_front = (pedestal - env.data.cam_xpos[cam_id]) @ env.data.cam_xmat[cam_id].reshape(3, 3)[:, 2] < 0
    if in_front and np.isin(geom_ids, list(_body_geoms(env.model, "pedestal"))).sum() >= 10:
        landmarks.append(("pedestal", pedestal, _body_geoms(env.model, "pedestal")))
    for name, point, geoms in landmarks:
        seen, expected = _centroid(geom_ids, geoms), _project(env, cam_id, point)[0]
        assert np.all(np.abs(seen - expected) < 0.15 * SIZE), f"{camera}: {name} at {seen}, pose says {expected}"
    if camera.startswith("corner"):
        assert len(landmarks) == 2, f"{camera}: the pedestal should be in view"
    return rgb


# -- Meta-World --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def metaworld_env():
    with make_env(TASK) as env:
        env.reset(seed=0)
        yield env


def test_metaworld_default_camera_render_is_upright(metaworld_env):
    """env.render() (corner2): table below the gripper, and the frame is the raw upright one."""
    env = metaworld_env
    assert env.default_camera == "corner2"
    rgb = _assert_metaworld_camera_upright(env, env.default_camera)
    frame = env.render(None, SIZE, SIZE)
    assert frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8 and frame.flags.c_contiguous
    assert _orientation(frame, rgb) == "upright"


def test_metaworld_every_camera_is_upright(metaworld_env):
    """Every camera of the model shows world-up as image-up (top-down views: no up, skipped)."""
    env = metaworld_env
    names = {env.model.camera(i).name for i in range(env.model.ncam)}
    assert set(UPSIDE_DOWN_CAMERAS) <= names  # the cameras the adapter corrects exist
    side_views = []
    for cam_id in range(env.model.ncam):
        rot = env.data.cam_xmat[cam_id].reshape(3, 3)
        image_up, forward = rot[:, 1], -rot[:, 2]
        if abs(forward[2]) > 0.9:  # topview, gripperPOV: straight down, "up" is a free choice
            continue
        assert image_up[2] > 0, f"camera {env.model.camera(cam_id).name} is upside down"
        side_views.append(env.model.camera(cam_id).name)
    assert {"corner", "corner2", "corner3", "corner4", "behindGripper"} <= set(side_views)
    for name in side_views:
        _assert_metaworld_camera_upright(env, name)


def test_metaworld_pixel_observation_matches_render():
    """images.corner2 (84 px) has the same upright orientation as env.render, before and after a step."""
    with make_env(TASK, cameras=["corner2"], image_size=84) as env:
        obs, _ = env.reset(seed=3)
        for _ in range(2):
            image = obs["images.corner2"]
            assert image.shape == (84, 84, 3) and image.dtype == np.uint8
            np.testing.assert_array_equal(image, env.render("corner2", 84, 84))
            rgb, geom_ids, _ = _raw_renders(env, env.model.camera("corner2").id, 84)
            assert _orientation(image, rgb) == "upright"
            table, gripper = _body_geoms(env.model, "tablelink"), _subtree_geoms(env.model, "right_hand")
            assert _mean_row(geom_ids, table) > _mean_row(geom_ids, gripper)
            obs, *_ = env.step(np.array([0.0, 0.0, 1.0, 0.0]))


# -- dm_control and MJCF -----------------------------------------------------------------------
def test_dmc_default_camera_is_upright():
    """dmc/cartpole-balance camera 0: the floor projects and renders below the cart and pole."""
    with make_env("dmc/cartpole-balance") as env:
        env.reset(seed=0)
        m, d = env.model, env.data
        cam = env.default_camera
        assert cam == 0
        cart = d.body("cart").xpos.copy()
        floor_z = d.geom("floor").xpos[2]
        cart_px, floor_px = _project(env, cam, np.stack([cart, [cart[0], cart[1], floor_z]]))
        assert floor_px[0] > cart_px[0] + 2

        rgb, geom_ids, _ = _raw_renders(env, cam)
        floor, bodies = {m.geom("floor").id}, _body_geoms(m, "cart", "pole_1")
        assert _mean_row(geom_ids, floor) > _mean_row(geom_ids, bodies)
        assert np.all(np.abs(_centroid(geom_ids, _body_geoms(m, "cart")) - cart_px) < 0.15 * SIZE)
        assert _orientation(env.render(None, SIZE, SIZE), rgb) == "upright"


def test_mjcf_free_camera_is_upright(tmp_path):
    """mjcf/<xml> free camera (-1): the floor renders below the box; the GL camera's up is +z."""
    xml = tmp_path / "floor_box.xml"
    xml.write_text(FLOOR_XML)
    with make_env(f"mjcf/{xml}", cameras=["-1"], image_size=SIZE) as env:
        obs, _ = env.reset(seed=0)
        assert env.default_camera == -1
        rgb, geom_ids, up = _raw_renders(env, -1)
        assert up[2] > 0
        m = env.model
        assert _mean_row(geom_ids, {m.geom("floor").id}) > _mean_row(geom_ids, {m.geom("box").id})
        assert _orientation(env.render(None, SIZE, SIZE), rgb) == "upright"
        assert _orientation(obs["images.-1"], rgb) == "upright"


def test_dmc_suite_xml_as_mjcf_keeps_its_orientation():
    """The same cartpole model loaded as mjcf/ renders camera 0 exactly like the dmc adapter."""
    xml = os.path.join(os.path.dirname(suite.__file__), "cartpole.xml")
    with make_env(f"mjcf/{xml}", reset_noise=0.0) as env:
        env.reset(seed=0)
        rgb, geom_ids, _ = _raw_renders(env, 0)
        floor, cart = {env.model.geom("floor").id}, _body_geoms(env.model, "cart")
        assert _mean_row(geom_ids, floor) > _mean_row(geom_ids, cart)
        assert _orientation(env.render(0, SIZE, SIZE), rgb) == "upright"
