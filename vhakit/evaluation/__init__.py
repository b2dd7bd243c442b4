"""Evaluation: metrics (MPJPE, PA-MPJPE, MPVE, angular distance), a VHA's error per
pose family (``pose_families``) and reconstruction files for the viewer
(``recon``).
"""
