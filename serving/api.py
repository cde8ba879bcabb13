"""The read API (`dmp serve`): profiles, audiences and recommendations over HTTP, from the
published snapshot (snapshot.py), so it answers while a run rebuilds the warehouse.

FastAPI: the OpenAPI document at /openapi.json (and /docs), JSON everywhere, parameters
validated (422 naming the parameter). Clients authenticate with a read key as a bearer token
(`Authorization: Bearer <key>`), from `DMP_READ_KEYS` ("name:key,name2:key2"), separate from
the collector's write keys; /healthz needs none.
"""

import hmac
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from activation.exports import PURPOSES
from serving import profiles
from serving.snapshot import NoSnapshot, SnapshotReader

READ_KEYS_ENV = "DMP_READ_KEYS"
WRITE_KEYS_ENV = "DMP_WRITE_KEYS"

IdentifierType = StrEnum("IdentifierType", {name: name for name in profiles.LOOKUP_TYPES})
Purpose = StrEnum("Purpose", {name: name for name in PURPOSES})


def read_keys_from_env(value: str | None = None) -> dict[str, str]:
    """Parse `DMP_READ_KEYS` ("crm:KEY1,site:KEY2") into read key -> client name. A key that
    is also a collector write key is refused: one secret must not both write and read."""
    value = os.environ.get(READ_KEYS_ENV, "") if value is None else value
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, separator, key = (part.strip() for part in item.partition(":"))
        if not separator or not name or not key:
            raise ValueError(f"{READ_KEYS_ENV}: {item!r} is not <name>:<key>")
        if keys.setdefault(key, name) != name:
            raise ValueError(f"{READ_KEYS_ENV}: one key is given to both {keys[key]} and {name}")
    if not keys:
        raise ValueError(f"no read keys: set {READ_KEYS_ENV}, e.g. crm:KEY1,site:KEY2")
    write_keys = {
        item.partition(":")[2].strip() for item in os.environ.get(WRITE_KEYS_ENV, "").split(",")
    }
    shared = sorted(keys[key] for key in keys if key in write_keys)
    if shared:
        raise ValueError(
            f"{READ_KEYS_ENV}: the key of {', '.join(shared)} is also a write key "
            f"({WRITE_KEYS_ENV}); give readers keys of their own"
        )
    return keys


class Identifier(BaseModel):
    type: str
    value: str


class Interest(BaseModel):
    category: str
    score: float | None
    rank: int | None
    weighted_activities: int | None
    last_activity_at: str | None


class Recommendation(BaseModel):
    rank: int
    product_id: str
    score: float | None


class Segment(BaseModel):
    segment_id: int | None
    segment_name: str | None
    probability: float | None


class Propensity(BaseModel):
    probability: float | None
    model: str | None
    horizon_days: int | None


class PredictedValue(BaseModel):
    probability_alive: float | None
    expected_purchases_90d: float | None
    predicted_spend_90d: float | None


class Profile(BaseModel):
    """One person: identifiers (e-mails and phones as SHA-256), the profile's parts, model
    outputs, audiences and consent per purpose."""

    person_id: str
    identifiers: list[Identifier]
    demographics: dict[str, Any]
    rfm: dict[str, Any]
    preferences: dict[str, Any]
    engagement: dict[str, Any]
    activity: dict[str, Any]
    attributes: dict[str, Any]
    interests: list[Interest]
    consent: dict[str, bool]
    segment: Segment | None
    propensity: Propensity | None
    predicted_value: PredictedValue | None
    recommendations: list[Recommendation]
    audiences: list[str]


class Recommendations(BaseModel):
    person_id: str
    recommendations: list[Recommendation]


class Audience(BaseModel):
    name: str
    members: int
    consented: dict[str, int]


class Audiences(BaseModel):
    audiences: list[Audience]


class Members(BaseModel):
    audience: str
    purpose: str
    members: list[str]
    next_cursor: str | None


class Health(BaseModel):
    status: str
    snapshot: str
    published_at: str
    age_seconds: float
    persons: int


class Problem(BaseModel):
    detail: str


_bearer = HTTPBearer(auto_error=False, description="a read key from DMP_READ_KEYS")
_UNAUTHORISED = {401: {"model": Problem, "description": "no valid read key"}}
_NOT_FOUND = {404: {"model": Problem}}
_NO_SNAPSHOT = {503: {"model": Problem, "description": "no run has published profiles yet"}}


