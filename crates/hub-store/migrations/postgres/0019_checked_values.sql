-- Columns that hold one of a closed set of values (a status, a channel, a state, a 0/1 flag)
-- refuse any other: a row written by hand or by a faulty tool fails at the database instead of
-- surfacing later as an unreadable consent. The sets are the hub's own enums
-- (`tests/checked_values.rs` compares them); `outcome` keeps `kept_local`, which earlier
-- versions wrote.
--
-- Each table's checks are added in one ALTER TABLE, so PostgreSQL checks the existing rows in
-- one scan. Where an existing row breaks a check, the migration does not fail (that would stop
-- every brand over one bad row): that table's checks are added one by one, each validated on
-- its own; a check some row breaks stays NOT VALID (new and updated rows are checked, old rows
-- are not) and a WARNING names it. `docs/deployment.md` shows how to find and mend such rows.
CREATE FUNCTION pg_temp.iyshub_add_checks(tbl TEXT, names TEXT[], exprs TEXT[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    all_at_once TEXT := '';
    i INT;
BEGIN
    FOR i IN 1 .. array_length(names, 1) LOOP
        all_at_once := all_at_once || CASE WHEN i > 1 THEN ', ' ELSE '' END
            || format('ADD CONSTRAINT %I CHECK (%s)', names[i], exprs[i]);
    END LOOP;
    BEGIN
        EXECUTE format('ALTER TABLE %I %s', tbl, all_at_once);
    EXCEPTION WHEN check_violation THEN
        FOR i IN 1 .. array_length(names, 1) LOOP
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%s) NOT VALID',
                tbl, names[i], exprs[i]);
            BEGIN
                EXECUTE format('ALTER TABLE %I VALIDATE CONSTRAINT %I', tbl, names[i]);
            EXCEPTION WHEN check_violation THEN
                RAISE WARNING 'iyshub: rows of % break %; it checks new rows only until they are mended',
                    tbl, names[i];
            END;
        END LOOP;
    END;
END
$$;

SELECT pg_temp.iyshub_add_checks('consent',
    ARRAY['consent_recipient_type_check', 'consent_channel_check', 'consent_status_check',
          'consent_iys_state_check', 'consent_conflict_check', 'consent_hold_check',
          'consent_iys_known_check'],
    ARRAY[$c$recipient_type IN ('BIREYSEL', 'TACIR')$c$,
          $c$channel IN ('MESAJ', 'ARAMA', 'EPOSTA', 'PUSH', 'WEB_PUSH', 'IN_APP', 'WHATSAPP')$c$,
          $c$status IN ('ONAY', 'RET')$c$,
          $c$iys_state IN ('in_iys', 'pending', 'held', 'rejected', 'not_in_iys', 'local_only')$c$,
          'conflict IN (0, 1)', 'hold IN (0, 1)', 'iys_known IN (0, 1)']);

SELECT pg_temp.iyshub_add_checks('consent_event',
    ARRAY['consent_event_recipient_type_check', 'consent_event_channel_check',
          'consent_event_status_check', 'consent_event_origin_check',
          'consent_event_outcome_check', 'consent_event_hold_check',
          'consent_event_changed_from_check', 'consent_event_changed_iys_state_check'],
    ARRAY[$c$recipient_type IN ('BIREYSEL', 'TACIR')$c$,
          $c$channel IN ('MESAJ', 'ARAMA', 'EPOSTA', 'PUSH', 'WEB_PUSH', 'IN_APP', 'WHATSAPP')$c$,
          $c$status IN ('ONAY', 'RET')$c$,
          $c$origin IN ('api', 'import', 'console', 'iys_pull', 'iys_push', 'reconcile', 'mode_switch')$c$,
          $c$outcome IN ('applied', 'noop', 'resent', 'older', 'conflict', 'hold_changed', 'duplicate', 'kept_local')$c$,
          'hold IN (0, 1)',
          $c$changed_from IN ('', 'ONAY', 'RET')$c$,
          $c$changed_iys_state IN ('in_iys', 'pending', 'held', 'rejected', 'not_in_iys', 'local_only')$c$]);

SELECT pg_temp.iyshub_add_checks('outbox',
    ARRAY['outbox_recipient_type_check', 'outbox_channel_check', 'outbox_status_check',
          'outbox_state_check'],
    ARRAY[$c$recipient_type IN ('BIREYSEL', 'TACIR')$c$,
          $c$channel IN ('MESAJ', 'ARAMA', 'EPOSTA')$c$,
          $c$status IN ('ONAY', 'RET')$c$,
          $c$state IN ('pending', 'awaiting_result', 'held', 'done', 'failed', 'superseded')$c$]);

SELECT pg_temp.iyshub_add_checks('brand', ARRAY['brand_mode_check'],
    ARRAY[$c$mode IN ('sync', 'integrator')$c$]);
SELECT pg_temp.iyshub_add_checks('category', ARRAY['category_kind_check'],
    ARRAY[$c$kind IN ('marketing', 'transactional')$c$]);
SELECT pg_temp.iyshub_add_checks('category_consent', ARRAY['category_consent_status_check'],
    ARRAY[$c$status IN ('ONAY', 'RET')$c$]);
SELECT pg_temp.iyshub_add_checks('import_job',
    ARRAY['import_job_state_check', 'import_job_via_check', 'import_job_dry_run_check'],
    ARRAY[$c$state IN ('uploading', 'queued', 'running', 'done', 'failed')$c$,
          $c$via IN ('api', 'cli')$c$,
          'dry_run IN (0, 1)']);
SELECT pg_temp.iyshub_add_checks('reconcile_day', ARRAY['reconcile_day_status_check'],
    ARRAY[$c$status IN ('pending', 'agreed', 'empty', 'consistent', 'drift', 'hash_mismatch', 'not_ready', 'error', 'expired')$c$]);
SELECT pg_temp.iyshub_add_checks('webhook', ARRAY['webhook_enabled_check'],
    ARRAY['enabled IN (0, 1)']);
SELECT pg_temp.iyshub_add_checks('webhook_delivery', ARRAY['webhook_delivery_manual_check'],
    ARRAY['manual IN (0, 1)']);
SELECT pg_temp.iyshub_add_checks('console_grant', ARRAY['console_grant_role_check'],
    ARRAY[$c$role IN ('read', 'write', 'admin')$c$]);
SELECT pg_temp.iyshub_add_checks('console_user',
    ARRAY['console_user_global_admin_check', 'console_user_disabled_check'],
    ARRAY['global_admin IN (0, 1)', 'disabled IN (0, 1)']);

DROP FUNCTION pg_temp.iyshub_add_checks(TEXT, TEXT[], TEXT[]);
