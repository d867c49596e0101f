"""engine.config: _base_ inheritance, placeholders, --cfg-options parsing, layout getters, errors."""
from pathlib import Path

import pytest

from posec3d.engine import config as C
from posec3d.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
PYSKL = REPO / "configs" / "compat" / "slowonly_r50_ntu60_xsub_joint_pyskl.py"
MMACTION2 = REPO / "configs" / "compat" / "slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_merge_delete_and_placeholders(tmp_path):
    write(tmp_path / "base" / "runtime.py", "log_level = 'INFO'\noptimizer = dict(type='SGD', lr=0.1, momentum=0.9)\n")
    write(tmp_path / "base" / "model.py", "model = dict(type='Recognizer3D', backbone=dict(type='X3D', gamma_d=1), "
                                          "cls_head=dict(type='I3DHead', num_classes=60))\n")
    cfg_path = write(tmp_path / "exp" / "child.py",
                     "_base_ = ['../base/runtime.py', '../base/model.py']\n"
                     "model = dict(cls_head=dict(num_classes=20))\n"
                     "optimizer = dict(_delete_=True, type='AdamW', lr=1e-3)\n"
                     "work_dir = '{{fileDirname}}/out_{{ fileBasenameNoExtension }}'\n"
                     "import math\nhalf = math.pi / 2\n")
    cfg = C.load_config(cfg_path)
    assert cfg.model.backbone.gamma_d == 1 and cfg.model.cls_head.num_classes == 20  # merged, not replaced
    assert cfg.optimizer == {"type": "AdamW", "lr": 1e-3}  # _delete_ replaced the base dict
    assert cfg.log_level == "INFO"
    assert cfg.work_dir == f"{tmp_path / 'exp'}/out_child"
    assert "math" not in cfg and cfg.half == pytest.approx(1.5707963)


def test_base_references_give_the_child_its_bases_values(tmp_path):
    """``{{_base_.key}}`` (mmcv 1.x): a child starts from its base's pipeline and changes one step."""
    write(tmp_path / "base.py", "size = 28\nsteps = [dict(type='A', n=1), dict(type='Sample', clip_len=16)]\n"
                                "data = dict(train=dict(pipeline=steps, split='train'))\n")
    write(tmp_path / "mid.py", "_base_ = 'base.py'\nsize = 32\n")
    child = write(tmp_path / "child.py",
                  "_base_ = 'mid.py'\n"
                  "steps = [dict(s, p=(0.4, 1.0)) if s['type'] == 'Sample' else s for s in {{ _base_.steps }}]\n"
                  "twice = {{_base_.data.train.split}} * 2\n"
                  "side = {{_base_.size}}\n"  # the nearest base's value: mid.py overrides base.py
                  "data = dict(train=dict(pipeline=steps))\n")
    cfg = C.load_config(child)
    assert cfg.steps == [{"type": "A", "n": 1}, {"type": "Sample", "clip_len": 16, "p": (0.4, 1.0)}]
    assert cfg.data.train == {"pipeline": cfg.steps, "split": "train"}
    assert cfg.twice == "traintrain" and cfg.side == 32 and cfg.size == 32
    assert not any(k.startswith("__") for k in cfg)  # the names that carried the values are not keys
    assert C.load_config(tmp_path / "base.py").steps[1] == {"type": "Sample", "clip_len": 16}  # copies, not shared
    bad = {"missing.py": ("_base_ = 'base.py'\nx = {{_base_.data.val}}\n", r"missing.py.*_base_\.data\.val.*'data\.val'"),
           "nobase.py": ("x = {{_base_.size}}\n", r"nobase.py.*names no _base_"),
           "computed.py": ("_base_ = 'ba' + 'se.py'\nx = {{_base_.size}}\n", r"computed.py:1: _base_ must be written as a literal")}
    for name, (text, message) in bad.items():
        with pytest.raises(ConfigError, match=message):
            C.load_config(write(tmp_path / name, text))


def test_cfg_options_value_types(tmp_path):
    cfg_path = write(tmp_path / "c.py", "model = dict(type='R', backbone=dict(depth=50))\n"
                                        "pipe = [dict(type='A', n=1), dict(type='B')]\n"
                                        "lr = shape = ids = names = name = nested = None\n")
    cfg = C.load_config(cfg_path, ["model.backbone.depth=18", "model.flag=false", "lr=1e-2", "shape=(64,64)",
                                   "ids=[1,2,3]", "names=a,b", "pipe.0.n=5", "model.x=none", "name=joint",
                                   "nested=[(1,2),(3,4)]"])
    assert cfg.model.backbone.depth == 18 and cfg.model.flag is False and cfg.model.x is None
    assert cfg.lr == 0.01 and cfg.shape == (64, 64) and cfg.ids == [1, 2, 3] and cfg.names == ["a", "b"]
    assert cfg.pipe[0].n == 5 and cfg.name == "joint" and cfg.nested == [(1, 2), (3, 4)]
    with pytest.raises(ConfigError, match="pipe.7.n"):
        C.load_config(cfg_path, ["pipe.7.n=1"])
    with pytest.raises(ConfigError, match="key=value"):
        C.load_config(cfg_path, ["nonsense"])


