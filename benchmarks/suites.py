"""Named benchmark suites: how much data, how many seeds and which rows each one runs.

``tiny`` exists so a test can run the whole suite end to end in seconds (the numbers mean
nothing); ``quick`` is meant for a 2-core CPU (25-minute budget for gaze and hand_depth side by
side: see docs/benchmarks.md for the measured time); ``long`` runs only the sim-to-real and
realism tables, each task at the profile where it shows refinement's full effect (measured on
the 2-core CPU: hand_depth 60 min, gaze 10 min); ``full`` uses the paper profiles and is meant for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simgan_toolkit.errors import ConfigError
from simgan_toolkit.task import Task

#: ``Suite.profile`` value meaning: each task's ``full_effect_profile`` (``default`` if it names none).
FULL_EFFECT = "full-effect"


@dataclass(frozen=True)
class Suite:
    """What one suite runs.

    Attributes:
        name: the suite's name.
        profile: the task profile every config starts from, or :data:`FULL_EFFECT`.
        overrides: per task, ``--set`` style overrides applied on top of the profile.
        seeds: estimator seeds per row (mean +- std over these).
        ablation_seeds: estimator seeds per ablation row (the first ones of ``seeds``; ``None``
            = all of them); the reference row of the ablation table is re-aggregated over the
            same seeds, so every row of that table has the same estimator seeds.
        simgan_seeds: refiners trained for the "refined" rows (each with its own seed); the
            estimator seed k trains on the images of refiner k mod ``simgan_seeds``, so with
            ``simgan_seeds == seeds`` the spread includes the refiner's. Ablation rows train
            ``min(simgan_seeds, ablation seeds)`` refiners, or fewer with ``ablation_simgan_seeds``.
        ablation_simgan_seeds: at most this many refiners per ablation row (``None``: no
            limit); estimator seed k then trains on refiner k mod this.
        noise_sigmas: candidates for the Gaussian-noise baseline, chosen on the validation split.
        multipliers: the "more data" rows (k x synthetic vs k x refined); empty to skip.
        n_val: labelled target images of the validation split (sigma selection only).
        ablations: which ablation groups to run (see :data:`benchmarks.ablations.GROUPS`).
        lam_sweep: lambda values of the lambda sweep (the profile's own is added).
        k_g_values: K_g values of the K_g ablation (the profile's own is added).
        realism: run KID and the visual Turing test.
        turing_steps: training steps of each real-vs-X classifier.
        turing_classifiers: classifiers (seeds) per visual Turing test; the median is reported.
        speed_profiles: profiles whose throughput is measured.
        speed_iterations: timed iterations per measurement (after one warm-up).
    """

    name: str
    profile: str
    overrides: dict[str, list[str]] = field(default_factory=dict)
    seeds: int = 3
    ablation_seeds: int | None = None
    simgan_seeds: int = 1
    ablation_simgan_seeds: int | None = None
    noise_sigmas: tuple[float, ...] = (0.02, 0.05, 0.1)
    multipliers: tuple[int, ...] = (3, 4)
    n_val: int = 400
    ablations: tuple[str, ...] = ("history", "discriminator", "feature", "lam", "k_g")
    lam_sweep: tuple[float, ...] = (0.1, 2.0)
    k_g_values: tuple[int, ...] = (1, 2)
    realism: bool = True
    turing_steps: int = 300
    turing_classifiers: int = 3
    speed_profiles: tuple[str, ...] = ("default",)
    speed_iterations: int = 5

    def profile_for(self, task: Task) -> str:
        """The profile ``task``'s configs start from."""
        if self.profile == FULL_EFFECT:
            return task.full_effect_profile or "default"
        return self.profile


SUITES: dict[str, Suite] = {
    "tiny": Suite(
        name="tiny",
        profile="smoke",
        overrides={},
        seeds=2,
        simgan_seeds=2,  # as quick and full: estimator seed k on refiner k
        noise_sigmas=(0.05, 0.1),
        multipliers=(2,),
        n_val=8,
        ablations=("history", "discriminator", "feature", "lam", "k_g"),
        lam_sweep=(2.0,),
        k_g_values=(2,),
        turing_steps=5,
        speed_profiles=("smoke",),
        speed_iterations=1,
    ),
    "quick": Suite(
        name="quick",
        profile="default",
        overrides={
            # Measured at 784436d: gaze 18 min, hand_depth 32 min side by side, over the 25-minute
            # budget; the hand estimator trains 150 steps here (it was 300; the default profile: 450): 41
            # hand estimator trainings were the long pole). See docs/benchmarks.md.
            # The gaze estimator gets more small steps rather than fewer large ones: the same
            # images seen, far less seed-to-seed spread.
            # SimGAN runs 400 of the default profile's 1000 gaze iterations (17 refiners per
            # task would not fit otherwise).
            "gaze": ["data.n_synthetic=4000", "data.n_target=2000", "data.n_test=1000", "data.n_target_train=4000",
                     "train.steps=400", "estimator.steps=300", "estimator.batch_size=24"],
            "hand_depth": ["data.n_synthetic=400", "data.n_target=400", "data.n_test=200", "data.n_target_train=400",
                           "train.steps=100", "train.discriminator_pretrain_steps=100",
                           "estimator.steps=150", "estimator.batch_size=16"],
        },
        seeds=3,
        ablation_seeds=2,
        # One refiner per estimator seed, as in full: the rows' spread includes the refiner's,
        # which the four reruns in docs/benchmarks.md showed to be as large as the estimator's.
        simgan_seeds=3,
        # One refiner per ablation row (its two estimator seeds share it): 17 gaze refiners of
        # 400 iterations would not fit the 25-minute budget; the sim-to-real rows keep three.
        ablation_simgan_seeds=1,
        noise_sigmas=(0.02, 0.05, 0.1),
        multipliers=(3,),
        n_val=200,
        ablations=("history", "discriminator", "feature", "lam", "k_g"),
        lam_sweep=(0.1, 2.0),
        k_g_values=(2,),
        turing_steps=100,
        speed_profiles=("default",),
        speed_iterations=3,
    ),
    "long": Suite(
        # Where the quick suite's budget is too small for a task to show refinement (hands: at
        # 150 estimator steps the oracle places 12 % of joints within 5 px and synthetic is 2
        # points behind), the same sim-to-real rows at the task's full-effect profile (hands:
        # `long`, whose estimator sees 5 px; gaze: `default`), three refiners, no ablations.
        name="long",
        profile=FULL_EFFECT,
        seeds=3,
        simgan_seeds=3,
        noise_sigmas=(0.05, 0.1),
        multipliers=(),
        n_val=200,
        ablations=(),
        turing_steps=100,
        speed_profiles=(),
    ),
    "full": Suite(
        name="full",
        profile="paper",
        seeds=3,
        simgan_seeds=3,
        noise_sigmas=(0.01, 0.02, 0.05, 0.1, 0.2),
        multipliers=(3, 4),
        n_val=2000,
        lam_sweep=(0.1, 0.25, 1.0, 2.0),
        k_g_values=(1, 2, 4),
        turing_steps=2000,
        turing_classifiers=5,
        speed_profiles=("default", "paper"),
        speed_iterations=10,
    ),
}


def get_suite(name: str) -> Suite:
    """The suite ``name``; an unknown name is a ConfigError listing the suites."""
    try:
        return SUITES[name]
    except KeyError:
        raise ConfigError(f"unknown benchmark suite {name!r}; choose one of {', '.join(SUITES)}") from None
