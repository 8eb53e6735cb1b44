"""Write the example sbatch scripts in slurm/ from landscape.run.slurm.PRESETS (tests/run/test_slurm.py checks that
the files in slurm/ are what this writes).

    python tools/update_slurm_scripts.py
"""
import logging
from pathlib import Path

from landscape.run.slurm import PRESETS, render_script

log = logging.getLogger("update_slurm_scripts")


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "slurm"
    out.mkdir(exist_ok=True)
    for name, opts in PRESETS.items():
        path = out / name
        path.write_text(render_script(None, opts))
        path.chmod(0o755)
        log.info("wrote %s", path)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
