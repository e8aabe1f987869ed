"""The planner of a batch run by the gateway: its models, the key's rights, the request limits.

``batch.requests.RequestPlanner`` routes each line over the serving application's
variants (adapters are not batch targets) as the gateway routes a request; this one
also refuses, as error lines, what the online endpoints would refuse the same key:
a line for another endpoint than the batch's, a model or capability the key may not
use (403), and bodies over the gateway's request limits (400).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from batch.lines import SCHEMAS, BatchLine
from batch.requests import PromptRequest, RequestPlanner
from gateway.api.limits import checked_payload
from gateway.auth import check_capabilities, check_model
from gateway.errors import InvalidRequest
from gateway.media.settings import MediaSettings
from gateway.model_info import ModelInfo
from gateway.quotas.protocol import ApiKey
from gateway.routing import Needs, route
from gateway.settings import RequestLimits


class KeyedPlanner(RequestPlanner):
    """Plans the lines of one key's batch for ``endpoint``."""

    def __init__(
        self,
        models: Sequence[ModelInfo],
        *,
        key: ApiKey,
        endpoint: str,
        limits: RequestLimits,
        aliases: Mapping[str, str],
        media: MediaSettings,
    ) -> None:
        variants = [m for m in models if not m.is_adapter]
        super().__init__(variants, aliases=aliases, media=media)
        self.key = key
        self.endpoint = endpoint
        self.limits = limits

    def resolve(self, requested: str, needs: Needs) -> str:
        check_capabilities(self.key, needs.capabilities)
        found = route(requested, needs, self.models, aliases=self.aliases)
        return check_model(self.key, requested, [m.id for m in found.candidates])[0]

    def plan(self, line: BatchLine) -> PromptRequest:
        if line.url != self.endpoint:
            raise InvalidRequest(
                f"url is {line.url}; this batch's endpoint is {self.endpoint}.",
                param="url",
                code="mismatched_endpoint",
            )
        body = SCHEMAS[line.endpoint].model_validate(line.body)
        checked_payload(body, self.limits)  # type: ignore[arg-type]
        return super().plan(line)
