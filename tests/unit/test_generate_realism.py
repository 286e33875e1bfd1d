"""authml generate: the data behaves like an organisation, and each attack leaves its signature."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from authml.generate.attacks import SCENARIOS
from authml.generate.clock import holidays
from authml.generate.run import GenerateOptions, run


def _load(out: Path) -> tuple[list[dict], dict]:
    with open(out / "events.ndjson", encoding="utf-8") as handle:
        events = [json.loads(line) for line in handle]
    for doc in events:
        doc["_time"] = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
    return events, json.loads((out / "scenario.json").read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[list[dict], dict]:
    out = tmp_path_factory.mktemp("realism")
    run(GenerateOptions(users=40, days=14, seed=5, out_dir=out, scenarios=tuple(SCENARIOS), attack_days=3))
    return _load(out)


def _accounts(scenario: dict, kind: str) -> dict[str, dict]:
    return {a["name"]: a for a in scenario["accounts"] if a["kind"] == kind}


def _benign(events: list[dict]) -> list[dict]:
    return [doc for doc in events if "labels" not in doc]


def _scenario(events: list[dict], name: str) -> list[dict]:
    return [doc for doc in events if doc.get("labels", {}).get("authml_scenario") == name]


def _training(events: list[dict], scenario: dict) -> list[dict]:
    start = datetime.fromisoformat(scenario["attack_window"]["start"].replace("Z", "+00:00"))
    return [doc for doc in events if doc["_time"] < start]


def test_people_log_on_in_their_working_hours_in_their_own_time_zone(generated):
    events, scenario = generated
    staff = {n: a for n, a in _accounts(scenario, "user").items() if a["role"] == "staff"}
    inside = total = 0
    utc_hours_by_office: dict[str, Counter] = defaultdict(Counter)
    for doc in _benign(events):
        account = staff.get(doc["user"]["name"])
        if doc["event"]["code"] != "4624" or account is None:
            continue
        begin, end = account["working_hours_local"]
        local = doc["_time"].astimezone(ZoneInfo(account["time_zone"]))
        hour = local.hour + local.minute / 60
        total += 1
        inside += begin - 1.5 <= hour <= end + 1.5
        utc_hours_by_office[account["office"]][doc["_time"].hour] += 1
    assert total > 1000
    assert inside / total > 0.9
    # Singapore's working day is the night in UTC, New York's the afternoon: time zones are real.
    singapore, new_york = utc_hours_by_office["SGP"], utc_hours_by_office["NYC"]
    assert sum(c for h, c in singapore.items() if h < 12) > 0.8 * sum(singapore.values())
    assert sum(c for h, c in new_york.items() if h >= 12) > 0.8 * sum(new_york.values())


def test_weekends_are_quiet_for_people_but_not_for_service_accounts(generated):
    events, scenario = generated
    staff, services = _accounts(scenario, "user"), _accounts(scenario, "service")
    people_by_day, services_by_day = Counter(), Counter()
    for doc in _benign(events):
        if doc["event"]["code"] != "4624":
            continue
        weekend = doc["_time"].weekday() >= 5
        if doc["user"]["name"] in staff:
            people_by_day[weekend] += 1
        elif doc["user"]["name"] in services:
            services_by_day[weekend] += 1
    # 14 days from a Monday: 10 weekdays, 4 weekend days.
    assert people_by_day[True] / 4 < 0.2 * people_by_day[False] / 10
    assert services_by_day[True] / 4 > 0.7 * services_by_day[False] / 10


def test_service_accounts_work_through_the_night_from_their_own_server(generated):
    events, scenario = generated
    services = _accounts(scenario, "service")
    hosts = {h["name"]: h["ip"] for h in scenario["hosts"]}
    night = Counter()
    for doc in _benign(events):
        account = services.get(doc["user"]["name"])
        if account and doc["event"]["code"] == "4624":
            night[doc["_time"].hour < 6] += 1
            assert doc["source"]["ip"] == hosts[account["runs_on"]]
    assert night[True] > 0.2 * (night[True] + night[False])


def test_machine_accounts_and_every_logon_type_and_event_code_appear(generated):
    events, _ = generated
    benign = _benign(events)
    codes = Counter(doc["event"]["code"] for doc in benign)
    assert set(codes) == {"4624", "4625", "4634", "4648", "4672", "4768", "4769", "4771", "4776"}
    types = Counter(doc["winlog"]["logon"]["type"] for doc in benign if doc["event"]["code"] == "4624")
    assert {"Interactive", "Network", "Unlock", "RemoteInteractive", "CachedInteractive"} <= set(types)
    assert types["Network"] > types["Interactive"]
    assert any(doc["user"]["name"].endswith("$") and doc["host"]["name"].startswith("dc") for doc in benign)


def test_people_use_their_own_workstation_and_a_few_addresses(generated):
    events, scenario = generated
    staff = _accounts(scenario, "user")
    desk_logons, own_desk = Counter(), Counter()
    addresses: dict[str, set[str]] = defaultdict(set)
    for doc in _benign(events):
        account = staff.get(doc["user"]["name"])
        if account is None or doc["event"]["code"] != "4624":
            continue
        if doc["winlog"]["logon"]["type"] in ("Interactive", "Unlock", "CachedInteractive"):
            desk_logons[account["name"]] += 1
            own_desk[account["name"]] += doc["host"]["name"] == account["workstation"].lower()
        if doc["winlog"]["logon"]["type"] == "Network":
            addresses[account["name"]].add(doc["source"]["ip"])
    assert desk_logons and all(own_desk[name] == count for name, count in desk_logons.items())
    for name, seen in addresses.items():
        assert seen <= {staff[name]["ip"], *staff[name]["vpn_ips"]}, name


def test_mistyped_passwords_are_followed_by_a_success(generated):
    events, _ = generated
    benign = _benign(events)
    typos = [
        doc
        for doc in benign
        if doc["event"]["code"] == "4625" and doc["winlog"]["event_data"]["SubStatus"] == "0xc000006a"
    ]
    assert typos
    successes = defaultdict(list)
    for doc in benign:
        if doc["event"]["code"] == "4624":
            successes[(doc["user"]["name"], doc["host"]["name"])].append(doc["_time"])
    for doc in typos:
        later = [t for t in successes[(doc["user"]["name"], doc["host"]["name"])] if t >= doc["_time"]]
        assert later and (min(later) - doc["_time"]).total_seconds() < 300


def test_password_spray_is_one_source_many_users_failing(generated):
    events, _ = generated
    spray = _scenario(events, "password_spray")
    assert {doc["source"]["ip"] for doc in spray if "source" in doc} == {"172.16.250.23"}
    failed_users = {doc["user"]["name"] for doc in spray if doc["event"]["outcome"] == "failure"}
    assert len(failed_users) >= 10
    assert sum(doc["event"]["outcome"] == "failure" for doc in spray) > 0.9 * len(spray)
    assert (max(d["_time"] for d in spray) - min(d["_time"] for d in spray)).total_seconds() < 3 * 3600


def test_brute_force_is_one_account_many_failures_then_in(generated):
    events, _ = generated
    attack = sorted(_scenario(events, "brute_force"), key=lambda d: d["_time"])
    assert len({doc["user"]["name"] for doc in attack}) == 1
    assert sum(doc["event"]["code"] == "4625" for doc in attack) >= 50
    assert attack[-1]["event"]["outcome"] == "success" or any(
        d["event"]["code"] == "4624" for d in attack[-4:]
    )


def test_new_ip_at_an_unusual_hour_is_new_and_at_night_local_time(generated):
    events, scenario = generated
    attack = _scenario(events, "new_ip_unusual_hour")
    victim = attack[0]["user"]["name"]
    zone = _accounts(scenario, "user")[victim]["time_zone"]
    seen_before = {doc["source"].get("ip") for doc in _training(events, scenario) if "source" in doc}
    for doc in attack:
        assert doc["user"]["name"] == victim
        assert doc["_time"].astimezone(ZoneInfo(zone)).hour < 5
        if "source" in doc:
            assert doc["source"]["ip"] not in seen_before


def test_rdp_from_a_new_host_is_remote_interactive_where_the_account_never_was(generated):
    events, scenario = generated
    rdp = [
        d
        for d in _scenario(events, "rdp_new_host")
        if d["winlog"].get("logon", {}).get("type") == "RemoteInteractive"
    ]
    assert rdp
    victim, server = rdp[0]["user"]["name"], rdp[0]["host"]["name"]
    before = [d for d in _training(events, scenario) if d["user"]["name"] == victim]
    assert before and not any(d["host"]["name"] == server for d in before)
    assert not any(d["winlog"].get("logon", {}).get("type") == "RemoteInteractive" for d in before)


def test_runas_is_an_explicit_logon_with_someone_elses_account(generated):
    events, _ = generated
    explicit = [d for d in _scenario(events, "runas_explicit") if d["event"]["code"] == "4648"]
    assert explicit
    for doc in explicit:
        assert doc["user"]["effective"]["name"] != doc["user"]["name"]
        assert not doc["user"]["name"].endswith("$")


def test_the_dormant_account_is_silent_in_training_then_logs_on(generated):
    events, scenario = generated
    attack = _scenario(events, "dormant_account")
    sleeper = attack[0]["user"]["name"]
    assert sleeper in _accounts(scenario, "dormant")
    assert not any(d["user"]["name"] == sleeper for d in _training(events, scenario))
    assert any(d["event"]["code"] == "4624" for d in attack)


def test_kerberoasting_is_an_rc4_burst_from_an_account_that_uses_aes(generated):
    events, scenario = generated
    burst = _scenario(events, "kerberoasting")
    user = burst[0]["user"]["name"]
    services = {d["winlog"]["event_data"]["ServiceName"] for d in burst if d["event"]["code"] == "4769"}
    assert len(services) >= 10
    assert all(d["winlog"]["event_data"]["TicketEncryptionType"] == "0x17" for d in burst)
    assert (max(d["_time"] for d in burst) - min(d["_time"] for d in burst)).total_seconds() < 300
    usual = [
        d for d in _training(events, scenario) if d["user"]["name"] == user and d["event"]["code"] == "4769"
    ]
    assert usual and all(d["winlog"]["event_data"]["TicketEncryptionType"] == "0x12" for d in usual)


def test_offices_close_on_their_own_public_holidays(tmp_path):
    run(GenerateOptions(users=60, days=7, seed=2, out_dir=tmp_path, start=date(2025, 12, 22)))
    events, scenario = _load(tmp_path)
    staff = {n: a for n, a in _accounts(scenario, "user").items() if a["role"] == "staff"}
    desk = Counter()
    for doc in events:
        account = staff.get(doc["user"]["name"])
        if account and doc["event"]["code"] == "4624" and doc["winlog"]["logon"]["type"] != "Network":
            local_day = doc["_time"].astimezone(ZoneInfo(account["time_zone"])).date()
            desk[(account["office"], local_day)] += 1
    monday, christmas, boxing_day = date(2025, 12, 22), date(2025, 12, 25), date(2025, 12, 26)
    for office in ("NYC", "LON", "BER"):
        assert desk[(office, monday)] > 20, office
        # Only the odd person who also works at weekends logs on for a while.
        assert desk[(office, christmas)] <= 0.1 * desk[(office, monday)], office
    assert desk[("NYC", boxing_day)] > 0.5 * desk[("NYC", monday)]  # a working day in the US
    for office in ("LON", "BER"):
        assert desk[(office, boxing_day)] <= 0.1 * desk[(office, monday)], office


@pytest.mark.parametrize(
    ("year", "easter"), [(2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5))]
)
def test_easter_based_holidays_are_computed(year, easter):
    assert easter - timedelta(days=2) in holidays("UK", year)
    assert easter + timedelta(days=1) in holidays("DE", year)
    assert easter + timedelta(days=39) in holidays("DE", year)  # Ascension Day
    assert date(year, 11, 1) + timedelta(days=(3 - date(year, 11, 1).weekday()) % 7 + 21) in holidays(
        "US", year
    )