def create_app(serving_dir: Path, read_keys: dict[str, str]) -> FastAPI:
    """The read API over the snapshots published in `serving_dir`; `read_keys` maps each read
    key to its client's name."""
    reader = SnapshotReader(serving_dir)
    secrets = [key.encode() for key in read_keys]

    def reader_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if credentials is None:
            raise HTTPException(
                401,
                "missing read key (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        given = credentials.credentials.encode()
        if not any(hmac.compare_digest(given, secret) for secret in secrets):
            raise HTTPException(401, "unknown read key", headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(
        title="DMP read API",
        version="1",
        description="Profiles, audiences and recommendations from the latest published "
        "snapshot of the warehouse.",
        responses={**_NO_SNAPSHOT},
    )

    @app.exception_handler(NoSnapshot)
    def no_snapshot(request: Request, error: NoSnapshot) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @app.get("/healthz", response_model=Health, summary="Liveness and the snapshot's age")
    def healthz() -> Health:
        manifest, _ = reader.cursor()
        return Health(
            status="ok",
            snapshot=manifest.snapshot,
            published_at=manifest.published_at.isoformat(),
            age_seconds=round(manifest.age_seconds(), 3),
            persons=manifest.persons,
        )

    def known_query_parameters(request: Request) -> None:
        """A misspelt parameter (`?limt=3`) is refused, not ignored for a default answer."""
        declared = {param.alias for param in request.scope["route"].dependant.query_params}
        unknown = sorted(set(request.query_params) - declared)
        if unknown:
            raise RequestValidationError(
                [
                    {
                        "type": "extra_forbidden",
                        "loc": ("query", name),
                        "msg": "unknown query parameter",
                        "input": request.query_params[name],
                    }
                    for name in unknown
                ]
            )

    read = [Depends(reader_key), Depends(known_query_parameters)]
    person_id_param = Annotated[str, PathParam(min_length=1, max_length=200)]

    @app.get(
        "/v1/profiles/{person_id}",
        response_model=Profile,
        responses={**_UNAUTHORISED, **_NOT_FOUND},
        dependencies=read,
        summary="One person's whole profile",
    )
    def profile(person_id: person_id_param) -> Response:
        _, con = reader.cursor()
        document = profiles.profile_document(con, person_id)
        if document is None:
            raise HTTPException(404, f"no person {person_id!r}")
        return Response(document, media_type="application/json")

    @app.get(
        "/v1/profiles",
        response_model=Profile,
        responses={**_UNAUTHORISED, **_NOT_FOUND},
        dependencies=read,
        summary="The profile of the person holding an identifier",
        description="E-mails and phones are normalised and hashed as the warehouse does; "
        "`email_sha256` and `phone_sha256` take the hash itself.",
    )
    def find_profile(
        identifier_type: IdentifierType,
        value: Annotated[str, Query(min_length=1, max_length=1000)],
    ) -> Response:
        _, con = reader.cursor()
        person_id = profiles.find_person(con, identifier_type.value, value)
        document = profiles.profile_document(con, person_id) if person_id else None
        if document is None:
            raise HTTPException(404, f"no person holds this {identifier_type.value}")
        return Response(document, media_type="application/json")

    @app.get(
        "/v1/persons/{person_id}/recommendations",
        response_model=Recommendations,
        responses={**_UNAUTHORISED, **_NOT_FOUND},
        dependencies=read,
        summary="The person's recommended products, best first",
    )
    def recommendations(
        person_id: person_id_param, limit: Annotated[int, Query(ge=1, le=100)] = 10
    ) -> Recommendations:
        _, con = reader.cursor()
        if profiles.profile_document(con, person_id) is None:
            raise HTTPException(404, f"no person {person_id!r}")
        return Recommendations(
            person_id=person_id,
            recommendations=profiles.recommendations(con, person_id, limit),
        )

    @app.get(
        "/v1/audiences",
        response_model=Audiences,
        responses=_UNAUTHORISED,
        dependencies=read,
        summary="Every audience with its members and consented members per purpose",
    )
    def audiences() -> Audiences:
        _, con = reader.cursor()
        return Audiences(audiences=profiles.audiences(con))

    @app.get(
        "/v1/audiences/{name}/members",
        response_model=Members,
        responses={**_UNAUTHORISED, **_NOT_FOUND},
        dependencies=read,
        summary="A page of the audience's members whose consent covers the purpose",
        description="Person ids in ascending order; pass `next_cursor` as `cursor` for the "
        "next page (null on the last page).",
    )
    def audience_members(
        name: Annotated[str, PathParam(min_length=1, max_length=200)],
        purpose: Purpose,
        limit: Annotated[int, Query(ge=1, le=profiles.MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Members:
        _, con = reader.cursor()
        page = profiles.audience_members(con, name, purpose.value, limit, cursor)
        if page is None:
            raise HTTPException(404, f"no audience {name!r}")
        members, next_cursor = page
        return Members(
            audience=name, purpose=purpose.value, members=members, next_cursor=next_cursor
        )

    return app


def run_server(host: str, port: int, serving_dir: Path, read_keys: dict[str, str]) -> None:
    """Serve the read API with uvicorn until stopped."""
    import uvicorn

    uvicorn.run(
        create_app(serving_dir, read_keys),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # a log line per request costs more than the lookup
    )
