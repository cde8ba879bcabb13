"""Pull a channel's records from a paginated HTTP JSON API with dlt's REST client.

The API contract (what ad networks and CRMs commonly offer): `GET <url>?since=<cursor>`
answers `{"data": [record, ...], "next": "<url of the next page>" | null}`, records carrying
the channel's cursor field (ISO 8601 time or date). dlt's client retries failed requests
with back-off, so a page that errors once is fetched again and the pull goes on.

The cursor (the newest value loaded) lives in the source's dlt state. Each pull asks for
everything since cursor − lookback, so records that arrive late with an older timestamp
are still picked up; the merge on the natural key keeps the overlap from duplicating rows.
"""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator

DEFAULT_LOOKBACK = timedelta(days=3)


def pull_pages(url: str, since: str | None) -> Iterator[tuple[str, list[str]]]:
    """Yield (page name, records as JSON text) for every page from `since` on."""
    client = RESTClient(
        base_url=url, paginator=JSONLinkPaginator(next_url_path="next"), data_selector="data"
    )
    params = {"since": since} if since else {}
    for number, page in enumerate(client.paginate(params=params), start=1):
        yield (
            f"api:{url}?since={since or ''}#page={number}",
            [json.dumps(record) for record in page],
        )


def since(cursor: str | None, lookback: timedelta) -> str | None:
    """The value to ask the API for: the cursor moved back by the lookback, same format."""
    if not cursor:
        return None
    moment = datetime.fromisoformat(cursor) - lookback
    if "T" not in cursor:
        return moment.date().isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def newest(loaded: str | None, cursor: str | None) -> str | None:
    """The cursor after a load: the newest of the old cursor and the newest value among the
    records that came from the API (ISO text sorts like time; file records may use other
    formats and are left out)."""
    present = [value for value in (cursor, loaded) if value]
    return max(present) if present else None
