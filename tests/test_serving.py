"""Profiles on demand: `dmp profile` and the read API (`dmp serve`) on a real warehouse, read
from the published snapshot: lookups by every identifier kind, the API's answers and its
OpenAPI document (fuzzed by schemathesis), /healthz before any run, reads that a run does not
block, a failed run that keeps the last good snapshot, and an erasure that takes the person out
of serving at once."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
import schemathesis
from conftest import copy_of_small_warehouse, free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from activation.exports import PURPOSES
from dagster_dmp.warehouse_lock import warehouse_lock
from dmp_cli.commands import main
from serving.api import create_app
from serving.snapshot import POINTER, current, erase

REPO_ROOT = Path(__file__).resolve().parents[1]
READ_KEY, WRITE_KEY = "read-key-of-the-crm", "write-key-of-the-site"
READ_KEYS = {READ_KEY: "crm"}
KINDS = ["email_sha256", "phone_sha256", "user_id", "anonymous_id", "device_id", "customer_id"]
PARTS = {
    "person_id",
    "identifiers",
    "demographics",
    "rfm",
    "preferences",
    "engagement",
    "activity",
    "attributes",
    "interests",
    "consent",
    "segment",
    "propensity",
    "predicted_value",
    "recommendations",
    "audiences",
}


@pytest.fixture(scope="module")
def warehouse(small_warehouse_template, tmp_path_factory):
    """A copy of the session's small warehouse (its run published a snapshot), with the
    environment pointing at it: its path."""
    paths = copy_of_small_warehouse(small_warehouse_template, tmp_path_factory.mktemp("serving"))
    with pytest.MonkeyPatch.context() as patch:
        for name, path in paths.items():
            patch.setenv(name, str(path))
        patch.delenv("DMP_SERVING_DIR", raising=False)
        yield paths["DMP_DUCKDB_PATH"]


@pytest.fixture(scope="module")
def serving_dir(warehouse) -> Path:
    return warehouse.parent / "serving"


@pytest.fixture(scope="module")
def person(warehouse) -> dict[str, str]:
    """A person the graph knows by all six kinds, with the e-mail and phone as the CRM
    spells them (clear, before normalisation)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        person_id = con.execute(
            "select person_id from marts.person_identifiers where identifier_type in"
            " (select unnest(?::varchar[])) group by person_id"
            " having count(distinct identifier_type) = 6 order by person_id limit 1",
            [KINDS],
        ).fetchone()[0]
        known = dict(
            con.execute(
                "select identifier_type, min(identifier_value) from marts.person_identifiers"
                " where person_id = ? group by 1",
                [person_id],
            ).fetchall()
        )
        email = con.execute(
            "select min(email) from raw.crm_customers where sha256(lower(trim(email))) = ?",
            [known["email_sha256"]],
        ).fetchone()[0]
        phone = con.execute(
            "select min(phone) from raw.crm_customers"
            " where sha256(regexp_replace(phone, '[^0-9]', '', 'g')) = ?",
            [known["phone_sha256"]],
        ).fetchone()[0]
    assert email and phone
    return {"person_id": person_id, "email": email, "phone": phone, **known}


@pytest.fixture(scope="module")
def server(warehouse, serving_dir):
    """`dmp serve` in its own process, once /healthz answers."""
    process, port = start_server(os.environ, ready=200)
    yield port
    process.terminate()
    process.wait(timeout=10)


