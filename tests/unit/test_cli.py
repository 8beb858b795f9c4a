from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bgp_orchestrator.cli.main import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "migrate", "serve-config"):
        assert command in result.output


def test_serve_config_prints_valid_yaml() -> None:
    result = runner.invoke(app, ["serve-config"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert data["applications"][0]["import_path"] == "deployments.api:app"


def test_serve_config_local_redacts_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPO_DATABASE_URL", "postgresql://bgpo:s3cr3t-value@db:5432/bgpo")
    result = runner.invoke(app, ["serve-config", "--local"])
    assert result.exit_code == 0, result.output
    assert "s3cr3t-value" not in result.output
    env = yaml.safe_load(result.stdout)["applications"][0]["runtime_env"]["env_vars"]
    assert env["BGPO_DATABASE_URL"] == "postgresql://bgpo:***@db:5432/bgpo"


def test_invalid_serve_config_file_exits_1_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("applications: [{name: a, import_path: 42}]\n")
    result = runner.invoke(app, ["serve-config", "--file", str(path)])
    assert result.exit_code == 1
    assert "serve-config-invalid" in result.output
    assert "import_path" in result.output


def test_invalid_setting_exits_2_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPO_API_PORT", "99999")
    result = runner.invoke(app, ["serve-config", "--local"])
    assert result.exit_code == 2
    assert "BGPO_API_PORT" in result.output


def test_migrate_against_an_unreachable_database_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("BGPO_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 1
    assert "cannot reach PostgreSQL" in result.output
    assert "BGPO_DATABASE_URL" in result.output


# -- bgpo ingest / simulate, with the Kafka client replaced (no broker in unit tests) --


class FakeKafka:
    """Stands in for aiokafka's producer: keeps what it acknowledged; sends after the
    first ``fail_after`` fail with ``error``; ``on_send`` runs at every send."""

    def __init__(self) -> None:
        import aiokafka

        self.records: list[tuple[int, bytes]] = []
        self.letters: list[bytes] = []
        self.sends = 0
        self.fail_after: int | None = None
        self.error: BaseException = aiokafka.errors.MessageSizeTooLargeError()
        self.on_send: object = None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, partition: int | None = None) -> object:
        import asyncio

        self.sends += 1
        if callable(self.on_send):
            self.on_send(self)
        future = asyncio.get_running_loop().create_future()
        if self.fail_after is not None and self.sends > self.fail_after:
            future.set_exception(self.error)
        elif partition is None:
            self.letters.append(value)
            future.set_result(None)
        else:
            self.records.append((partition, value))
            future.set_result(None)
        return future

    def updates(self) -> list[object]:
        from bgp_orchestrator.bgp import codec

        return [u for _, value in self.records for u in codec.decode_batch(value)]


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> FakeKafka:
    import aiokafka

    from bgp_orchestrator.cli import ingest

    fake = FakeKafka()
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", lambda **kwargs: fake)

    async def topics(bootstrap: str, topic: str, dlq: str, partitions: int) -> int:
        return 4

    monkeypatch.setattr(ingest, "ensure_topics", topics)
    monkeypatch.setenv("BGPO_KAFKA_PUBLISH_BACKOFF_S", "0.001")
    monkeypatch.setenv("BGPO_KAFKA_BOOTSTRAP_SERVERS", "kafka.test:9092")
    return fake


def _feed(path: Path, lines: int) -> list[str]:
    import json

    text = []
    for i in range(lines):
        data = {
            "timestamp": 1_700_000_000 + i,
            "peer": f"192.0.2.{i % 7}",
            "peer_asn": "64500",
            "host": "rrc00",
            "type": "UPDATE",
            "path": [64500, 3356],
            "announcements": [
                {"next_hop": "192.0.2.1", "prefixes": [f"10.{i % 250}.{i // 250}.0/24"]}
            ],
        }
        text.append(json.dumps({"type": "ris_message", "data": data}))
    text[10] = "{broken"
    path.write_text("\n".join(text) + "\n")
    return text


def _prefixes_of_lines(text: list[str], first: int, last: int) -> set[str]:
    from bgp_orchestrator.bgp.parsers import rislive

    out: set[str] = set()
    for line in text[first - 1 : last]:
        if line.startswith("{broken"):
            continue
        out.update(u.prefix for u in rislive.parse_line(line))
    return out


def test_replay_publishes_the_file_and_sums_up(tmp_path: Path, kafka: FakeKafka) -> None:
    from bgp_orchestrator.ingest.deadletter import DeadLetter

    text = _feed(tmp_path / "feed.jsonl", 1200)
    result = runner.invoke(app, ["ingest", "replay", str(tmp_path / "feed.jsonl")])
    assert result.exit_code == 0, result.output
    assert {u.prefix for u in kafka.updates()} == _prefixes_of_lines(text, 1, 1200)  # type: ignore[attr-defined]
    assert [DeadLetter.decode(v).position for v in kafka.letters] == ["feed.jsonl:11"]
    assert "1,199" in result.output and "malformed-json: 1" in result.output


def test_a_failed_replay_says_where_to_resume_and_the_resume_completes_it(
    tmp_path: Path, kafka: FakeKafka
) -> None:
    import re

    path = tmp_path / "feed.jsonl"
    text = _feed(path, 3000)
    kafka.fail_after = 6  # a few records get through, then the broker refuses everything
    result = runner.invoke(app, ["ingest", "replay", str(path)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "kafka-publish-failed" in output and "kafka.test:9092" in output
    found = re.search(
        r"up to line ([\d,]+) of .*resume with: bgpo ingest replay (\S+) --start-at (\d+)", output
    )
    assert found, output
    acknowledged, resume = int(found.group(1).replace(",", "")), int(found.group(3))
    assert resume == acknowledged + 1 and found.group(2) == str(path)
    published = {u.prefix for u in kafka.updates()}  # type: ignore[attr-defined]
    assert _prefixes_of_lines(text, 1, acknowledged) <= published  # nothing acknowledged is lost
    assert acknowledged < 3000

    kafka.fail_after = None
    again = runner.invoke(app, ["ingest", "replay", str(path), "--start-at", str(resume)])
    assert again.exit_code == 0, again.output
    assert {u.prefix for u in kafka.updates()} >= _prefixes_of_lines(text, 1, 3000)  # type: ignore[attr-defined]


def test_ctrl_c_stops_after_what_was_sent_and_says_where_to_resume(
    tmp_path: Path, kafka: FakeKafka
) -> None:
    import os
    import re
    import signal

    path = tmp_path / "feed.jsonl"
    text = _feed(path, 6000)

    def interrupt(fake: FakeKafka) -> None:
        if fake.sends == 3:
            os.kill(os.getpid(), signal.SIGINT)

    kafka.on_send = interrupt
    result = runner.invoke(app, ["ingest", "replay", str(path), "--shard", "1/1"])
    assert result.exit_code == 130, result.output
    output = " ".join(result.output.split())
    found = re.search(
        r"interrupted: everything up to line ([\d,]+) .* "
        r"--shard 1/1 --shard-by peer --start-at (\d+)",
        output,
    )
    assert found, output
    acknowledged = int(found.group(1).replace(",", ""))
    assert acknowledged < 6000 and int(found.group(2)) == acknowledged + 1
    assert _prefixes_of_lines(text, 1, acknowledged) <= {u.prefix for u in kafka.updates()}  # type: ignore[attr-defined]


def test_replay_rejects_a_bad_shard(tmp_path: Path, kafka: FakeKafka) -> None:
    _feed(tmp_path / "feed.jsonl", 20)
    result = runner.invoke(
        app, ["ingest", "replay", str(tmp_path / "feed.jsonl"), "--shard", "3/2"]
    )
    assert result.exit_code == 2 and "invalid-shard" in result.output


def test_every_simulate_loop_round_is_stamped_with_the_current_time(kafka: FakeKafka) -> None:
    import time

    class Enough(Exception):
        pass

    def stop_in_the_third_round(fake: FakeKafka) -> None:
        if fake.sends > 3 * 2 * 4:  # ~2 records per round and partition
            raise Enough

    kafka.on_send = stop_in_the_third_round
    started = time.time()
    result = runner.invoke(
        app,
        [
            "simulate",
            "--peers",
            "40",
            "--prefixes",
            "300",
            "--rate",
            "0",
            "--duration",
            "0.005",
            "--incidents",
            "1",
            "--loop",
        ],
    )
    assert isinstance(result.exception, Enough), result.output
    stamps = [u.timestamp for u in kafka.updates()]  # type: ignore[attr-defined]
    assert len(stamps) > 1000  # more than one round of 500 updates
    assert min(stamps) >= started - 5  # no round went back to the 2023 default clock


def test_up_refuses_a_non_loopback_api_host_in_development(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BGPO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BGPO_API_HOST", "0.0.0.0")
    result = runner.invoke(app, ["up"])
    assert result.exit_code != 0
    out = " ".join(result.output.split())
    assert "development-api-not-loopback" in out
    assert "X-Tenant" in out and "loopback" in out
    assert not (tmp_path / "run").exists()  # refused before anything was started
