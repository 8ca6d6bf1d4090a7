"""`solar-ray pipeline EXPERIMENT.yaml --rehearse`: the experiment itself, offline on this machine, sizes changed.

1. The scale profile: `rehearsal.yaml` beside the experiment (profile.py: size keys only).
2. The hub (unless the profile says `hub: false`): the rehearsal hub (mirror.py) is built once under the output
   root (`<output>/rehearsal_hub/`) and every hub id resolves there (solar_ray.hub's SOLAR_RAY_HUB_MIRROR hook);
   HF_HUB_OFFLINE and HF_DATASETS_OFFLINE are set, so nothing reaches the network. Set before Ray starts, so Ray
   workers see them too.
3. The output root: `runs/<experiment>-rehearsal` unless given.
Raises ConfigError when the experiment has no rehearsal.yaml beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILE_FILE = "rehearsal.yaml"
HUB_DIR = "rehearsal_hub"


def prepare(experiment: Path, output: str | None):
    """(profile, output root) for a rehearsal of `experiment`; builds the hub if missing and points hub ids at it."""
    from solar_ray.config import read_yaml
    from solar_ray.errors import ConfigError
    from solar_ray.hub import MIRROR_ENV
    from solar_ray.rehearsal.mirror import build_mirror
    from solar_ray.rehearsal.profile import Profile

    # Offline before anything imports huggingface_hub or datasets: both read these once, at import.
    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    profile_path = Path(experiment).parent / PROFILE_FILE
    if not profile_path.is_file():
        raise ConfigError(f"{experiment}: --rehearse needs a scale profile at {profile_path}")
    profile = Profile.read(profile_path)
    root = Path(output or Path("runs") / f"{read_yaml(Path(experiment)).get('name', 'experiment')}-rehearsal").resolve()
    if profile.hub:
        hub = root / HUB_DIR
        if not (hub / "models").is_dir():
            build_mirror(hub)
        os.environ[MIRROR_ENV] = str(hub)
    return profile, str(root)
