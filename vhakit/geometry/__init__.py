"""Geometry with no body in it: axis-angle <-> rotation matrices, cameras (intrinsics,
extrinsics, OpenCV distortion, crops, rigs) and similarity Procrustes.
"""
