"""handrecon: 3D hand reconstruction from single RGB images (HandOS and M3DHMR)."""

__version__ = "0.1.0"
