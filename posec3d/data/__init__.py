"""Annotation files, pipeline transforms, heatmaps (numpy and torch), datasets and samplers.

- ``annotations``: safe loading (``safe_pickle``), validation, split selection, atomic saving.
- ``skeletons``: COCO-17 names, flip pairs, limb lists, other layouts -> COCO-17 index maps.
- ``transforms`` / ``pipeline.Compose``: the SPEC §2 transforms, built from config dicts.
- ``heatmap`` (numpy, per sample) and ``heatmap_torch`` (batched; ``split_pipeline`` +
  ``BatchHeatmaps`` move heatmap drawing off the data loader).
- ``dataset``: ``PoseDataset`` / ``RepeatDataset``; ``summary``: what ``posec3d info`` shows.
"""
