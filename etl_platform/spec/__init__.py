"""Pipeline specs: typed models, the YAML loader and the validated registry."""

from etl_platform.spec.loader import load_pipeline_file, spec_from_document
from etl_platform.spec.models import PipelineSpec
from etl_platform.spec.python import FramePipeline, frame_pipeline
from etl_platform.spec.registry import PipelineRegistry

__all__ = ["FramePipeline", "PipelineRegistry", "PipelineSpec", "frame_pipeline", "load_pipeline_file", "spec_from_document"]
