"""API pulls against a real local HTTP server: pagination, retry, resume, incremental cursor."""

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import duckdb
import pytest

from ingestion.channels import CHANNELS
from ingestion.landing import read_channel
from ingestion.pipeline import load_channel

CRM = CHANNELS["crm_customers"]
PAGE_SIZE = 50
START = datetime(2026, 9, 1)


class CrmApi:
    """A CRM export API: records since a cursor, 50 a page, linked by a `next` URL."""

    def __init__(self, customer_ids: list[str]):
        self.records = [
            self._record(customer_id, minute) for minute, customer_id in enumerate(customer_ids)
        ]
        self.requests: list[dict] = []
        self.failures: dict[int, int] = {}  # page -> how many more times it answers 500
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}/customers"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _record(customer_id: str, minute: int) -> dict:
        updated = (START + timedelta(minutes=minute)).isoformat() + "Z"
        return {
            "customer_id": customer_id,
            "email": f"{customer_id}@example.test",
            "updated_at": updated,
            "loyalty_tier": "silver",
        }

    def add(self, customer_ids: list[str], after_minutes: int) -> None:
        self.records += [
            self._record(customer_id, after_minutes + i)
            for i, customer_id in enumerate(customer_ids)
        ]

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = {
                    key: values[0] for key, values in parse_qs(urlparse(self.path).query).items()
                }
                page = int(query.get("page", 1))
                api.requests.append({"since": query.get("since"), "page": page})
                if api.failures.get(page, 0) > 0:
                    api.failures[page] -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                since = query.get("since", "")
                matching = sorted(
                    (record for record in api.records if record["updated_at"] >= since),
                    key=lambda record: record["updated_at"],
                )
                chunk = matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
                more = page * PAGE_SIZE < len(matching)
                body = {
                    "data": chunk,
                    "next": f"{api.url}?{urlencode({**query, 'page': page + 1})}" if more else None,
                }
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def crm_api(small_landing):
    customer_ids = sorted(set(read_channel(CRM, small_landing).records["customer_id"].to_pylist()))
    api = CrmApi(customer_ids[:230])
    yield api
    api.server.shutdown()


def _rows(db) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            f"select customer_id, updated_at from raw.{CRM.table} order by all"
        ).fetchall()


def test_pull_pages_through_a_failing_page_and_then_only_new_ones(tmp_path, crm_api):
    landing, db = tmp_path / "empty_landing", tmp_path / "dmp.duckdb"
    crm_api.failures = {2: 1}  # page 2 answers 500 once
    load_channel(CRM, landing, db, api_url=crm_api.url, api_lookback=timedelta(minutes=30))
    assert len(_rows(db)) == 230
    assert [request["page"] for request in crm_api.requests] == [1, 2, 2, 3, 4, 5]

    crm_api.requests.clear()
    crm_api.add([f"NEW{i:03d}" for i in range(20)], after_minutes=400)
    load_channel(CRM, landing, db, api_url=crm_api.url, api_lookback=timedelta(minutes=30))
    # since = newest loaded (minute 229) - 30 minutes: 31 overlapping records + 20 new = 2 pages
    assert crm_api.requests == [{"since": "2026-09-01T03:19:00Z", "page": page} for page in (1, 2)]
    rows = _rows(db)
    assert len(rows) == 250 and len(set(rows)) == 250


def test_a_pull_that_fails_for_good_loads_nothing_and_the_next_one_resumes(
    tmp_path, crm_api, monkeypatch
):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0")
    landing, db = tmp_path / "empty_landing", tmp_path / "dmp.duckdb"
    crm_api.failures = {3: 2}  # page 3 is down for both attempts
    with pytest.raises(Exception, match="500"):
        load_channel(CRM, landing, db, api_url=crm_api.url)
    assert not db.exists() or _table_missing_or_empty(db)

    load_channel(CRM, landing, db, api_url=crm_api.url)
    assert len(_rows(db)) == 230


def _table_missing_or_empty(db) -> bool:
    with duckdb.connect(str(db), read_only=True) as con:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = ?",
            [CRM.table],
        ).fetchone()[0]
        return not exists or con.execute(f"select count(*) from raw.{CRM.table}").fetchone()[0] == 0


def test_a_channel_without_api_cursor_refuses_an_api_url(tmp_path):
    with pytest.raises(ValueError, match="files only"):
        load_channel(
            CHANNELS["web_events"], tmp_path, tmp_path / "dmp.duckdb", api_url="http://127.0.0.1:9"
        )
