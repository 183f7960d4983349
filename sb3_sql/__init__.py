"""sb3_sql: Soft Q-Learning (Haarnoja et al., ICML 2017) for Stable-Baselines3."""

from sb3_sql.compose import ComposedPolicy, compose
from sb3_sql.envs import MultiGoalEnv, TwoPassageMazeEnv
from sb3_sql.policies import (
    CnnSoftQPolicy,
    CnnSVGDPolicy,
    MlpPolicy,
    MultiInputSoftQPolicy,
    MultiInputSVGDPolicy,
    SoftQPolicy,
    SVGDPolicy,
)
from sb3_sql.resume import ResumableCheckpointCallback, load_checkpoint
from sb3_sql.schedules import LogLinearSchedule
from sb3_sql.sql import REFERENCE_HYPERPARAMETERS, SQL

__version__ = "0.1.0"

__all__ = [
    "REFERENCE_HYPERPARAMETERS",
    "SQL",
    "CnnSVGDPolicy",
    "CnnSoftQPolicy",
    "ComposedPolicy",
    "LogLinearSchedule",
    "MlpPolicy",
    "MultiGoalEnv",
    "MultiInputSVGDPolicy",
    "MultiInputSoftQPolicy",
    "ResumableCheckpointCallback",
    "SVGDPolicy",
    "SoftQPolicy",
    "TwoPassageMazeEnv",
    "__version__",
    "compose",
    "load_checkpoint",
]
