"""RGBPoseConv3D: an RGB and a pose pathway exchanging features twice (SPEC §4.6).

The RGB pathway (8 frames) receives pose features through strided temporal convs
(``rgb_path.layer{2,3}_lateral``); the pose pathway (32 frames) receives RGB features through
transposed convs (``pose_path.layer{1,2}_lateral``). Lateral features are computed from the
features *before* concatenation, and appended after the pathway's own channels.
"""
from __future__ import annotations

import torch
from torch import nn

from posec3d.errors import ConfigError
from posec3d.models.slowonly import ResNet3dPathway
from posec3d.registry import MODELS

RGB_DEFAULTS = dict(num_stages=4, lateral=True, lateral_infl=1, lateral_activate=(0, 0, 1, 1), fusion_kernel=7,
                    base_channels=64, conv1_kernel=(1, 7, 7), inflate=(0, 0, 1, 1))
POSE_DEFAULTS = dict(num_stages=3, stage_blocks=(4, 6, 3), lateral=True, lateral_inv=True, lateral_infl=16,
                     lateral_activate=(0, 1, 1), fusion_kernel=7, in_channels=17, base_channels=32, out_indices=(2,),
                     conv1_kernel=(1, 7, 7), conv1_stride_s=1, conv1_stride_t=1, pool1_stride_s=1,
                     pool1_stride_t=1, inflate=(0, 1, 1), spatial_strides=(2, 2, 2), temporal_strides=(1, 1, 1))


@MODELS.register()
class RGBPoseConv3D(nn.Module):
    """``forward(imgs (N,3,T,H,W), heatmap_imgs (N,17,4T,H/4,W/4)) → (rgb_feat, pose_feat)``."""

    def __init__(self, pretrained: str | None = None, speed_ratio: int = 4, channel_ratio: int = 4,
                 rgb_detach: bool = False, pose_detach: bool = False, rgb_drop_path: float = 0.0,
                 pose_drop_path: float = 0.0, rgb_pathway: dict | None = None, pose_pathway: dict | None = None,
                 init_cfg=None):
        super().__init__()
        if pretrained is not None:
            raise ConfigError(f"RGBPoseConv3D: pretrained={pretrained!r} is not supported; use load_from")
        rgb_cfg = {**RGB_DEFAULTS, **(rgb_pathway or {})}
        pose_cfg = {**POSE_DEFAULTS, **(pose_pathway or {})}
        for cfg in (rgb_cfg, pose_cfg):
            if cfg.get("lateral"):
                cfg["speed_ratio"], cfg["channel_ratio"] = speed_ratio, channel_ratio
            # The pathways are SlowOnly-style ResNets: no pool2 unless asked.
            cfg.setdefault("with_pool2", False)
        try:
            self.rgb_path = ResNet3dPathway(**rgb_cfg)
            self.pose_path = ResNet3dPathway(**pose_cfg)
        except TypeError as e:
            raise ConfigError(f"RGBPoseConv3D: bad pathway config: {e}") from e
        if self.rgb_path.num_stages != 4 or self.pose_path.num_stages != 3:
            raise ConfigError("RGBPoseConv3D: the rgb pathway needs 4 stages and the pose pathway 3")
        self.rgb_detach, self.pose_detach = rgb_detach, pose_detach
        self.rgb_drop_path, self.pose_drop_path = rgb_drop_path, pose_drop_path
        self.feat_dims = (self.rgb_path.feat_dim, self.pose_path.feat_dim)

    def _exchange(self, x_rgb, x_pose, rgb_lateral: str, pose_lateral: str, drop_rgb: bool, drop_pose: bool):
        """Concatenate lateral(pose) onto rgb and lateral(rgb) onto pose, both from the inputs as given."""
        rgb_extra = pose_extra = None
        if hasattr(self.rgb_path, rgb_lateral):
            rgb_extra = getattr(self.rgb_path, rgb_lateral)(x_pose.detach() if self.rgb_detach else x_pose)
            if drop_rgb:
                rgb_extra = torch.zeros_like(rgb_extra)
        if hasattr(self.pose_path, pose_lateral):
            pose_extra = getattr(self.pose_path, pose_lateral)(x_rgb.detach() if self.pose_detach else x_rgb)
            if drop_pose:
                pose_extra = torch.zeros_like(pose_extra)
        if rgb_extra is not None:
            x_rgb = torch.cat((x_rgb, rgb_extra), dim=1)
        if pose_extra is not None:
            x_pose = torch.cat((x_pose, pose_extra), dim=1)
        return x_rgb, x_pose

    def forward(self, imgs: torch.Tensor, heatmap_imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        drop_rgb = drop_pose = False
        if self.training:
            # Two draws every training step, even at probability 0, as the reference does: this keeps
            # the torch RNG stream (and so dropout masks) identical to it.
            drop_rgb = bool(torch.rand(1) < self.rgb_drop_path)
            drop_pose = bool(torch.rand(1) < self.pose_drop_path)
        rgb, pose = self.rgb_path, self.pose_path
        x_rgb = rgb.layer2(rgb.layer1(rgb.stem(imgs)))
        x_pose = pose.layer1(pose.stem(heatmap_imgs))
        x_rgb, x_pose = self._exchange(x_rgb, x_pose, "layer2_lateral", "layer1_lateral", drop_rgb, drop_pose)
        x_rgb, x_pose = rgb.layer3(x_rgb), pose.layer2(x_pose)
        x_rgb, x_pose = self._exchange(x_rgb, x_pose, "layer3_lateral", "layer2_lateral", drop_rgb, drop_pose)
        return rgb.layer4(x_rgb), pose.layer3(x_pose)
