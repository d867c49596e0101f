"""Errors raised inside DataLoader workers reach the user as the original one-line error."""
from __future__ import annotations

import pytest
from torch.utils.data import DataLoader, Dataset

from posec3d.engine.loaders import Loader
from posec3d.errors import AnnotationError, message_of


class _Broken(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        raise AnnotationError(f"data.pkl: sample {index} (frame_dir 'clip'): img_shape must be (h, w)")


def test_worker_error_is_reraised_as_its_own_line():
    loader = Loader(DataLoader(_Broken(), batch_size=1, num_workers=1), sampler=None, seeder=None, dataset=_Broken())
    with pytest.raises(AnnotationError) as e:
        next(loader.epoch(0))
    assert str(e.value) == "data.pkl: sample 0 (frame_dir 'clip'): img_shape must be (h, w)"


def test_message_of_unwraps_torch_worker_text():
    wrapped = AnnotationError("Caught AnnotationError in DataLoader worker process 0.\nOriginal Traceback (most "
                              "recent call last):\n  File \"x.py\", line 1, in f\n"
                              "posec3d.errors.AnnotationError: a.pkl: bad label\n")
    assert message_of(wrapped) == "a.pkl: bad label"
    assert message_of(AnnotationError("two\nlines")) == "two lines"
