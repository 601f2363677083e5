# %% [markdown]
# # Analysing a resonance scan, while it runs or after
#
# Notebook-style cells (VS Code, Jupyter with jupytext, or plain `python examples/analysis.py STORE`).
# It opens a store that a run may still be writing (only completed shots are read), puts the shots
# on the scan's grid, plots the atom number against the detuning and fits a Lorentzian to it.
# Start a scan first: `shotflow run examples/resonance.yaml` (it prints where the store is).

# %%
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg" if "--png" in sys.argv else matplotlib.get_backend())
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import curve_fit

from tasks.store import format_quantity, open_sequence

arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
stores = sorted(Path("results/resonance").glob("*.zarr"))
store = Path(arguments[0]) if arguments else stores[-1]  # the newest resonance scan by default

# %% The shots on the scan's axes: (detuning, y, x) for examples/resonance.yaml
ds = open_sequence(store, grid=True)
print(ds)

# %% The atom number per shot: the roi_sum analysis the spec runs, or the image's sum
atoms = ds["analysis.atoms.sum"] if "analysis.atoms.sum" in ds else ds["camera.atoms"].sum(("y", "x"))
detuning = ds["detuning"]
taken = np.isfinite(atoms.values)  # a scan still running has cells not taken yet (NaN)
x, y = detuning.values[taken], atoms.values[taken]


# %% Fit a Lorentzian: centre, full width at half maximum, height, offset
def lorentzian(f, f0, width, height, offset):
    return offset + height / (1 + (2 * (f - f0) / width) ** 2)


guess = [x[np.argmax(y)], (x.max() - x.min()) / 4, y.max() - y.min(), y.min()]
(f0, width, height, offset), covariance = curve_fit(lorentzian, x, y, p0=guess)
f0_err = float(np.sqrt(covariance[0, 0]))
print(
    f"centre {format_quantity(f0, 'Hz')} ± {format_quantity(f0_err, 'Hz')}, width {format_quantity(abs(width), 'Hz')}"
)

# %% Plot the data and the fit, the detuning in MHz
figure, axes = plt.subplots(figsize=(6, 4), layout="constrained")
axes.plot(x / 1e6, y, "o", label=f"{taken.sum()} shots")
fine = np.linspace(x.min(), x.max(), 400)
axes.plot(fine / 1e6, lorentzian(fine, f0, width, height, offset), "-", label="Lorentzian fit")
axes.set_xlabel("detuning (MHz)")
axes.set_ylabel("atom number (counts)")
axes.set_title(f"{store.name}: centre {format_quantity(f0, 'Hz')}")
axes.legend()
if "--png" in sys.argv:
    figure.savefig(store.with_suffix(".png"))
    print(f"plot written to {store.with_suffix('.png')}")
else:
    plt.show()
