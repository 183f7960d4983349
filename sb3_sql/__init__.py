"""sb3_sql: Soft Q-Learning (Haarnoja et al., ICML 2017) for Stable-Baselines3."""

from sb3_sql.envs import MultiGoalEnv
from sb3_sql.policies import MlpPolicy, SVGDPolicy
from sb3_sql.resume import ResumableCheckpointCallback, load_checkpoint
from sb3_sql.sql import SQL

__version__ = "0.1.0"

__all__ = [
    "SQL",
    "MlpPolicy",
    "MultiGoalEnv",
    "ResumableCheckpointCallback",
    "SVGDPolicy",
    "__version__",
    "load_checkpoint",
]
