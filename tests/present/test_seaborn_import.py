"""seaborn imported without SciPy's stats and cluster modules (:mod:`kbench.present.seaborn_import`)."""

import subprocess
import sys

CHILD = """
import sys
from kbench.present import seaborn_import
sns = seaborn_import.load()
assert seaborn_import.load() is sns
assert "scipy.stats" not in sys.modules and "scipy.cluster" not in sys.modules, "seaborn pulled SciPy's stats in"
assert all(sys.modules.get(m, 1) is not None for m in seaborn_import.OPTIONAL), "a hidden module was left hidden"
import scipy.stats  # still importable afterwards, as ever
assert scipy.stats.t.ppf(0.975, 10) > 2
from kbench.present import figures
import pandas as pd
from matplotlib.figure import Figure
fig = Figure()
sns.heatmap(pd.DataFrame([[1.0, 2.0], [3.0, 4.0]]), ax=fig.add_subplot(), annot=True)
figures.to_svg(fig)
print("ok")
"""


def test_seaborn_loads_without_scipy_stats_and_leaves_scipy_importable():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
