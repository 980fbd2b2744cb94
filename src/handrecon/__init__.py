"""handrecon: 3D hand reconstruction from RGB images (HandOS and M3DHMR), with an open hand model.

    import handrecon
    model = handrecon.load("m3dhmr-openhand")          # or a checkpoint dir / run dir / .onnx file
    result = model.predict(image, boxes=[(x1, y1, x2, y2)], sides=["left"])
    fit = handrecon.fit(HandModel.openhand("left"), vertices=vertices)   # pose, shape, transl (IK)

`load` is imported on first use, so `import handrecon` stays cheap (no torch).
"""

from handrecon.version import __version__

__all__ = ["__version__", "fit", "load"]


def __getattr__(name: str):
    if name == "load":
        from handrecon.infer.load import load  # deferred: importing torch takes ~1 s

        return load
    if name == "fit":
        from handrecon.hand.fit import fit_hands

        return fit_hands
    raise AttributeError(f"module 'handrecon' has no attribute {name!r}")
