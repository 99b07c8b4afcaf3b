"""The REST API source: client and auth, rate budget and retries, pagination, record selection, the Source."""

from etl_platform.sources.rest.source import RestApiSource

__all__ = ["RestApiSource"]
