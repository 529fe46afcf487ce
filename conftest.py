"""Collection rules for the whole repository (tests/ and the doctests under src/).

The napari widget module imports napari at its top; without napari it raises an ImportError on
purpose (naming the install command), so its doctests are not collected then.
"""

from importlib.util import find_spec

collect_ignore = [] if find_spec("napari") and find_spec("magicgui") else ["src/denoiselab/napari/_widget.py"]
