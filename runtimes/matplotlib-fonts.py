"""Build matplotlib's font list once, at install, as the sandbox will see it.

    python3 runtimes/matplotlib-fonts.py DIRECTORY

matplotlib scans the fonts on its first import of pyplot (running fc-list) and caches the list in
its cache directory. A sandbox's home is new every run, so without this each run would scan
again, and fc-list, without /etc/fonts, complains on stderr. The list keeps only the fonts under
matplotlib's own data directory, the ones the sandbox has; each run starts with a copy of it
(the language file's `home`). Without matplotlib, this writes nothing.
"""

import json
import os
import sys
import tempfile

target = sys.argv[1]
os.makedirs(target, exist_ok=True)
for name in os.listdir(target):
    os.unlink(os.path.join(target, name))
with tempfile.TemporaryDirectory() as cache:
    os.environ["MPLCONFIGDIR"] = cache
    os.environ["MATPLOTLIBRC"] = "/usr/share/matplotlib/mpl-data/matplotlibrc"
    try:
        import matplotlib
        from matplotlib import font_manager
    except ImportError:
        sys.exit(0)
    data = os.path.realpath(matplotlib.get_data_path())
    for name in os.listdir(cache):
        if not (name.startswith("fontlist-") and name.endswith(".json")):
            continue
        with open(os.path.join(cache, name)) as f:
            fonts = json.load(f)
        for key in ("ttflist", "afmlist"):
            # (a path relative to the data directory is matplotlib's own font)
            fonts[key] = [
                font
                for font in fonts[key]
                if os.path.realpath(os.path.join(data, font["fname"])).startswith(data + "/")
            ]
        with open(os.path.join(target, name), "w") as f:
            json.dump(fonts, f, indent=2)
    assert font_manager  # imported for its side effect: the cache is written on import
