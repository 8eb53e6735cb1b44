from pathlib import Path

from setuptools import find_packages, setup

version = {}
for line in Path("landscape/core/version.py").read_text().splitlines():
    if line.startswith("__version__"):
        exec(line, version)

extras = {
    "mpi": ["mpi4py>=3.1", "mpich"],
    "vtk": ["vtk>=9.2"],
    "plot": ["matplotlib>=3.6", "pillow", "plotly>=5"],
    "hf": ["transformers>=4.40"],
    "hf-trainer": ["transformers>=4.40", "accelerate>=1.1"],
    "xarray": ["xarray"],
    "topology": ["gudhi>=3.8"],
    "lightning": ["lightning>=2.0"],
    "docs": ["mkdocs>=1.6", "mkdocs-material>=9", "mkdocstrings[python]>=0.26"],
}
# torchvision is in no extra: pip would replace the torch installed first (a CPU or a chosen CUDA build) with the
# newest one. Install the torchvision build that matches your torch by hand (README: Install).
extras["test"] = (["pytest>=7", "pytest-timeout", "h5netcdf"] + extras["mpi"] + extras["vtk"] + extras["plot"]
                  + extras["hf-trainer"] + extras["xarray"] + extras["lightning"] + extras["topology"]
                  + extras["docs"])
extras["all"] = sorted({d for k in ("mpi", "vtk", "plot", "hf-trainer", "xarray", "lightning", "topology")
                        for d in extras[k]})

setup(
    name="landscape",
    version=version["__version__"],
    description="Loss surfaces, interpolation paths and training trajectories of neural networks, on HPC clusters",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["landscape", "landscape.*"]),
    package_data={"landscape": ["resources/*.toml"]},
    install_requires=["torch>=2.1", "numpy", "scipy", "h5py", "scikit-learn", "tqdm"],
    extras_require=extras,
    entry_points={"console_scripts": ["landscape=landscape.cli:console"]},
)
