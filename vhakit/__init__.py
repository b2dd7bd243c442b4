"""vhakit: a teaching and experimentation kit for 3D human mesh reconstruction from calibrated
multi-view images with a Vertex Heatmap Autoencoder (VHA) and a Body Code Predictor (BCP).

The library holds all logic; the notebooks in ``notebooks/`` call it. Units are metres.
"""
__version__ = "0.1.0"
