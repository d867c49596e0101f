import pytest

from posec3d.data.label_map import label_indices, read_label_map
from posec3d.errors import AnnotationError


def test_real_label_map_has_one_name_per_class(data_dir):
    names = read_label_map(data_dir / "label_maps/label_map_ntu60.txt")
    assert len(names) == 60 and names[0] and all(names)


def test_inner_blank_lines_keep_indices_and_trailing_ones_are_dropped(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("walk\n\n  run \nwalk\n\n\n", encoding="utf-8")
    names = read_label_map(path)
    assert names == ["walk", "", "run", "walk"]
    assert label_indices(names) == {"walk": 0, "run": 2}


@pytest.mark.parametrize("content", [None, "\n\n"])
def test_missing_or_empty_label_map_names_the_file(tmp_path, content):
    path = tmp_path / "labels.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(AnnotationError, match="labels.txt"):
        read_label_map(path)
