"""Converters from other skeleton formats to the pyskl annotation dict (SPEC §1).

Each converter returns ``(annotations, split)`` ready for
``posec3d.data.annotations.save_annotations(path, annotations, split)``:
- ``ntu_skeleton``: NTU RGB+D ``.skeleton`` text files (Kinect v2, 25 joints) -> COCO-17.
- ``taekwondo``: the Goyang Taekwondo per-frame JSON labels (AI Hub layout) -> COCO-17, 64 classes.
- ``csv_table``: a long table with one row per (video, frame, person, joint).
"""