def start_server(environ, ready: int) -> tuple[subprocess.Popen, int]:
    """`dmp serve` on a free port, once /healthz answers `ready`."""
    port = free_port()
    env = {**environ, "DMP_READ_KEYS": f"crm:{READ_KEY}", "DMP_WRITE_KEYS": f"web:{WRITE_KEY}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dmp_cli.commands", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while get(port, "/healthz")[0] != ready:
        assert process.poll() is None and time.monotonic() < deadline, "dmp serve did not start"
        time.sleep(0.1)
    return process, port


def get(port: int, path: str, key: str | None = READ_KEY) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    except ConnectionRefusedError:
        return 0, {}


def profile_json(capsys, *args: str) -> dict:
    assert main(["profile", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_identifier_kind_finds_the_same_person(warehouse, person, capsys):
    email, phone = person["email"], person["phone"]
    lookups = [
        ["--person-id", person["person_id"]],
        ["--email", f"  {email.upper()} "],  # normalised as the warehouse does
        ["--phone", f" {phone} "],
        ["--identifier", "email_sha256", person["email_sha256"].upper()],
        *(["--identifier", kind, f" {person[kind]} "] for kind in KINDS[2:]),
    ]
    for lookup in lookups:
        assert profile_json(capsys, *lookup)["person_id"] == person["person_id"], lookup


def test_the_profile_holds_every_part_as_the_warehouse_has_it(warehouse, person, capsys):
    document = profile_json(capsys, "--person-id", person["person_id"])
    assert set(document) == PARTS
    assert set(document["consent"]) == set(PURPOSES)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        identifiers = con.execute(
            "select identifier_type, identifier_value from marts.person_identifiers"
            " where person_id = ? order by 1, 2",
            [person["person_id"]],
        ).fetchall()
        monetary, consent_ads, last_seen = con.execute(
            "select monetary, coalesce(consent_ads, false), cast(last_seen_at as varchar)"
            " from marts.person_profiles where person_id = ?",
            [person["person_id"]],
        ).fetchone()
        interests = con.execute(
            "select category, interest_score from marts.person_interests where person_id = ?"
            " order by interest_rank, category",
            [person["person_id"]],
        ).fetchall()
        segment = con.execute(
            "select segment_name from ml.person_segments where person_id = ?",
            [person["person_id"]],
        ).fetchone()
        recommended = con.execute(
            "select product_id from ml.recommendations where person_id = ? order by rank",
            [person["person_id"]],
        ).fetchall()
        audiences = con.execute(
            "select audience from audiences.audience_members where person_id = ? order by 1",
            [person["person_id"]],
        ).fetchall()
    assert [(i["type"], i["value"]) for i in document["identifiers"]] == identifiers
    assert document["rfm"]["monetary"] == pytest.approx(monetary)
    assert document["consent"]["ads"] is consent_ads
    assert document["activity"]["last_seen_at"] == last_seen
    assert [(i["category"], pytest.approx(i["score"])) for i in document["interests"]] == (
        interests
    )
    assert document["segment"]["segment_name"] == segment[0]
    assert [(r["product_id"],) for r in document["recommendations"]] == recommended
    assert [(name,) for name in document["audiences"]] == audiences
    assert recommended and document["demographics"] and document["propensity"] is not None


def test_the_text_profile_and_an_unknown_person(warehouse, person, capsys):
    assert main(["profile", "--email", person["email"]]) == 0
    out = capsys.readouterr().out
    assert f"person_id: {person['person_id']}" in out and "consent:" in out
    assert main(["profile", "--email", "nobody@example.com"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["dmp profile: error: not found: no person holds this email"]
    assert main(["profile", "--identifier", "shoe_size", "44"]) == 1
    assert "unknown identifier type 'shoe_size'" in capsys.readouterr().err


def test_the_api_answers_with_reasons(server, person):
    person_id = person["person_id"]
    status, body = get(server, "/healthz", key=None)
    assert status == 200 and body["persons"] > 100 and 0 <= body["age_seconds"] < 3600
    status, body = get(server, f"/v1/profiles/{person_id}")
    assert status == 200 and set(body) == PARTS and body["person_id"] == person_id
    for key in (None, "wrong-key", WRITE_KEY):
        status, body = get(server, f"/v1/profiles/{person_id}", key=key)
        assert status == 401 and body["detail"], key
    assert get(server, "/v1/profiles/p_nobody") == (404, {"detail": "no person 'p_nobody'"})
    email = quote(f" {person['email'].upper()}")
    status, body = get(server, f"/v1/profiles?identifier_type=email&value={email}")
    assert status == 200 and body["person_id"] == person_id
    status, body = get(
        server, f"/v1/profiles?identifier_type=device_id&value={person['device_id']}"
    )
    assert status == 200 and body["person_id"] == person_id
    status, body = get(server, f"/v1/persons/{person_id}/recommendations?limt=3")
    assert status == 422 and body["detail"][0]["loc"] == ["query", "limt"]
    for bad in ("identifier_type=shoe_size&value=1", "identifier_type=email", ""):
        status, body = get(server, f"/v1/profiles?{bad}")
        assert status == 422 and body["detail"][0]["loc"][0] == "query", bad
    status, body = get(server, f"/v1/persons/{person_id}/recommendations?limit=3")
    assert status == 200
    assert [r["rank"] for r in body["recommendations"]] == [1, 2, 3]
    assert get(server, f"/v1/persons/{person_id}/recommendations?limit=0")[0] == 422
    assert get(server, "/v1/persons/p_nobody/recommendations")[0] == 404


def test_audience_members_page_through_the_consented_members_only(warehouse, server):
    status, body = get(server, "/v1/audiences")
    assert status == 200 and body["audiences"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for audience in body["audiences"]:
            for purpose, column in PURPOSES.items():
                consented = {
                    row[0]
                    for row in con.execute(
                        "select m.person_id from audiences.audience_members as m join"
                        f" marts.person_profiles as p using (person_id) where m.audience = ?"
                        f" and p.{column}",
                        [audience["name"]],
                    ).fetchall()
                }
                assert audience["consented"][purpose] == len(consented)
                pages, cursor = [], ""
                while cursor is not None:
                    status, page = get(
                        server,
                        f"/v1/audiences/{audience['name']}/members?purpose={purpose}"
                        f"&limit=7&cursor={cursor}",
                    )
                    assert status == 200 and len(page["members"]) <= 7
                    pages.append(page["members"])
                    cursor = page["next_cursor"]
                members = [member for page in pages for member in page]
                assert members == sorted(consented), (audience["name"], purpose)
    assert get(server, "/v1/audiences/no_such_audience/members?purpose=ads")[0] == 404
    assert get(server, "/v1/audiences/x/members")[0] == 422  # the purpose is required
    assert get(server, "/v1/audiences/x/members?purpose=sms")[0] == 422


def test_the_openapi_document_describes_every_route(server):
    status, schema = get(server, "/openapi.json", key=None)
    assert status == 200 and schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/healthz",
        "/v1/profiles/{person_id}",
        "/v1/profiles",
        "/v1/persons/{person_id}/recommendations",
        "/v1/audiences",
        "/v1/audiences/{name}/members",
    }
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    profile = schema["paths"]["/v1/profiles/{person_id}"]["get"]
    assert {"200", "401", "404", "422"} <= set(profile["responses"])


@pytest.fixture(scope="module")
def api_schema(serving_dir):
    """The read API in-process (ASGI) over the module's published snapshot, as schemathesis
    loads it from its own /openapi.json."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(serving_dir, READ_KEYS))


@pytest.fixture(scope="module")
def person_ids(warehouse) -> list[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select person_id from marts.person_profiles").fetchall()
        return [row[0] for row in rows]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzed_requests_from_the_openapi_document_get_documented_answers(
    api_schema, person_ids, mode
):
    """Every operation, with values schemathesis makes from the schema (valid ones, then
    invalid ones; known persons half the time), answers no 5xx and only what the document
    declares: status codes, content types, headers and bodies that match their schemas; a
    missing or wrong key gets 401 whatever else is wrong."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 6

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (operation.path_parameters or operation.query):
            continue  # no parameter to make invalid

        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def answers_as_documented(case, data):
            if "person_id" in (case.path_parameters or {}) and data.draw(st.booleans()):
                case.path_parameters["person_id"] = data.draw(st.sampled_from(person_ids))
            key = data.draw(st.sampled_from([READ_KEY, READ_KEY, "guess", None]))
            case.headers = {"Authorization": f"Bearer {key}"} if key else {}
            # The key is chosen here, not generated: its check is the assertion below.
            response = case.call_and_validate(excluded_checks=[checks.ignored_auth])
            if key != READ_KEY and case.operation.path != "/healthz":
                assert response.status_code == 401, case.as_curl_command()

        answers_as_documented()


def test_a_run_never_blocks_reads_and_a_failed_run_keeps_the_last_snapshot(
    warehouse, serving_dir, server, person, tmp_path, monkeypatch
):
    before = current(serving_dir)
    answers: list[tuple[int, float]] = []
    stop = threading.Event()

    def read_while_running() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            status, _ = get(server, f"/v1/profiles/{person['person_id']}")
            answers.append((status, time.perf_counter() - started))

    # An audience definition the run cannot compile: the audiences step fails, so the
    # snapshot downstream of it is not published.
    broken = tmp_path / "audiences"
    broken.mkdir()
    (broken / "broken.yml").write_text("audiences:\n  - name: x\n    rule: {trait: no_such}\n")
    monkeypatch.setenv("DMP_AUDIENCES_DIR", str(broken))
    selection = "key:audiences/audience_members or key:serving/profile_snapshot"
    reader = threading.Thread(target=read_while_running)
    reader.start()
    try:
        assert main(["run", "--select", selection]) == 1
        during_failed_run = len(answers)
        monkeypatch.delenv("DMP_AUDIENCES_DIR")
        assert main(["run", "--select", selection]) == 0
    finally:
        stop.set()
        reader.join()
    assert during_failed_run > 10 and len(answers) > during_failed_run
    assert {status for status, _ in answers} == {200}
    after_failed = answers[:during_failed_run]
    assert max(seconds for _, seconds in after_failed) < 2

    published = current(serving_dir)
    assert published.snapshot != before.snapshot and published.label != before.label
    status, health = get(server, "/healthz", key=None)
    assert status == 200 and health["snapshot"] == published.snapshot
    assert len(list(serving_dir.glob("snapshot-*.duckdb"))) == 2  # the last two are kept


def test_reads_answer_while_a_writer_holds_the_warehouse(warehouse, server, person, capsys):
    """The warehouse locked and open for writing, as during a run: serving does not touch it."""
    with (
        warehouse_lock(warehouse, "a test standing in for a run"),
        duckdb.connect(str(warehouse)),
    ):
        assert get(server, f"/v1/profiles/{person['person_id']}")[0] == 200
        assert (
            profile_json(capsys, "--email", person["email"])["person_id"] == (person["person_id"])
        )


def test_an_erased_person_leaves_serving_at_once(warehouse, serving_dir, server, person, capsys):
    person_id = person["person_id"]
    assert erase(serving_dir, [person_id], label="erasure") is not None
    assert get(server, f"/v1/profiles/{person_id}")[0] == 404
    assert get(server, f"/v1/persons/{person_id}/recommendations")[0] == 404
    assert main(["profile", "--email", person["email"]]) == 1
    assert "not found" in capsys.readouterr().err
    # No older snapshot still holds them.
    assert [path.name for path in serving_dir.glob("snapshot-*.duckdb")] == [
        json.loads((serving_dir / POINTER).read_text())["snapshot"]
    ]
    _, audiences = get(server, "/v1/audiences")
    for audience in audiences["audiences"]:
        status, page = get(
            server, f"/v1/audiences/{audience['name']}/members?purpose=email&limit=1000"
        )
        assert status == 200 and person_id not in page["members"]


def test_before_any_run_and_without_read_keys_the_commands_say_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DMP_DUCKDB_PATH", str(tmp_path / "dmp.duckdb"))
    monkeypatch.delenv("DMP_SERVING_DIR", raising=False)
    assert main(["profile", "--person-id", "p_1"]) == 1
    assert "no run has published profiles yet" in capsys.readouterr().err
    process, port = start_server(
        {**os.environ, "DMP_DUCKDB_PATH": str(tmp_path / "dmp.duckdb")}, 503
    )
    try:
        status, body = get(port, "/healthz", key=None)
        assert status == 503 and "no run has published profiles yet" in body["detail"]
        assert get(port, "/v1/profiles/p_1")[0] == 503
    finally:
        process.terminate()
        process.wait(timeout=10)
    monkeypatch.setenv("DMP_READ_KEYS", "")
    assert main(["serve", "--port", str(free_port())]) == 1
    assert "no read keys: set DMP_READ_KEYS" in capsys.readouterr().err
    monkeypatch.setenv("DMP_READ_KEYS", "crm:shared-key")
    monkeypatch.setenv("DMP_WRITE_KEYS", "web:shared-key")
    assert main(["serve", "--port", str(free_port())]) == 1
    assert "the key of crm is also a write key" in capsys.readouterr().err
