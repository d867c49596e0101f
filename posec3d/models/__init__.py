"""PoseC3D backbones, heads, recognizers and checkpoint I/O."""
