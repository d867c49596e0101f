"""Pipeline transforms (SPEC §2): small callables taking and returning the sample dict.

Importing this package registers every transform in ``posec3d.registry.TRANSFORMS`` under its
pyskl and mmaction2 names.
"""
from posec3d.data.transforms.sampling import DecompressPose, PoseDecode, UniformSampleFrames
from posec3d.data.transforms.geometry import CenterCrop, Flip, PoseCompact, RandomResizedCrop, Resize
from posec3d.data.transforms.targets import GeneratePoseTarget
from posec3d.data.transforms.formatting import Collect, FormatShape, PackActionInputs, PackPoses, ToTensor
from posec3d.data.transforms.joints import MapJoints
from posec3d.data.transforms.noise import PoseNoise
from posec3d.data.transforms.viewpoint import FramingCut, RandomAffine
from posec3d.data.transforms.temporal import RandomRepeat

__all__ = [
    "UniformSampleFrames", "PoseDecode", "DecompressPose", "PoseCompact", "Resize",
    "RandomResizedCrop", "CenterCrop", "Flip", "GeneratePoseTarget", "FormatShape", "Collect",
    "ToTensor", "PackActionInputs", "PackPoses", "MapJoints", "PoseNoise",
    "RandomAffine", "FramingCut", "RandomRepeat",
]
