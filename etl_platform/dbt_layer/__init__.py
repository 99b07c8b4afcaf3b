"""The dbt project on top of the pipelines: its profile from the warehouse URL, its manifest prepared offline."""

from etl_platform.dbt_layer.manifest import dbt_executable, keep_parse_state, prepare_manifest, seed_parse_state
from etl_platform.dbt_layer.profile import dbt_profile, dbt_profile_env, profiles_dir

__all__ = [
    "dbt_executable",
    "dbt_profile",
    "dbt_profile_env",
    "keep_parse_state",
    "prepare_manifest",
    "profiles_dir",
    "seed_parse_state",
]
