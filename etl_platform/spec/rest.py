"""A REST API source: the client (base URL, headers, auth, budget, retries) and the one resource it loads.

Secrets are never written in a spec: every credential is a `${VAR}` reference, resolved at run
time from the settings' secrets (docs/security.md, "Secrets"), so the effective configuration
that `etl run --dry-run` prints shows the references, never a value. A paginator set on the
client is the default of every resource; what each resource really uses is in the effective
configuration, so a paginator silently not applied cannot hide.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from etl_platform.spec.base import Strict, parse_duration

SecretRef = Annotated[
    str,
    StringConstraints(pattern=r"^\$\{([A-Za-z_][A-Za-z0-9_]*|(env|file|vault):[^}]+)\}$"),
    Field(description="a `${VAR}`, `${env:NAME}`, `${file:/path}` or `${vault:path#key}` reference; a literal is refused"),
]
Scalar = str | int | float | bool
PLACEHOLDER = re.compile(r"\{parent\.([A-Za-z_][A-Za-z0-9_]*)\}")


class NoAuth(Strict):
    type: Literal["none"] = "none"


class BearerAuth(Strict):
    type: Literal["bearer"]
    token: SecretRef


class BasicAuth(Strict):
    type: Literal["basic"]
    username: str
    password: SecretRef


class ApiKeyAuth(Strict):
    type: Literal["api_key"]
    name: str = Field(description="the header or query parameter that carries the key")
    key: SecretRef
    location: Literal["header", "query"] = "header"


class OAuth2ClientCredentials(Strict):
    """A token from `token_url` (grant client_credentials), fetched again before it expires or after a 401."""

    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret: SecretRef
    scope: str | None = None
    refresh_before_seconds: int = Field(30, ge=0, description="fetch a new token this long before the old one expires")


Auth = Annotated[NoAuth | BearerAuth | BasicAuth | ApiKeyAuth | OAuth2ClientCredentials, Field(discriminator="type")]


class SinglePage(Strict):
    type: Literal["single_page"]


class JsonLinkPaginator(Strict):
    type: Literal["json_link"]
    next_url_path: str = Field(description="JSONPath of the next page's URL in the body; none or null ends")


class HeaderLinkPaginator(Strict):
    type: Literal["header_link"]
    rel: str = "next"


class OffsetPaginator(Strict):
    type: Literal["offset"]
    limit: int = Field(ge=1)
    offset: int = Field(0, ge=0, description="the first offset")
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = Field(None, description="JSONPath of the total count; without it, an empty page ends")


class PageNumberPaginator(Strict):
    type: Literal["page_number"]
    page_param: str = "page"
    base_page: int = 1
    total_path: str | None = Field(None, description="JSONPath of the number of pages; without it, an empty page ends")


class CursorPaginator(Strict):
    type: Literal["cursor"]
    cursor_path: str = Field(description="JSONPath of the next cursor in the body; none or null ends")
    cursor_param: str = "cursor"


Paginator = Annotated[
    SinglePage | JsonLinkPaginator | HeaderLinkPaginator | OffsetPaginator | PageNumberPaginator | CursorPaginator,
    Field(discriminator="type"),
]


class RateLimit(Strict):
    requests_per_second: float | None = Field(None, gt=0, description="at most this many requests per second to the host")
    use_headers: bool = Field(True, description="wait when X-RateLimit-Remaining / RateLimit-Remaining reaches 0")


class Retries(Strict):
    attempts: int = Field(5, ge=1, description="tries per request on 429, 5xx and connection errors")
    backoff_seconds: float = Field(0.5, ge=0)
    max_backoff_seconds: float = Field(30, ge=0)


class RestClient(Strict):
    base_url: Annotated[str, StringConstraints(pattern=r"^(https?://|\$\{[^}]+\})")] = Field(
        description="http:// or https://, or starting with a `${VAR}` reference (resolved at run time, shown as ***)"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="values may hold `${VAR}` references")
    auth: Auth = Field(default_factory=NoAuth)
    paginator: Paginator | None = Field(None, description="the default of every resource that sets none")
    timeout_seconds: float = Field(30, gt=0)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    retries: Retries = Field(default_factory=Retries)


class RestIncremental(Strict):
    """Read only records past the saved cursor; a child keeps one cursor per parent key."""

    cursor_path: str = Field(description="the record field that grows with every change: updated_at, id")
    initial_value: Scalar
    start_param: str | None = Field(None, description="query parameter sent the saved cursor (less the look-back)")
    end_param: str | None = None
    end_value: Scalar | None = None
    lookback: int | str = Field(0, description="re-read this far below the cursor: '15m', '2h', or a number")

    @model_validator(mode="after")
    def _check(self) -> RestIncremental:
        if isinstance(self.lookback, str):
            parse_duration(self.lookback)
        if (self.end_param is None) != (self.end_value is None):
            raise ValueError("end_param and end_value go together")
        return self


class ResourceBase(Strict):
    path: str = Field(description="relative to base_url; `{parent.FIELD}` is a field of the parent record")
    params: dict[str, Scalar] = Field(default_factory=dict)
    records: str = Field("$", description="JSONPath of the records: a list, or each match an object")
    paginator: Paginator | None = None
    max_pages: int = Field(1000, ge=1, description="more pages fail the run (per parent)")


class ParentResource(ResourceBase):
    """Read whole on every run, so a child of a parent that did not change is still read."""

    key: str = Field("id", description="the parent field that identifies it: the child's cursor is kept per key")
    fields: list[str] = Field(default_factory=list, description="parent fields copied into child rows as parent_FIELD")


class Resource(ResourceBase):
    incremental: RestIncremental | None = None
    parent: ParentResource | None = None

    @model_validator(mode="after")
    def _check(self) -> Resource:
        used = set(PLACEHOLDER.findall(self.path)) | {f for v in self.params.values() for f in PLACEHOLDER.findall(str(v))}
        if used and self.parent is None:
            raise ValueError(f"{{parent.{sorted(used)[0]}}} needs a `parent` resource")
        return self


class RawPages(Strict):
    keep: bool = Field(True, description="keep every page, gzip-compressed, in the lake under _raw/rest/PIPELINE/RUN/")
    retention_days: int = Field(7, ge=1, description="older runs' pages are removed by the next run")


class RestSourceSpec(Strict):
    type: Literal["rest"]
    client: RestClient
    resource: Resource
    raw_pages: RawPages = Field(default_factory=RawPages)

    @property
    def incremental(self) -> RestIncremental | None:
        """The loaded resource's, so the pipeline's rule on look-backs (merge only) applies to it too."""
        return self.resource.incremental

    def paginator_of(self, resource: ResourceBase) -> Any:
        """The resource's paginator, else the client's, else one page."""
        return resource.paginator or self.client.paginator or SinglePage(type="single_page")

    def effective(self) -> dict:
        """The configuration after defaults, each resource with the paginator it really uses (no secret values)."""
        data = self.model_dump(mode="json")
        resource, node = self.resource, data["resource"]
        while resource is not None:
            node["paginator"] = self.paginator_of(resource).model_dump(mode="json")
            resource, node = resource.parent if isinstance(resource, Resource) else None, node.get("parent")
        return data
