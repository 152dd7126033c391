"""Plotly figures of scenes, detected centers, reasoning traces and results.

`scenes` (3D scenes and marked images), `traces` (completions as HTML), `charts` (results and
training curves); the public names of all three are re-exported here.

Pure functions: rows (the contract of `workbench/schema.py`), completions, `metrics.json` rows
or a trainer's `log_history` in, a `plotly.graph_objects.Figure` (or HTML) out. Widgets and
notebooks are thin shells over them. Taught in `notebooks/01_build_data.ipynb` (the scene in
3D), `notebooks/05_evaluate.ipynb` (charts) and `notebooks/06_traces_3d.ipynb` (traces beside
predicted centers).

Frames. A row stores centers in the camera frame (OpenCV: +x right, +y down, +z forward,
meters), which is the frame models answer in, so `frame="camera"` is the default: the view
opens from behind the camera with -y up, like the image. `frame="world"` re-expresses
everything with `camera_to_world` (z up, gravity along -z), where "above" and "horizontal"
mean what the questions mean. Axis titles name the frame and the direction of each axis.

Boxes. An object is the upright box `size` = [sx, sy, sz] (sz along world z) turned by `yaw`
about world z and centered at `center`: corner = center_w + Rz(yaw) @ (+-sx/2, +-sy/2, +-sz/2)
in the world frame (as `workbench.world.scenes.SceneObject.corners`), mapped back to the camera frame
when that is the frame shown.

Predicted centers are matched to the ground truth as the detect reward does (SPEC section 4,
`workbench.tasks.rewards.match_centers`): for each ground-truth label, the first predicted text that
contains it.
"""

from workbench.viz.charts import (
    METRIC_KEYS,
    METRICS,
    PANEL_TITLES,
    PANELS,
    STAGE_PANELS,
    STAGES,
    category_bars,
    check_stage,
    dashboard_layout,
    empty_dashboard,
    filter_rows,
    log_series,
    loss_curve,
    metric_table,
    metric_value,
    panel_cell,
    panel_legend,
    panel_of,
    path_comparison,
    reward_dashboard,
    training_dashboard,
)
from workbench.viz.scenes import (
    AUTO_DEPTH_MARGIN,
    AXIS_TITLES,
    FRAMES,
    GT_COLOR,
    PALETTE,
    PRED_COLOR,
    as_centers,
    box_corners,
    camera_to_world,
    center_matches,
    frames_image,
    frustum_lines,
    image_png,
    image_with_marks,
    object_label,
    point_cloud,
    row_depth,
    row_image,
    scene_figure,
    to_frame,
)
from workbench.viz.traces import answers_html, examples_html, question_html, trace_html

__all__ = ['FRAMES', 'AXIS_TITLES', 'AUTO_DEPTH_MARGIN', 'PALETTE', 'PRED_COLOR', 'GT_COLOR', 'row_image', 'image_png', 'row_depth', 'camera_to_world', 'to_frame', 'object_label', 'point_cloud', 'box_corners', 'frames_image', 'frustum_lines', 'as_centers', 'center_matches', 'scene_figure', 'image_with_marks', 'trace_html', 'question_html', 'examples_html', 'answers_html', 'METRICS', 'METRIC_KEYS', 'metric_value', 'filter_rows', 'metric_table', 'category_bars', 'path_comparison', 'PANELS', 'STAGE_PANELS', 'STAGES', 'PANEL_TITLES', 'check_stage', 'panel_of', 'log_series', 'loss_curve', 'dashboard_layout', 'empty_dashboard', 'panel_cell', 'panel_legend', 'reward_dashboard', 'training_dashboard']
