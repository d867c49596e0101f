"""posec3d: skeleton-based action recognition with PoseC3D, torch-native and mmcv-free."""

__version__ = "0.1.0"
