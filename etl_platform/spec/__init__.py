"""Pipeline specs: typed models, the YAML loader and the validated registry.

The models are split by concern, each module importing only `base` (what they share), each
other, `etl_platform.errors` and `etl_platform.types`: `sources`, `steps` (with the ML steps'
settings in `ml`), `quality`, `destinations`, `triggers`, and `pipeline`, which joins them.
"""

from etl_platform.spec.loader import load_pipeline_file, spec_from_document
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.python import FramePipeline, frame_pipeline
from etl_platform.spec.registry import PipelineRegistry

__all__ = ["FramePipeline", "PipelineRegistry", "PipelineSpec", "frame_pipeline", "load_pipeline_file", "spec_from_document"]
