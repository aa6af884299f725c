"""The REST API's request and response bodies (pydantic): they validate every request and are the source
of the OpenAPI document, so the two cannot drift."""
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

HTTP_URL = r"^https?://"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(BaseModel):
    """Every error answer: `details` (400) names the fields; 402 adds balance and required; 429 retry_after."""

    error: str
    details: dict[str, str] | None = None
    balance: int | None = None
    required: int | None = None
    retry_after: int | None = None


class Function(BaseModel):
    key: str
    name: str
    description: str
    price: int = Field(description="Credits (tokens) charged per job.")
    formats: list[str] = Field(description="Input image formats accepted.")
    max_file_size: int = Field(description="Largest input image in bytes.")
    daily_limit: int | None = Field(description="Jobs per user per day; null means unlimited.")
    parameters: list[dict[str, Any]] = Field(
        description="The parameters the function takes, as `params` keys: key, type, label, help, default, "
                    "required and the type's limits (min, max, step, max_length, options).")


class FunctionList(BaseModel):
    functions: list[Function]


class GenerateRequest(Strict):
    """JSON body, or the same fields as multipart form fields with the image as the `image` file part
    (`params` then as a JSON text)."""

    function: str = Field(min_length=1, max_length=64, description="The function key (GET /functions).")
    image_url: str | None = Field(None, max_length=2000, pattern=HTTP_URL,
                                  description="An http(s) URL of the input image; fetched by us.")
    image_base64: str | None = Field(None, description="The input image, base64 (a data: URI is accepted).")
    params: dict[str, Any] = Field(default_factory=dict, description="Function parameters.")
    priority: int = Field(10, ge=1, le=100, description="1 is served first; 10 is the default.")
    webhook_url: str | None = Field(None, max_length=2000, pattern=HTTP_URL,
                                    description="Overrides the app's webhook URL for this job.")
    idempotency_key: str | None = Field(None, min_length=1, max_length=255,
                                        description="The same key with the same body returns the first answer "
                                                    "and charges once; with another body it is a 409.")


class GenerateAccepted(BaseModel):
    job_id: int
    status: str
    function: str
    tokens_charged: int
    user_balance: int


class Output(BaseModel):
    url: str
    index: int


class JobOut(BaseModel):
    job_id: int
    status: str = Field(description="queued, running, succeeded, failed or cancelled.")
    function: str
    user_id: str | None = Field(description="The external id of the app's user.")
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    outputs: list[Output]
    tokens_charged: int = Field(description="Net of refunds: 0 once a failed or cancelled job is refunded.")
    provider_used: str | None
    error: str | None


class JobList(BaseModel):
    jobs: list[JobOut]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class JobQuery(Strict):
    status: str | None = Field(None, pattern="^(queued|running|succeeded|failed|cancelled)$")
    limit: int = Field(20, ge=1, le=100)
    cursor: int | None = Field(None, ge=1, description="The next_cursor of the previous page.")


class CancelAnswer(BaseModel):
    job_id: int
    status: str
    message: str


class UserOut(BaseModel):
    external_id: str
    token_balance: int
    total_jobs: int
    successful_jobs: int
    created_at: datetime


class GrantRequest(Strict):
    amount: int = Field(ge=1, le=1_000_000)
    reason: str = Field(min_length=1, max_length=500)
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)


class GrantAnswer(BaseModel):
    external_id: str
    previous_balance: int
    amount_added: int
    new_balance: int
    transaction_id: str


class BatchItem(Strict):
    external_id: str = Field(min_length=1, max_length=255)
    amount: int = Field(ge=1, le=1_000_000)
    reason: str = Field("Grant", min_length=1, max_length=500)


class BatchRequest(Strict):
    grants: list[BatchItem] = Field(min_length=1, max_length=1000)
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)

    @field_validator("grants")
    @classmethod
    def _each_user_once(cls, grants):
        seen = set()
        for item in grants:
            if item.external_id in seen:
                raise ValueError(f"{item.external_id} appears twice; one grant per user in a batch")
            seen.add(item.external_id)
        return grants


class BatchAnswer(BaseModel):
    grants: list[GrantAnswer]
    count: int
    total_amount: int


def image_problem(body, has_file):
    """Exactly one input image: URL, base64 or the multipart file; the details of a 400 otherwise."""
    given = [name for name in ("image_url", "image_base64") if getattr(body, name)] + (["image"] if has_file else [])
    if len(given) != 1:
        return {"image_url": "Give exactly one input image: image_url, image_base64 or a multipart image file."}
    return None


class WebhookPayload(BaseModel):
    """What we POST to the webhook URL when a job ends (signed: see X-Webhook-Signature)."""

    event: str = Field(description="job.completed, job.failed or job.cancelled.")
    job_id: int
    status: str
    user_id: str | None
    function: str
    outputs: list[Output]
    tokens_charged: int
    completed_at: datetime | None
    error: str | None = None

