"""A frozen copy of the per-event feature SQL as it was before it was rewritten for speed (commit
fce7d50, authml/train/feature_sql.py). Slow (every window sorts the whole history) but plainly
correct; tests/unit/test_feature_sql_equivalence.py checks that the current query returns exactly
the same values. Never edit this text to make a test pass: it is the definition the features had.
Self-contained on purpose: it must not change when the module's helpers do."""

from __future__ import annotations

from datetime import datetime

_LOGON_TYPE_NUMBERS = {
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
_LOOPBACK = ", ".join(f"'{a}'" for a in ("127.0.0.1", "::1", "-", "::ffff:127.0.0.1", "0.0.0.0"))
_TABLES = (
    "authml-features-user-hourly-v1",
    "authml-features-user-source-ip-v1",
    "authml-features-user-host-v1",
    "authml-features-source-ip-hourly-v1",
)


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ts(value: datetime) -> str:
    return f"TIMESTAMP {_lit(value.replace(tzinfo=None).isoformat(sep=' '))}"


def _local(expression: str, time_zone: str) -> str:
    return f"timezone({_lit(time_zone)}, timezone('UTC', {expression}))"


def _logon_type_number(expression: str) -> str:
    cases = " ".join(f"WHEN {_lit(name)} THEN {number}" for name, number in _LOGON_TYPE_NUMBERS.items())
    return f"COALESCE(CASE {expression} {cases} END, TRY_CAST({expression} AS INTEGER))"


def _term_history_ctes(prefix: str, column: str) -> str:
    return f"""{prefix}_rows AS (
  SELECT user_name, bucket, j.key AS term, CAST(j.value AS DOUBLE) AS n
  FROM uh_raw, json_each(uh_raw.{column}) j
),
{prefix}_cum AS (
  SELECT user_name, term, bucket,
         sum(n) OVER (PARTITION BY user_name, term ORDER BY bucket ROWS UNBOUNDED PRECEDING) AS cum
  FROM {prefix}_rows
),
{prefix}_total AS (
  SELECT user_name, bucket, sum(sum(n)) OVER (PARTITION BY user_name ORDER BY bucket ROWS UNBOUNDED PRECEDING) AS cum
  FROM {prefix}_rows GROUP BY user_name, bucket
),
"""


def reference_features_sql(
    start: datetime | None, end: datetime | None, time_zone: str, *, codes: list[str], with_labels: bool
) -> str:
    tz = time_zone
    upper = f'AND "@timestamp" < {_ts(end)}' if end else ""
    lower = f"WHERE ev.ts >= {_ts(start)}" if start else ""
    label = "document->>'$.labels.authml_scenario'" if with_labels else "CAST(NULL AS VARCHAR)"
    code_list = ", ".join(_lit(code) for code in codes)
    uh, usi, uho, sih = (_q(t) for t in _TABLES)
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
              THEN coalesce("user.target.name", "winlog.event_data.TargetUserName") END AS credential_target
  FROM events
  WHERE "user.name" IS NOT NULL AND "@timestamp" IS NOT NULL AND "event.code" IN ({code_list}) {upper}
),
uh_raw AS (
  SELECT h.{_q("user.name")} AS user_name, h.{_q("@timestamp")} AS bucket, h.events, h.hosts, h.services,
         CAST(h.logon_types AS JSON) AS logon_types, CAST(h.ticket_encryption_types AS JSON) AS enc_types
  FROM {uh} h
),
uh_cum AS (
  SELECT user_name, bucket,
         sum(events) OVER w AS cum_events, count(*) OVER w AS cum_active_hours,
         max(hosts) OVER w AS max_hosts, max(services) OVER w AS max_services
  FROM uh_raw
  WINDOW w AS (PARTITION BY user_name ORDER BY bucket ROWS UNBOUNDED PRECEDING)
),
hod_cum AS (
  SELECT user_name, target_hour, bucket,
         sum(weighted) OVER (PARTITION BY user_name, target_hour ORDER BY bucket ROWS UNBOUNDED PRECEDING) AS cum
  FROM (SELECT user_name, bucket, (hour({_local("bucket", tz)}) + s.shift + 24) % 24 AS target_hour,
               events * s.weight AS weighted
        FROM uh_raw, (VALUES (-1, 0.25), (0, 0.5), (1, 0.25)) s(shift, weight))
),
{_term_history_ctes("lt", "logon_types")}{_term_history_ctes("et", "enc_types")}recent AS (
  SELECT _id,
    count(*) OVER (PARTITION BY user_name, source_ip ORDER BY ts, _id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS user_ip_events_before,
    count(*) OVER (PARTITION BY user_name, event_code ORDER BY ts, _id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS user_code_events_before,
    count(*) OVER (PARTITION BY user_name ORDER BY ts, _id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS user_raw_events_before,
    count(*) FILTER (WHERE failed) OVER user_hour - failed::INTEGER AS user_failures_1h,
    CASE WHEN source_ip IS NULL OR source_ip IN ({_LOOPBACK}) THEN 0
         ELSE count(*) FILTER (WHERE failed) OVER source_hour - failed::INTEGER END AS source_failures_1h,
    CASE WHEN source_ip IS NULL OR source_ip IN ({_LOOPBACK}) THEN 0
         ELSE count(DISTINCT user_name) FILTER (WHERE failed) OVER source_hour END AS source_failed_users_1h,
    count(DISTINCT service_name) FILTER (WHERE event_code = '4769') OVER user_hour AS services_1h,
    count(DISTINCT host_name) OVER user_hour AS hosts_1h,
    CASE WHEN host_name IS NULL THEN 0
         ELSE count(DISTINCT user_name) FILTER (WHERE failed) OVER host_hour END AS host_failed_users_1h
  FROM ev
  WINDOW user_hour AS (PARTITION BY user_name ORDER BY ts RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW),
         source_hour AS (PARTITION BY source_ip ORDER BY ts RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW),
         host_hour AS (PARTITION BY host_name ORDER BY ts RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW)
)
SELECT ev._id, ev.ts, ev.user_name, ev.source_ip, ev.host_name, ev.event_code, ev.failed,
       ev.logon_type_number, ev.logon_type, ev.enc_type, ev.service_name, coalesce(ev.no_preauth, false) AS no_preauth,
       ev.local_hour, ev.local_dow, ev.scenario, ev.credential_target,
       coalesce(uc.cum_events, 0) AS user_events_before,
       coalesce(uc.cum_active_hours, 0) AS user_active_hours_before,
       coalesce(date_diff('hour', uc.bucket, ev.bucket), 0) AS hours_since_last_active,
       coalesce(uc.max_hosts, 0) AS max_hosts_per_hour_before,
       coalesce(uc.max_services, 0) AS max_services_per_hour_before,
       coalesce(hc.cum, 0) AS hour_weight_before,
       coalesce(lc.cum, 0) AS logon_type_events_before,
       coalesce(lt.cum, 0) AS logon_typed_events_before,
       coalesce(ec.cum, 0) AS enc_type_events_before,
       coalesce(etot.cum, 0) AS enc_typed_events_before,
       CASE WHEN ev.source_ip IN ({_LOOPBACK}) THEN 0
            ELSE coalesce(sp.{_q("failed_logons.users")}, 0) END AS source_failed_users_prev_hour,
       CAST(ui.first_seen AS TIMESTAMP) AS source_ip_first_seen,
       CAST(uo.first_seen AS TIMESTAMP) AS host_first_seen,
       tr.user_ip_events_before, tr.user_code_events_before, tr.user_raw_events_before,
       tr.user_failures_1h, tr.source_failures_1h, tr.source_failed_users_1h, tr.services_1h, tr.hosts_1h, tr.host_failed_users_1h,
       date_diff('hour', (SELECT min(bucket) FROM uh_raw), ev.bucket) AS hours_observed
FROM ev
JOIN recent tr USING (_id)
ASOF LEFT JOIN uh_cum uc ON ev.user_name = uc.user_name AND ev.bucket > uc.bucket
ASOF LEFT JOIN hod_cum hc ON ev.user_name = hc.user_name AND ev.local_hour = hc.target_hour AND ev.bucket > hc.bucket
ASOF LEFT JOIN lt_cum lc ON ev.user_name = lc.user_name AND ev.logon_type = lc.term AND ev.bucket > lc.bucket
ASOF LEFT JOIN lt_total lt ON ev.user_name = lt.user_name AND ev.bucket > lt.bucket
ASOF LEFT JOIN et_cum ec ON ev.user_name = ec.user_name AND ev.enc_type = ec.term AND ev.bucket > ec.bucket
ASOF LEFT JOIN et_total etot ON ev.user_name = etot.user_name AND ev.bucket > etot.bucket
LEFT JOIN {sih} sp ON sp.{_q("source.ip")} = ev.source_ip AND sp.{_q("@timestamp")} = ev.bucket - INTERVAL 1 HOUR
LEFT JOIN {usi} ui ON ui.{_q("user.name")} = ev.user_name AND ui.{_q("source.ip")} = ev.source_ip
LEFT JOIN {uho} uo ON uo.{_q("user.name")} = ev.user_name AND uo.{_q("host.name")} = ev.host_name
{lower}
ORDER BY ev.ts, ev._id
"""