def test_bad_configs_name_file_and_key(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        C.load_config(tmp_path / "missing.py")
    bad = write(tmp_path / "syntax.py", "model = dict(\n")
    with pytest.raises(ConfigError, match="syntax.py"):
        C.load_config(bad)
    boom = write(tmp_path / "boom.py", "x = 1 / 0\n")
    with pytest.raises(ConfigError, match="ZeroDivisionError"):
        C.load_config(boom)
    nobase = write(tmp_path / "nobase.py", "_base_ = 'nowhere.py'\n")
    with pytest.raises(ConfigError, match="nowhere.py"):
        C.load_config(nobase)
    cyc = write(tmp_path / "cyc.py", "_base_ = 'cyc.py'\n")
    with pytest.raises(ConfigError, match="circular"):
        C.load_config(cyc)
    empty = C.load_config(write(tmp_path / "empty.py", "x = 1\n"))
    with pytest.raises(ConfigError, match=r"empty.py.*'model'"):
        C.model_cfg(empty)
    with pytest.raises(ConfigError, match=r"empty.py.*total_epochs"):
        C.total_epochs(empty)
    with pytest.raises(ConfigError, match=r"empty.py.*'data'"):
        C.dataset_cfg(empty, "train")


def test_cfg_options_ann_file_as_documented_sets_every_split(tmp_path):
    # configs/README.md: `--cfg-options ann_file=/data/ntu60_hrnet.pkl`. The file's `ann_file`
    # variable was copied into the datasets when it ran, so they must follow the override.
    for path in (PYSKL, MMACTION2):
        cfg = C.load_config(path, ["ann_file=/data/other.pkl"])
        assert [C.unwrap_dataset(C.dataset_cfg(cfg, s))[0]["ann_file"] for s in C.SPLITS] == ["/data/other.pkl"] * 3
    # a split with its own file keeps it; a config without the variable gets it on every split
    own = write(tmp_path / "own.py", "a = 'x.pkl'\nann_file = a\nmodel = dict(type='R')\n"
                                     "data = dict(train=dict(type='RepeatDataset', times=2, dataset=dict(type='D', ann_file=a)),"
                                     " val=dict(type='D', ann_file='val.pkl'), test=dict(type='D'))\n")
    cfg = C.load_config(own, ["ann_file=y.pkl"])
    assert cfg.data.train.dataset.ann_file == "y.pkl" and cfg.data.val.ann_file == "val.pkl"
    assert cfg.data.test.get("ann_file") is None
    novar = write(tmp_path / "novar.py", "model = dict(type='R')\ndata = dict(train=dict(type='D', ann_file='a'),"
                                         " val=dict(type='D', ann_file='b'), test=dict(type='D', ann_file='c'))\n")
    cfg = C.load_config(novar, ["ann_file=z.pkl"])
    assert [cfg.data[s].ann_file for s in C.SPLITS] == ["z.pkl"] * 3


def test_unknown_cfg_options_key_is_reported():
    with pytest.raises(ConfigError, match=r"unknown key 'totl_epochs'.*did you mean 'total_epochs'"):
        C.load_config(PYSKL, ["totl_epochs=0"])
    with pytest.raises(ConfigError, match=r"unknown key 'modle'"):
        C.load_config(MMACTION2, ["modle.backbone.depth=18"])
    # keys posec3d reads may be added even when the file lacks them
    assert C.load_config(PYSKL, ["heatmap_on=batch", "total_epochs=3"]).heatmap_on == "batch"


def test_pyskl_and_mmaction2_layouts_read_alike():
    py, mm = C.load_config(PYSKL), C.load_config(MMACTION2)  # mm's _base_ falls back to the bundled runtime
    assert not C.is_mmaction2_layout(py) and C.is_mmaction2_layout(mm)
    assert C.batch_size(py, "train") == 32 and C.batch_size(mm, "train") == 16
    assert C.batch_size(py, "test") == 1 and C.batch_size(mm, "test") == 1
    assert C.total_epochs(py) == 24 and C.total_epochs(mm) == 24
    for cfg in (py, mm):
        assert C.unwrap_dataset(C.dataset_cfg(cfg, "train"))[1] == 10
        assert C.dataset_cfg(cfg, "val")["split"] == "xsub_val"
        first = C.pipeline_cfg(cfg, "test")[0]
        assert (first.type, first.clip_len, first.num_clips) == ("UniformSampleFrames", 48, 10)
        assert C.grad_clip_cfg(cfg) == {"max_norm": 40.0, "norm_type": 2.0}
        assert C.optimizer_cfg(cfg)["momentum"] == 0.9 and C.optimizer_cfg(cfg)["type"] == "SGD"
        assert C.lr_schedule_cfg(cfg)[0]["type"] == "cosine"
    assert C.optimizer_cfg(py)["lr"] == 0.4 and C.optimizer_cfg(mm)["lr"] == 0.2
    assert C.checkpoint_cfg(mm).interval == 1 and C.log_interval(mm) == 20


def test_resolved_config_round_trips(tmp_path):
    cfg = C.load_config(PYSKL, ["total_epochs=3"])
    C.dump_config(cfg, tmp_path / "resolved.py")
    again = C.load_config(tmp_path / "resolved.py")
    public = lambda c: {k: v for k, v in c.to_dict().items() if not k.startswith("_")}  # noqa: E731
    assert public(again) == public(cfg) and again.total_epochs == 3
