"""The SQL that selects what the per-event features are computed from: raw events plus the
pivoted feature tables.

Pure: these functions return SQL text; `authml.embedded.feature_reader` runs it and
`authml.train.point_in_time` computes the point-in-time columns from the rows it returns.

Two kinds of context describe an event, and neither looks into its future:
- history, from the feature tables that the transforms in ``es_assets/transforms/`` define, taken
  only from complete hourly buckets *before* the event's own bucket (as of ``bucket < event
  bucket``), or from entity tables through ``first_seen`` (a minimum, which an event after this
  one cannot move);
- the trailing hour, from the raw events themselves, up to and including this event (the event's
  own hour bucket is not complete yet, so its pivoted row would contain later events).

The definition these must match, column for column, is the single query kept frozen in
tests/unit/feature_sql_reference.py. Work follows the window, not the store: raw events are read
from an hour before the window on, earlier ones only counted per account; hourly history before
the window's first hour is collapsed per account, and read only for accounts the window holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from authml.assets import load_asset
from authml.errors import InputError

USER_HOURLY = "authml-features-user-hourly-v1"
USER_SOURCE_IP = "authml-features-user-source-ip-v1"
USER_HOST = "authml-features-user-host-v1"
SOURCE_IP_HOURLY = "authml-features-source-ip-hourly-v1"
FEATURE_TABLES = (USER_HOURLY, USER_SOURCE_IP, USER_HOST, SOURCE_IP_HOURLY)

# The transform whose source query decides which events are authentication events.
EVENT_FILTER_TRANSFORM = ("transforms", "authml-user-hourly")

# Winlogbeat writes winlog.logon.type as a name; raw 4624/4625 carry the number in event_data.
LOGON_TYPE_NUMBERS = {
    "Interactive": 2,
    "Network": 3,
    "Batch": 4,
    "Service": 5,
    "Unlock": 7,
    "NetworkCleartext": 8,
    "NewCredentials": 9,
    "RemoteInteractive": 10,
    "CachedInteractive": 11,
}

# Loopback and placeholder addresses: many machines share them, so they are no source to count by.
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1", "-", "::ffff:127.0.0.1", "0.0.0.0")
_LOOPBACK = ", ".join(f"'{a}'" for a in LOOPBACK_ADDRESSES)

# The ECS identity a score row carries (authml/score/records.py IDENTITY_FIELDS, plus the event
# id and the account key), as columns of event_rows_sql(..., with_identity=True): field -> column.
# Scoring reads them in the scan that reads the features instead of joining the events again.
IDENTITY_COLUMNS = {
    "event_id": "_id",
    "@timestamp": "ts",
    "user.name": "user_name",
    "user.domain": "user.domain",
    "source.ip": "source_ip",
    "host.name": "host_name",
    "event.code": "event_code",
    "winlog.logon.type": "logon_type",
    "winlog.computer_name": "winlog.computer_name",
    "winlog.channel": "winlog.channel",
    "winlog.record_id": "winlog.record_id",
    "event.id": "event.id",
    # events stored before authml.user_key existed fall back to the same rule (authml/ecs.py user_key)
    "user_key": "user_key",
}
_IDENTITY_ONLY = {
    "user.domain": '"user.domain"',
    "winlog.computer_name": '"winlog.computer_name"',
    "winlog.channel": '"winlog.channel"',
    "winlog.record_id": '"winlog.record_id"',
    "event.id": '"event.id"',
    "user_key": """coalesce("authml.user_key", nullif(lower(trim("user.name")), ''))""",
}

# Raw per-event columns the query returns, in order (beyond the identity columns).
RAW_COLUMNS = (
    "_id",
    "ts",
    "user_name",
    "source_ip",
    "host_name",
    "event_code",
    "failed",
    "logon_type_number",
    "logon_type",
    "enc_type",
    "service_name",
    "no_preauth",
    "local_hour",
    "local_dow",
    "scenario",
    "credential_target",
    "user_events_before",
    "user_active_hours_before",
    "hours_since_last_active",
    "max_hosts_per_hour_before",
    "max_services_per_hour_before",
    "hour_weight_before",
    "logon_type_events_before",
    "logon_typed_events_before",
    "enc_type_events_before",
    "enc_typed_events_before",
    "source_failed_users_prev_hour",
    "source_ip_first_seen",
    "host_first_seen",
    "user_ip_events_before",
    "user_code_events_before",
    "user_raw_events_before",
    "user_failures_1h",
    "source_failures_1h",
    "source_failed_users_1h",
    "services_1h",
    "hosts_1h",
    "hours_observed",
    "host_failed_users_1h",
)
# Beside a string column of RAW_COLUMNS the rows may hold each row's code ("<column>:code", -1 for
# NULL) and the distinct values the codes index ("<column>:distinct"), as the embedded reader
# gives them: what is decided about a value is then decided once per distinct value, with no
# Python work per row (authml.train.matrix).
CODE_SUFFIX, DISTINCT_SUFFIX = ":code", ":distinct"


@dataclass(frozen=True, slots=True)
class FeatureWindow:
    """Which events become rows: ``start <= @timestamp < end`` (None = unbounded). History before
    ``start`` is still used as context."""

    start: datetime | None = None
    end: datetime | None = None
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        validate_time_zone(self.time_zone)
        if self.start and self.end and self.start >= self.end:
            raise InputError(f"the feature window starts ({self.start}) at or after its end ({self.end})")


def validate_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC"
        ) from exc
    return name


def authentication_event_codes() -> list[str]:
    """The event codes the feature transforms aggregate, read from the transform asset."""
    body = load_asset(*EVENT_FILTER_TRANSFORM)
    for clause in body["source"]["query"]["bool"]["filter"]:
        codes = clause.get("terms", {}).get("event.code")
        if codes:
            return [str(code) for code in codes]
    raise InputError("the transform authml-user-hourly has no event.code terms filter to select events")


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ts(value: datetime) -> str:
    return f"TIMESTAMP {_lit(value.replace(tzinfo=None).isoformat(sep=' '))}"


def _local(expression: str, time_zone: str) -> str:
    # A naive TIMESTAMP holds UTC; read it as UTC, then show it on the local wall clock. In UTC
    # the wall clock is the timestamp itself, and ICU's conversion costs 0.6 s per million rows.
    if time_zone == "UTC":
        return expression
    return f"timezone({_lit(time_zone)}, timezone('UTC', {expression}))"


def _logon_type_number(expression: str) -> str:
    cases = " ".join(f"WHEN {_lit(name)} THEN {number}" for name, number in LOGON_TYPE_NUMBERS.items())
    return f"COALESCE(CASE {expression} {cases} END, TRY_CAST({expression} AS INTEGER))"


def _history(
    name: str,
    keys: str,
    columns: dict[str, str],
    rows: str,
    collapse_before: str | None,
    collapsed: tuple[str, str] | None = None,
) -> str:
    """CTE ``name``: the rows of ``rows`` that a running aggregate per ``keys`` walks in bucket order.
    Rows before the hour ``collapse_before`` are collapsed into one row per key at their latest
    bucket (``columns`` maps each column to the aggregate that collapses it): every event to
    score is at or after that hour, so it sees those rows only through their totals, and the
    running values from then on stay the same while far fewer rows are read. ``collapsed``:
    (a table that holds those collapsed rows already, the accounts to take from it)."""
    names = ", ".join(columns)
    if collapse_before is None:
        return f"{name} AS (SELECT {keys}, bucket, {names} FROM {rows})"
    if collapsed is not None:
        table, accounts = collapsed
        return f"""{name} AS (
  SELECT {keys}, bucket, {names} FROM {rows} WHERE bucket >= {collapse_before}
  UNION ALL
  SELECT {keys}, bucket, {names} FROM {_q(table)} WHERE user_name IN {accounts}
)"""
    aggregates = ", ".join(f"{aggregate} AS {column}" for column, aggregate in columns.items())
    return f"""{name} AS (
  SELECT {keys}, bucket, {names} FROM {rows} WHERE bucket >= {collapse_before}
  UNION ALL
  SELECT {keys}, max(bucket) AS bucket, {aggregates} FROM {rows} WHERE bucket < {collapse_before} GROUP BY {keys}
)"""


def authentication_filter_sql(codes: list[str]) -> str:
    """The SQL condition that selects the authentication events features are computed from."""
    code_list = ", ".join(_lit(code) for code in codes)
    return f'"user.name" IS NOT NULL AND "@timestamp" IS NOT NULL AND "event.code" IN ({code_list})'


def window_quantiles_sql(window: FeatureWindow, *, codes: list[str], fractions: list[float]) -> str:
    """One row: how many authentication events the window holds, and the times at these
    fractions of them (``quantile_disc``: each an event's own time), to split the window into
    parts of about equal size."""
    lower = f'AND "@timestamp" >= {_ts(window.start)}' if window.start else ""
    upper = f'AND "@timestamp" < {_ts(window.end)}' if window.end else ""
    quantiles = (
        f'quantile_disc("@timestamp", [{", ".join(repr(float(f)) for f in fractions)}])'
        if fractions
        else "CAST([] AS TIMESTAMP[])"
    )
    return (
        f"SELECT count(*), {quantiles} FROM events WHERE {authentication_filter_sql(codes)} {lower} {upper}"
    )


def event_rows_sql(
    window: FeatureWindow,
    *,
    codes: list[str],
    with_labels: bool = False,
    prior_counts: str | None = None,
    with_identity: bool = False,
    ordered: bool = True,
) -> str:
    """The authentication events the window's rows need, in (time, id) order: the window's own
    (``in_window``) and, before them, the hour the trailing-hour counts reach back into. Each
    with its own fields, the lookups that need no ordering (previous hour of its source, first
    sightings, days observed) and, per account, how many events came before those rows
    (``prior_*``: one grouped scan, where a running count over the whole history would sort it).
    `authml.train.point_in_time` computes the rest.

    ``prior_counts`` names a table of (user_name, source_ip, event_code, n) that already holds
    those earlier events' counts (rows with the same key add up): for a database that holds
    only the events from an hour before the window on (a cluster's, read into a scratch copy),
    or a part of a window whose counts were made with the other parts' (`part_context_sql`);
    without it they are counted from ``events``. ``with_identity`` adds the ECS identity
    columns of IDENTITY_COLUMNS that no feature needs. ``ordered=False`` leaves the (time, id)
    order to the caller (`authml.embedded.feature_reader.time_order`)."""
    tz = window.time_zone
    start, end = window.start, window.end
    auth_filter = authentication_filter_sql(codes)
    upper = f'AND "@timestamp" < {_ts(end)}' if end else ""
    context = f'AND "@timestamp" >= {_ts(start)} - INTERVAL 1 HOUR' if start else ""
    label = "document->>'$.labels.authml_scenario'" if with_labels else "CAST(NULL AS VARCHAR)"
    uh, usi, uho, sih = (_q(t) for t in FEATURE_TABLES)
    identity_own = "".join(f",\n         {sql} AS {_q(name)}" for name, sql in _IDENTITY_ONLY.items())
    identity_out = "".join(f", ev.{_q(name)}" for name in _IDENTITY_ONLY)
    if not with_identity:
        identity_own = identity_out = ""
    if start:
        window_users = f"(SELECT DISTINCT user_name FROM ev WHERE ts >= {_ts(start)})"
        if prior_counts is None:
            counted = f"""SELECT "user.name" AS user_name, "source.ip" AS source_ip, "event.code" AS event_code, count(*) AS n
  FROM events
  WHERE {auth_filter} AND "@timestamp" < {_ts(start)} - INTERVAL 1 HOUR
    AND "user.name" IN {window_users}
  GROUP BY ALL"""
        else:
            # every account's counts: the joins below take the window's accounts (a filter on them
            # here read the window's events a second time)
            counted = f"SELECT user_name, source_ip, event_code, n FROM {_q(prior_counts)}"
        prior = f""",
prior AS (
  {counted}
),
prior_ip AS (SELECT user_name, source_ip, sum(n) AS n FROM prior GROUP BY ALL),
prior_code AS (SELECT user_name, event_code, sum(n) AS n FROM prior GROUP BY ALL),
prior_user AS (SELECT user_name, sum(n) AS n FROM prior GROUP BY ALL)"""
        prior_columns = (
            f"ev.ts >= {_ts(start)} AS in_window, CAST(coalesce(pi.n, 0) AS BIGINT) AS prior_ip, "
            "CAST(coalesce(pc.n, 0) AS BIGINT) AS prior_code, CAST(coalesce(pu.n, 0) AS BIGINT) AS prior_user"
        )
        prior_joins = """LEFT JOIN prior_ip pi ON pi.user_name = ev.user_name AND pi.source_ip IS NOT DISTINCT FROM ev.source_ip
LEFT JOIN prior_code pc ON pc.user_name = ev.user_name AND pc.event_code = ev.event_code
LEFT JOIN prior_user pu ON pu.user_name = ev.user_name"""
    else:
        prior = ""
        prior_columns = "true AS in_window, 0 AS prior_ip, 0 AS prior_code, 0 AS prior_user"
        prior_joins = ""
    # the source's previous hour: only the hours the window's rows can ask for, where the join
    # built its table from every hour of every source
    sih_bounds = (
        [f"{_q('@timestamp')} >= date_trunc('hour', {_ts(start)}) - INTERVAL 2 HOUR"] if start else []
    )
    sih_bounds += [f"{_q('@timestamp')} < {_ts(end)}"] if end else []
    sih_rows = f"(SELECT * FROM {sih} WHERE {' AND '.join(sih_bounds)})" if sih_bounds else sih
    return f"""
WITH ev AS (
  SELECT _id, "@timestamp" AS ts, "user.name" AS user_name, "source.ip" AS source_ip,
         "host.name" AS host_name, "event.code" AS event_code,
         coalesce("event.outcome" = 'failure', false) AS failed,
         coalesce({_logon_type_number('"winlog.logon.type"')},
                  TRY_CAST("winlog.event_data.LogonType" AS INTEGER)) AS logon_type_number,
         "winlog.logon.type" AS logon_type,
         "winlog.event_data.TicketEncryptionType" AS enc_type,
         "winlog.event_data.ServiceName" AS service_name,
         ("event.code" = '4768' AND "winlog.event_data.PreAuthType" = '0') AS no_preauth,
         date_trunc('hour', "@timestamp") AS bucket,
         hour({_local('"@timestamp"', tz)}) AS local_hour,
         isodow({_local('"@timestamp"', tz)}) - 1 AS local_dow,
         {label} AS scenario,
         CASE WHEN "event.code" = '4648'
              THEN coalesce("user.target.name", "winlog.event_data.TargetUserName") END AS credential_target{identity_own}
  FROM events
  WHERE {auth_filter} {upper} {context}
){prior}
SELECT ev._id, ev.ts, ev.user_name, ev.source_ip, ev.host_name, ev.event_code, ev.failed,
       ev.logon_type_number, ev.logon_type, ev.enc_type, ev.service_name, coalesce(ev.no_preauth, false) AS no_preauth,
       ev.local_hour, ev.local_dow, ev.scenario, ev.credential_target, ev.bucket,
       CASE WHEN ev.source_ip IN ({_LOOPBACK}) THEN 0
            ELSE coalesce(sp.{_q("failed_logons.users")}, 0) END AS source_failed_users_prev_hour,
       CAST(ui.first_seen AS TIMESTAMP) AS source_ip_first_seen,
       CAST(uo.first_seen AS TIMESTAMP) AS host_first_seen,
       date_diff('hour', (SELECT min(h.{_q("@timestamp")}) FROM {uh} h), ev.bucket) AS hours_observed,
       {prior_columns}{identity_out}
FROM ev
{prior_joins}
LEFT JOIN {sih_rows} sp ON sp.{_q("source.ip")} = ev.source_ip AND sp.{_q("@timestamp")} = ev.bucket - INTERVAL 1 HOUR
LEFT JOIN {usi} ui ON ui.{_q("user.name")} = ev.user_name AND ui.{_q("source.ip")} = ev.source_ip
LEFT JOIN {uho} uo ON uo.{_q("user.name")} = ev.user_name AND uo.{_q("host.name")} = ev.host_name
{"ORDER BY ev.ts, ev._id" if ordered else ""}
"""


# The kinds of hourly history `history_sql` returns, and the user-hourly terms column of each
# kind counted per term.
TERM_HISTORY_COLUMNS = {"logon_types": "logon_types", "encryption_types": "ticket_encryption_types"}
HISTORY_KINDS = ("hourly", "hour_of_day", *TERM_HISTORY_COLUMNS)


def hour_spread_sql(rows: str, time_zone: str) -> str:
    """Rows (user_name, bucket, target_hour, weighted) of ``rows`` (user_name, bucket, events): each
    bucket's events spread over its local hour and both neighbours, a smoothed hour-of-day profile."""
    return f"""SELECT user_name, bucket, (hour({_local("bucket", time_zone)}) + s.shift + 24) % 24 AS target_hour,
         CAST(events * s.weight AS DOUBLE) AS weighted
  FROM {rows}, (VALUES (-1, 0.25), (0, 0.5), (1, 0.25)) s(shift, weight)"""


def term_rows_sql(rows: str, column: str) -> str:
    """Rows (user_name, bucket, term, n) of a terms column of ``rows``: document counts, a
    MAP(VARCHAR, BIGINT) in the store, JSON in a scratch copy of a cluster's, both cast to the
    store's type (free for the store's own maps, where a cast to DOUBLE rebuilt every map: 0.2 s
    per 400,000 hourly rows) and the counts made DOUBLE after."""
    return f"""SELECT user_name, bucket, entry.key AS term, CAST(entry.value AS DOUBLE) AS n
  FROM (SELECT user_name, bucket, unnest(map_entries(CAST({_q(column)} AS MAP(VARCHAR, BIGINT)))) AS entry
        FROM {rows})"""


def history_sql(
    window: FeatureWindow, *, collapsed: dict[str, str] | None = None, window_accounts: str | None = None
) -> dict[str, str]:
    """The hourly history the window's events look back into, from the user-hourly feature table:
    only complete hours before an event count (`authml.train.point_in_time.HourlyHistory`), so
    rows at or after the window's end are left out, and so are accounts without events in the
    window; rows before the window's first hour are collapsed per account (and hour of day, and
    term). Keys: ``hourly`` (events, active hours, hosts, services), ``hour_of_day`` (each
    bucket's events spread over its local hour and both neighbours: a smoothed profile),
    ``logon_types`` and ``encryption_types`` (count per term).

    ``collapsed``: for a window with a start, the tables (by key) that hold those collapsed rows
    of every account already (`authml.train.part_context_sql`): the queries read the rows from
    the window's first hour on, and take the rest from there. ``window_accounts``, for a window
    with a start: a table (column ``user_name``) of the accounts with authentication events in
    the window (the caller has them from `event_rows_sql`'s rows)."""
    tz = window.time_zone
    start, end = window.start, window.end
    if collapsed is not None and start is None:
        raise ValueError("collapsed rows are those before a window's start; this window has none")
    if start and window_accounts is None:
        raise ValueError("a window with a start needs the table of its accounts (window_accounts)")
    uh = _q(USER_HOURLY)
    filters = []
    accounts = ""
    if end:
        filters.append(f"h.{_q('@timestamp')} < {_ts(end)}")
    if start:
        accounts = f"(SELECT user_name FROM {_q(window_accounts)})"
        filters.append(f"h.{_q('user.name')} IN {accounts}")
    collapse_before = f"date_trunc('hour', {_ts(start)})" if start else None
    if collapsed is not None:
        filters.append(f"h.{_q('@timestamp')} >= {collapse_before}")
    where = f"WHERE {' AND '.join(filters)}" if filters else ""
    raw = f"""uh_raw AS (
  SELECT h.{_q("user.name")} AS user_name, h.{_q("@timestamp")} AS bucket, h.events, 1 AS hours,
         h.hosts, h.services, h.logon_types, h.ticket_encryption_types
  FROM {uh} h {where}
)"""

    def taken(kind: str) -> tuple[str, str] | None:
        return None if collapsed is None else (collapsed[kind], accounts)

    hourly = _history(
        "hist",
        "user_name",
        {"events": "sum(events)", "hours": "count(*)", "hosts": "max(hosts)", "services": "max(services)"},
        "uh_raw",
        collapse_before,
        taken("hourly"),
    )
    # Rows before the window's first hour are summed per account and local hour before they are
    # spread over the neighbouring hours (three rows each): the same totals, a third of the rows.
    hour_source = "uh_raw"
    if collapse_before is not None and collapsed is None:
        hour_source = f"""(SELECT user_name, bucket, events FROM uh_raw WHERE bucket >= {collapse_before}
     UNION ALL
     SELECT user_name, max(bucket), sum(events) FROM uh_raw WHERE bucket < {collapse_before}
     GROUP BY user_name, hour({_local("bucket", tz)}))"""
    hour_rows = f"hod_rows AS (\n  {hour_spread_sql(hour_source, tz)}\n)"
    hour_of_day = _history(
        "hist",
        "user_name, target_hour",
        {"weighted": "sum(weighted)"},
        "hod_rows",
        collapse_before,
        taken("hour_of_day"),
    )
    queries = {
        "hourly": f"WITH {raw},\n{hourly}\nSELECT user_name, bucket, events, hours, hosts, services FROM hist",
        "hour_of_day": f"WITH {raw},\n{hour_rows},\n{hour_of_day}\n"
        "SELECT user_name, target_hour, bucket, weighted FROM hist",
    }
    for name, column in TERM_HISTORY_COLUMNS.items():
        term_rows = f"term_rows AS (\n  {term_rows_sql('uh_raw', column)}\n)"
        terms = _history(
            "hist", "user_name, term", {"n": "sum(n)"}, "term_rows", collapse_before, taken(name)
        )
        queries[name] = f"WITH {raw},\n{term_rows},\n{terms}\nSELECT user_name, term, bucket, n FROM hist"
    return queries


def missing_tables_sql() -> str:
    """The feature tables absent from the database (one row each)."""
    names = ", ".join(f"({_lit(t)})" for t in FEATURE_TABLES)
    return (
        f"SELECT t.name FROM (VALUES {names}) t(name) "
        "WHERE t.name NOT IN (SELECT table_name FROM information_schema.tables)"
    )
