//! The schema: versioned migrations, applied at start under an advisory lock.

use tokio_postgres::Client;

use crate::error::PgError;

/// The schema, one entry per version: entry `n` takes a database from
/// version `n` to `n + 1`. Append only; never edit a released entry.
///
/// Ids are `TEXT COLLATE "C"`: byte order, so `ORDER BY destination_id` is
/// id order whatever the database's default collation. Versions are
/// `BIGINT` holding the `u64`'s bits; times are Unix milliseconds.
///
/// The delivery outbox (migration 3): a destination's failure streak is two
/// nullable columns of its row; `deliveries` and `attempts` reference
/// `destinations (tenant_id, destination_id)` `ON DELETE CASCADE`, so a
/// removed destination takes its pending deliveries and attempts with it;
/// `deliveries` also reference their `events` row, which stays after its
/// last delivery finished until the event log's purge (migration 8). Attempts are listed
/// newest first by a backward scan of their primary key `(tenant_id,
/// destination_id, attempt_id)`; claims are the function `prets_claim`
/// (migration 4, replaced by 9, 10 and 11), walking `deliveries_by_lane` and
/// `deliveries_leased`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: destinations and their rotated-out secrets.
    r#"CREATE TABLE destinations (
        tenant_id      TEXT COLLATE "C" NOT NULL,
        destination_id TEXT COLLATE "C" NOT NULL,
        name           TEXT   NOT NULL,
        url            TEXT   NOT NULL,
        created_at_ms  BIGINT NOT NULL,
        updated_at_ms  BIGINT NOT NULL,
        sealed_secret  BYTEA  NOT NULL,
        secret_digest  BYTEA  NOT NULL,
        version        BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, destination_id)
    );
    CREATE INDEX destinations_by_secret_digest ON destinations (secret_digest);
    CREATE TABLE previous_secrets (
        tenant_id      TEXT COLLATE "C" NOT NULL,
        destination_id TEXT COLLATE "C" NOT NULL,
        position       INTEGER NOT NULL,
        sealed_secret  BYTEA   NOT NULL,
        secret_digest  BYTEA   NOT NULL,
        expires_at_ms  BIGINT  NOT NULL,
        PRIMARY KEY (tenant_id, destination_id, position),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    );
    CREATE INDEX previous_secrets_by_secret_digest ON previous_secrets (secret_digest);"#,
    // 2: destinations can be disabled; rows stored before are enabled.
    r#"ALTER TABLE destinations
        ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT true,
        ADD COLUMN disabled_reason TEXT
            CHECK (disabled_reason IN ('manual', 'gone', 'failing'));"#,
    // 3: the delivery outbox (failure streaks, events, deliveries with their
    // leases, attempts) and API tokens.
    r#"ALTER TABLE destinations
        ADD COLUMN failing_since_ms BIGINT,
        ADD COLUMN failing_attempts BIGINT,
        ADD CONSTRAINT destinations_failure_streak
            CHECK ((failing_since_ms IS NULL) = (failing_attempts IS NULL));
    CREATE TABLE events (
        tenant_id     TEXT COLLATE "C" NOT NULL,
        event_id      TEXT COLLATE "C" NOT NULL,
        event_type    TEXT   NOT NULL,
        created_at_ms BIGINT NOT NULL,
        payload       TEXT   NOT NULL,
        PRIMARY KEY (tenant_id, event_id)
    );
    CREATE TABLE deliveries (
        tenant_id           TEXT COLLATE "C" NOT NULL,
        event_id            TEXT COLLATE "C" NOT NULL,
        destination_id      TEXT COLLATE "C" NOT NULL,
        attempt             BIGINT NOT NULL,
        due_at_ms           BIGINT NOT NULL,
        lease_token         BYTEA,
        lease_expires_at_ms BIGINT,
        CHECK ((lease_token IS NULL) = (lease_expires_at_ms IS NULL)),
        PRIMARY KEY (tenant_id, event_id, destination_id),
        FOREIGN KEY (tenant_id, event_id) REFERENCES events (tenant_id, event_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    );
    CREATE INDEX deliveries_by_due_time ON deliveries (due_at_ms, lease_expires_at_ms);
    CREATE INDEX deliveries_by_destination ON deliveries (tenant_id, destination_id);
    CREATE TABLE attempts (
        tenant_id          TEXT COLLATE "C" NOT NULL,
        destination_id     TEXT COLLATE "C" NOT NULL,
        attempt_id         TEXT COLLATE "C" NOT NULL,
        event_id           TEXT COLLATE "C" NOT NULL,
        attempt            BIGINT  NOT NULL,
        started_at_ms      BIGINT  NOT NULL,
        duration_ms        BIGINT  NOT NULL,
        outcome            TEXT    NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'refused')),
        response_status    INTEGER,
        error              TEXT,
        next_attempt_at_ms BIGINT,
        PRIMARY KEY (tenant_id, destination_id, attempt_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    );
    CREATE TABLE api_tokens (
        token_digest  BYTEA NOT NULL PRIMARY KEY CHECK (length(token_digest) = 32),
        tenant_id     TEXT COLLATE "C" NOT NULL,
        created_at_ms BIGINT NOT NULL
    );"#,
    // 4: fair claims and the finished-event sweep. Claims find lanes
    // (tenant, destination) by a skip scan of `deliveries_by_lane` and
    // count a lane's live leases on `deliveries_leased`; `claim_turns`
    // remembers, per tenant, the lane served last (a rotation hint: unlogged,
    // nothing is lost with it); `finished_events` lists the events a
    // finished delivery may have left without one, for the sweep.
    r#"DROP INDEX deliveries_by_due_time;
    DROP INDEX deliveries_by_destination;
    CREATE INDEX deliveries_by_lane ON deliveries (tenant_id, destination_id, due_at_ms);
    CREATE INDEX deliveries_leased ON deliveries (tenant_id, destination_id, lease_expires_at_ms)
        WHERE lease_token IS NOT NULL;
    CREATE UNLOGGED TABLE claim_turns (
        tenant_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
        destination_id TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE finished_events (
        id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL,
        event_id  TEXT COLLATE "C" NOT NULL
    );
    -- Queue tables: rows come and go all the time, and a claim steps over
    -- the dead entries at the head of a lane until they are vacuumed, so
    -- they are vacuumed after 1,000 changes (plus 1 % of the rows), not 20 %.
    ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_threshold = 1000);
    ALTER TABLE finished_events SET (autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_threshold = 1000);
    ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_threshold = 1000);
    CREATE FUNCTION prets_claim(
        p_now BIGINT, p_limit INTEGER, p_per_destination INTEGER, p_failing_limit INTEGER,
        p_per_failing INTEGER, p_token BYTEA, p_expires BIGINT, p_after TEXT,
        p_lane_scan INTEGER)
    RETURNS TABLE (o_seq INTEGER, o_tenant TEXT, o_event TEXT, o_destination TEXT,
        o_attempt BIGINT, o_failing BOOLEAN, o_next_after TEXT)
    LANGUAGE plpgsql AS $fn$
    DECLARE
        -- Tenants in the order they take turns, found one by one.
        t_ids TEXT[] := '{}';
        t_alive BOOLEAN[] := '{}';
        t_start TEXT[] := '{}';     -- its lanes start after this one
        t_cur TEXT[] := '{}';       -- the lane looked at last
        t_wrapped BOOLEAN[] := '{}';
        t_done BOOLEAN[] := '{}';   -- no lane left to find
        t_scanned INTEGER[] := '{}';
        t_count INTEGER[] := '{}';  -- lanes found
        t_head INTEGER[] := '{}';   -- its lanes: a ring through l_next
        t_tail INTEGER[] := '{}';
        t_at INTEGER[] := '{}';     -- the lane served (or passed) last
        t_served TEXT[] := '{}';
        -- Lanes with room and a due delivery when found.
        l_dest TEXT[] := '{}';
        l_room INTEGER[] := '{}';
        l_failing BOOLEAN[] := '{}';
        l_alive BOOLEAN[] := '{}';
        l_next INTEGER[] := '{}';
        n INTEGER := 0;
        n_l INTEGER := 0;
        i INTEGER := 0;
        j INTEGER;
        checked INTEGER;
        cur TEXT := p_after;
        nxt TEXT;
        wrapped BOOLEAN := false;
        finding BOOLEAN := true;
        all_tenants BOOLEAN := false;
        progress BOOLEAN := false;
        next_after TEXT;
        lane TEXT;
        failing_ BOOLEAN;
        cap INTEGER;
        live INTEGER;
        ev TEXT;
        att BIGINT;
        taken INTEGER := 0;
        failing_taken INTEGER := 0;
    BEGIN
        IF p_limit <= 0 THEN
            RETURN;
        END IF;
        -- Leases need no flush before the answer: one lost in a crash of
        -- the database only makes its delivery claimable again (at least
        -- once), and the claim's caller waits for no disk.
        PERFORM set_config('synchronous_commit', 'off', true);
        -- Turns: each tenant in order, its next lane, one delivery, the
        -- earliest due of the lane. The first pass finds the tenants (from
        -- the one after p_after, wrapping once), each tenant finds its lanes
        -- as its turns need them (from the lane after the one it was served
        -- last), so a claim looks at no more than it takes and passes.
        LOOP
            i := i + 1;
            IF i > n AND finding THEN
                LOOP
                    SELECT d.tenant_id INTO nxt FROM deliveries d
                    WHERE d.tenant_id > cur ORDER BY d.tenant_id LIMIT 1;
                    IF nxt IS NULL THEN
                        IF wrapped OR p_after = '' THEN
                            EXIT;
                        END IF;
                        wrapped := true;
                        cur := '';
                        CONTINUE;
                    END IF;
                    IF wrapped AND nxt > p_after THEN
                        nxt := NULL;
                    END IF;
                    EXIT;
                END LOOP;
                IF nxt IS NULL THEN
                    finding := false;
                    all_tenants := true;
                ELSE
                    cur := nxt;
                    n := n + 1;
                    t_ids[n] := nxt;
                    t_alive[n] := true;
                    SELECT c.destination_id INTO lane FROM claim_turns c WHERE c.tenant_id = nxt;
                    t_start[n] := COALESCE(lane, '');
                    t_cur[n] := t_start[n];
                    t_wrapped[n] := false;
                    t_done[n] := false;
                    t_scanned[n] := 0;
                    t_count[n] := 0;
                    t_head[n] := 0;
                    t_tail[n] := 0;
                    t_at[n] := 0;
                    t_served[n] := NULL;
                END IF;
            END IF;
            IF i > n THEN
                -- A pass is over.
                EXIT WHEN NOT progress;
                finding := false;
                progress := false;
                i := 1;
            END IF;
            IF next_after IS NULL AND NOT finding THEN
                -- The next claim starts after the last tenant looked at, or,
                -- when every tenant was, after the first one: the ring turns.
                next_after := CASE WHEN all_tenants THEN t_ids[1] ELSE cur END;
            END IF;
            CONTINUE WHEN NOT t_alive[i];
            -- Tenant i's turn: its lanes from the one after t_at, finding
            -- one more at the end of those found.
            checked := 0;
            LOOP
                j := 0;
                IF t_head[i] = 0 OR t_at[i] = t_tail[i] THEN
                    WHILE NOT t_done[i] LOOP
                        IF t_scanned[i] >= p_lane_scan THEN
                            t_done[i] := true;
                            EXIT;
                        END IF;
                        SELECT d.destination_id INTO lane FROM deliveries d
                        WHERE d.tenant_id = t_ids[i] AND d.destination_id > t_cur[i]
                        ORDER BY d.destination_id LIMIT 1;
                        IF lane IS NULL THEN
                            IF t_wrapped[i] OR t_start[i] = '' THEN
                                t_done[i] := true;
                                EXIT;
                            END IF;
                            t_wrapped[i] := true;
                            t_cur[i] := '';
                            CONTINUE;
                        END IF;
                        IF t_wrapped[i] AND lane > t_start[i] THEN
                            t_done[i] := true;
                            EXIT;
                        END IF;
                        t_cur[i] := lane;
                        t_scanned[i] := t_scanned[i] + 1;
                        SELECT x.failing_since_ms IS NOT NULL INTO failing_
                        FROM destinations x WHERE x.tenant_id = t_ids[i] AND x.destination_id = lane;
                        CONTINUE WHEN NOT FOUND OR (failing_ AND p_failing_limit <= 0);
                        cap := CASE WHEN failing_ THEN p_per_failing ELSE p_per_destination END;
                        SELECT count(*) INTO live FROM (
                            SELECT 1 FROM deliveries d
                            WHERE d.tenant_id = t_ids[i] AND d.destination_id = lane
                              AND d.lease_token IS NOT NULL AND d.lease_expires_at_ms > p_now
                            LIMIT cap) l;
                        -- A lane with room and a delivery to offer.
                        CONTINUE WHEN live >= cap OR NOT EXISTS (
                            SELECT 1 FROM deliveries d
                            WHERE d.tenant_id = t_ids[i] AND d.destination_id = lane
                              AND d.due_at_ms <= p_now
                              AND (d.lease_expires_at_ms IS NULL
                                   OR d.lease_expires_at_ms <= p_now));
                        -- One claim at a time per lane (another one on it now
                        -- serves it: skip it), counted again once held: this
                        -- statement sees every claim that held it before.
                        CONTINUE WHEN NOT pg_try_advisory_xact_lock(
                            hashtext(t_ids[i]), hashtext(lane));
                        SELECT count(*) INTO live FROM (
                            SELECT 1 FROM deliveries d
                            WHERE d.tenant_id = t_ids[i] AND d.destination_id = lane
                              AND d.lease_token IS NOT NULL AND d.lease_expires_at_ms > p_now
                            LIMIT cap) l;
                        CONTINUE WHEN live >= cap;
                        n_l := n_l + 1;
                        l_dest[n_l] := lane;
                        l_room[n_l] := cap - live;
                        l_failing[n_l] := failing_;
                        l_alive[n_l] := true;
                        IF t_head[i] = 0 THEN
                            t_head[i] := n_l;
                        ELSE
                            l_next[t_tail[i]] := n_l;
                        END IF;
                        t_tail[i] := n_l;
                        l_next[n_l] := t_head[i];
                        t_count[i] := t_count[i] + 1;
                        j := n_l;
                        EXIT;
                    END LOOP;
                    IF j = 0 THEN
                        j := t_head[i];
                    END IF;
                ELSIF t_at[i] = 0 THEN
                    j := t_head[i];
                ELSE
                    j := l_next[t_at[i]];
                END IF;
                EXIT WHEN j = 0;
                t_at[i] := j;
                checked := checked + 1;
                IF l_alive[j] AND l_room[j] > 0
                   AND NOT (l_failing[j] AND failing_taken >= p_failing_limit) THEN
                    SELECT d.event_id, d.attempt INTO ev, att FROM deliveries d
                    WHERE d.tenant_id = t_ids[i] AND d.destination_id = l_dest[j]
                      AND d.due_at_ms <= p_now
                      AND (d.lease_expires_at_ms IS NULL OR d.lease_expires_at_ms <= p_now)
                    ORDER BY d.due_at_ms
                    LIMIT 1
                    FOR UPDATE SKIP LOCKED;
                    IF FOUND THEN
                        UPDATE deliveries d SET lease_token = p_token,
                            lease_expires_at_ms = p_expires
                        WHERE d.tenant_id = t_ids[i] AND d.event_id = ev
                          AND d.destination_id = l_dest[j];
                        taken := taken + 1;
                        IF l_failing[j] THEN
                            failing_taken := failing_taken + 1;
                        END IF;
                        l_room[j] := l_room[j] - 1;
                        t_served[i] := l_dest[j];
                        progress := true;
                        o_seq := taken;
                        o_tenant := t_ids[i];
                        o_event := ev;
                        o_destination := l_dest[j];
                        o_attempt := att;
                        o_failing := l_failing[j];
                        o_next_after := NULL;
                        RETURN NEXT;
                        EXIT;
                    END IF;
                    l_alive[j] := false;
                END IF;
                IF t_done[i] AND checked >= t_count[i] THEN
                    -- Every lane found was tried: nothing more here.
                    t_alive[i] := false;
                    EXIT;
                END IF;
            END LOOP;
            IF j = 0 THEN
                t_alive[i] := false;
            END IF;
            EXIT WHEN taken >= p_limit;
        END LOOP;
        IF taken = 0 THEN
            RETURN;
        END IF;
        -- The cursor row: after every delivery, so its value is final.
        o_seq := 0;
        o_tenant := NULL;
        o_event := NULL;
        o_destination := NULL;
        o_attempt := NULL;
        o_failing := NULL;
        o_next_after := COALESCE(next_after, CASE WHEN all_tenants THEN t_ids[1] ELSE cur END);
        RETURN NEXT;
        -- The lane each tenant was served last goes to the back of its ring
        -- (one statement, in tenant order: concurrent claims lock these rows
        -- in one order).
        INSERT INTO claim_turns (tenant_id, destination_id)
        SELECT u.t, u.d FROM UNNEST(t_ids, t_served) AS u(t, d)
        WHERE u.d IS NOT NULL ORDER BY u.t
        ON CONFLICT (tenant_id) DO UPDATE SET destination_id = EXCLUDED.destination_id;
        RETURN;
    END
    $fn$;"#,
    // 5: the event ids each organization published, kept past their event
    // (see `Outbox::enqueue`): type, payload digest and delivery count, so
    // a publish of the id again is answered as the first one. The events
    // stored already get theirs.
    r#"CREATE TABLE event_ids (
        tenant_id      TEXT COLLATE "C" NOT NULL,
        event_id       TEXT COLLATE "C" NOT NULL,
        created_at_ms  BIGINT NOT NULL,
        event_type     TEXT   NOT NULL,
        payload_sha256 BYTEA  NOT NULL CHECK (length(payload_sha256) = 32),
        destinations   BIGINT NOT NULL CHECK (destinations >= 0),
        PRIMARY KEY (tenant_id, event_id)
    );
    CREATE INDEX event_ids_by_age ON event_ids (tenant_id, created_at_ms);
    INSERT INTO event_ids
        SELECT e.tenant_id, e.event_id, e.created_at_ms, e.event_type,
            sha256(convert_to(e.payload, 'UTF8')),
            (SELECT count(*) FROM deliveries d
             WHERE d.tenant_id = e.tenant_id AND d.event_id = e.event_id)
        FROM events e;"#,
    // 6: what receivers expect. The sealed signing secret (NULL: bearer
    // only) and the one rotated out with each previous secret; the filter,
    // the custom headers and the metadata as parallel text arrays (headers
    // keep their order); the description. `destination_filters` indexes each
    // destination under its filter's keys ('*' for every event): a publish
    // looks up the keys its event type matches instead of reading every
    // destination of the tenant. Existing rows take '*'.
    r#"ALTER TABLE destinations
        ADD COLUMN sealed_signing_secret BYTEA,
        ADD COLUMN filter_types TEXT[] NOT NULL DEFAULT '{}',
        ADD COLUMN header_names TEXT[] NOT NULL DEFAULT '{}',
        ADD COLUMN header_values TEXT[] NOT NULL DEFAULT '{}',
        ADD COLUMN description TEXT NOT NULL DEFAULT '',
        ADD COLUMN metadata_keys TEXT[] NOT NULL DEFAULT '{}',
        ADD COLUMN metadata_values TEXT[] NOT NULL DEFAULT '{}';
    ALTER TABLE previous_secrets ADD COLUMN sealed_signing_secret BYTEA;
    CREATE TABLE destination_filters (
        tenant_id      TEXT COLLATE "C" NOT NULL,
        filter_key     TEXT COLLATE "C" NOT NULL,
        destination_id TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant_id, filter_key, destination_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    );
    CREATE INDEX destination_filters_by_destination
        ON destination_filters (tenant_id, destination_id);
    INSERT INTO destination_filters (tenant_id, filter_key, destination_id)
        SELECT tenant_id, '*', destination_id FROM destinations;"#,
    // 7: each organization's pending deliveries, for the quota check of an
    // enqueue. Statement triggers append what each statement added to or
    // removed from `deliveries` (cascades included) to `pending_changes`,
    // taking no lock a completion of the same organization would wait for;
    // an enqueue folds its organization's changes into its
    // `pending_counts` row under the organization's advisory lock. Both are
    // vacuumed as the queue tables are (rows come and go with every
    // delivery).
    r#"CREATE TABLE pending_counts (
        tenant_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
        pending   BIGINT NOT NULL
    );
    CREATE TABLE pending_changes (
        tenant_id TEXT COLLATE "C" NOT NULL,
        delta     BIGINT NOT NULL
    );
    CREATE INDEX pending_changes_by_tenant ON pending_changes (tenant_id);
    ALTER TABLE pending_changes SET (autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_threshold = 1000);
    ALTER TABLE pending_counts SET (autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_threshold = 1000);
    CREATE FUNCTION prets_pending_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO pending_changes (tenant_id, delta)
            SELECT tenant_id, count(*) FROM added GROUP BY tenant_id;
        RETURN NULL;
    END $$;
    CREATE FUNCTION prets_pending_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO pending_changes (tenant_id, delta)
            SELECT tenant_id, -count(*) FROM removed GROUP BY tenant_id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER pending_added AFTER INSERT ON deliveries
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION prets_pending_added();
    CREATE TRIGGER pending_removed AFTER DELETE ON deliveries
        REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION prets_pending_removed();
    -- Counted after the triggers exist: creating them waited for every
    -- write in flight and holds off new ones until this commits.
    INSERT INTO pending_counts (tenant_id, pending)
        SELECT tenant_id, count(*) FROM deliveries GROUP BY tenant_id;"#,
    // 8: the event log (see `EventLog`). Events stay after their last
    // delivery until purged (the finished-event sweep and its marks go);
    // indexes list them newest first (all, or of one type) and purge the
    // oldest events and attempts. A delivery and its attempts say whether
    // an operator queued it (`manual`). `dropped_deliveries` keeps each
    // delivery a disable dropped (a statement trigger: every delete of a
    // disabled destination's deliveries is one), until its event is purged.
    r#"DROP TABLE finished_events;
    ALTER TABLE deliveries ADD COLUMN manual BOOLEAN NOT NULL DEFAULT false;
    ALTER TABLE attempts ADD COLUMN manual BOOLEAN NOT NULL DEFAULT false;
    CREATE INDEX events_newest ON events (tenant_id, created_at_ms, event_id);
    CREATE INDEX events_newest_of_type ON events
        (tenant_id, event_type, created_at_ms, event_id);
    CREATE INDEX events_by_age ON events (created_at_ms);
    CREATE INDEX attempts_by_event ON attempts (tenant_id, event_id, destination_id);
    CREATE INDEX attempts_by_age ON attempts (started_at_ms);
    CREATE TABLE dropped_deliveries (
        tenant_id      TEXT COLLATE "C" NOT NULL,
        event_id       TEXT COLLATE "C" NOT NULL,
        destination_id TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant_id, event_id, destination_id),
        FOREIGN KEY (tenant_id, destination_id)
            REFERENCES destinations (tenant_id, destination_id) ON DELETE CASCADE
    );
    CREATE INDEX dropped_deliveries_by_destination
        ON dropped_deliveries (tenant_id, destination_id);
    CREATE FUNCTION prets_note_dropped() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        INSERT INTO dropped_deliveries (tenant_id, event_id, destination_id)
            SELECT g.tenant_id, g.event_id, g.destination_id FROM gone g
            JOIN destinations x
              ON x.tenant_id = g.tenant_id AND x.destination_id = g.destination_id
            WHERE NOT x.enabled
            ON CONFLICT DO NOTHING;
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER deliveries_dropped_by_a_disable AFTER DELETE ON deliveries
        REFERENCING OLD TABLE AS gone
        FOR EACH STATEMENT EXECUTE FUNCTION prets_note_dropped();"#,
    // 9: claims read each lane's candidates once, when the lane is found
    // (up to its room, locked), and lease what they take in one statement
    // at the end, instead of a read and an update per delivery; a lane's
    // kind, live leases and due delivery are one statement. The same
    // turns, caps and order as migration 4's.
    r#"CREATE OR REPLACE FUNCTION prets_claim(
        p_now BIGINT, p_limit INTEGER, p_per_destination INTEGER, p_failing_limit INTEGER,
        p_per_failing INTEGER, p_token BYTEA, p_expires BIGINT, p_after TEXT,
        p_lane_scan INTEGER)
    RETURNS TABLE (o_seq INTEGER, o_tenant TEXT, o_event TEXT, o_destination TEXT,
        o_attempt BIGINT, o_failing BOOLEAN, o_next_after TEXT)
    LANGUAGE plpgsql AS $fn$
    DECLARE
        -- Tenants in the order they take turns, found one by one.
        t_ids TEXT[] := '{}';
        t_alive BOOLEAN[] := '{}';
        t_start TEXT[] := '{}';     -- its lanes start after this one
        t_cur TEXT[] := '{}';       -- the lane looked at last
        t_wrapped BOOLEAN[] := '{}';
        t_done BOOLEAN[] := '{}';   -- no lane left to find
        t_scanned INTEGER[] := '{}';
        t_count INTEGER[] := '{}';  -- lanes found
        t_head INTEGER[] := '{}';   -- its lanes: a ring through l_next
        t_tail INTEGER[] := '{}';
        t_at INTEGER[] := '{}';     -- the lane served (or passed) last
        t_served TEXT[] := '{}';
        -- Lanes with room and a due delivery when found.
        l_dest TEXT[] := '{}';
        l_room INTEGER[] := '{}';
        l_failing BOOLEAN[] := '{}';
        l_alive BOOLEAN[] := '{}';
        l_next INTEGER[] := '{}';
        -- Each lane's candidates, read and locked once when it is found:
        -- c_ev and c_att from l_off + 1, l_cnt of them, l_used taken.
        c_ev TEXT[] := '{}';
        c_att BIGINT[] := '{}';
        c_tid TID[] := '{}';
        n_c INTEGER := 0;
        l_off INTEGER[] := '{}';
        l_cnt INTEGER[] := '{}';
        l_used INTEGER[] := '{}';
        -- What the claim leases, written by one statement at the end.
        r_tid TID[] := '{}';
        got INTEGER;
        row_tid TID;
        offers BOOLEAN;
        n INTEGER := 0;
        n_l INTEGER := 0;
        i INTEGER := 0;
        j INTEGER;
        checked INTEGER;
        cur TEXT := p_after;
        nxt TEXT;
        wrapped BOOLEAN := false;
        finding BOOLEAN := true;
        all_tenants BOOLEAN := false;
        progress BOOLEAN := false;
        next_after TEXT;
        lane TEXT;
        failing_ BOOLEAN;
        cap INTEGER;
        live INTEGER;
        ev TEXT;
        att BIGINT;
        taken INTEGER := 0;
        failing_taken INTEGER := 0;
    BEGIN
        IF p_limit <= 0 THEN
            RETURN;
        END IF;
        -- Leases need no flush before the answer: one lost in a crash of
        -- the database only makes its delivery claimable again (at least
        -- once), and the claim's caller waits for no disk.
        PERFORM set_config('synchronous_commit', 'off', true);
        -- Turns: each tenant in order, its next lane, one delivery, the
        -- earliest due of the lane. The first pass finds the tenants (from
        -- the one after p_after, wrapping once), each tenant finds its lanes
        -- as its turns need them (from the lane after the one it was served
        -- last), so a claim looks at no more than it takes and passes.
        LOOP
            i := i + 1;
            IF i > n AND finding THEN
                LOOP
                    SELECT d.tenant_id INTO nxt FROM deliveries d
                    WHERE d.tenant_id > cur ORDER BY d.tenant_id LIMIT 1;
                    IF nxt IS NULL THEN
                        IF wrapped OR p_after = '' THEN
                            EXIT;
                        END IF;
                        wrapped := true;
                        cur := '';
                        CONTINUE;
                    END IF;
                    IF wrapped AND nxt > p_after THEN
                        nxt := NULL;
                    END IF;
                    EXIT;
                END LOOP;
                IF nxt IS NULL THEN
                    finding := false;
                    all_tenants := true;
                ELSE
                    cur := nxt;
                    n := n + 1;
                    t_ids[n] := nxt;
                    t_alive[n] := true;
                    SELECT c.destination_id INTO lane FROM claim_turns c WHERE c.tenant_id = nxt;
                    t_start[n] := COALESCE(lane, '');
                    t_cur[n] := t_start[n];
                    t_wrapped[n] := false;
                    t_done[n] := false;
                    t_scanned[n] := 0;
                    t_count[n] := 0;
                    t_head[n] := 0;
                    t_tail[n] := 0;
                    t_at[n] := 0;
                    t_served[n] := NULL;
                END IF;
            END IF;
            IF i > n THEN
                -- A pass is over.
                EXIT WHEN NOT progress;
                finding := false;
                progress := false;
                i := 1;
            END IF;
            IF next_after IS NULL AND NOT finding THEN
                -- The next claim starts after the last tenant looked at, or,
                -- when every tenant was, after the first one: the ring turns.
                next_after := CASE WHEN all_tenants THEN t_ids[1] ELSE cur END;
            END IF;
            CONTINUE WHEN NOT t_alive[i];
            -- Tenant i's turn: its lanes from the one after t_at, finding
            -- one more at the end of those found.
            checked := 0;
            LOOP
                j := 0;
                IF t_head[i] = 0 OR t_at[i] = t_tail[i] THEN
                    WHILE NOT t_done[i] LOOP
                        IF t_scanned[i] >= p_lane_scan THEN
                            t_done[i] := true;
                            EXIT;
                        END IF;
                        SELECT d.destination_id INTO lane FROM deliveries d
                        WHERE d.tenant_id = t_ids[i] AND d.destination_id > t_cur[i]
                        ORDER BY d.destination_id LIMIT 1;
                        IF lane IS NULL THEN
                            IF t_wrapped[i] OR t_start[i] = '' THEN
                                t_done[i] := true;
                                EXIT;
                            END IF;
                            t_wrapped[i] := true;
                            t_cur[i] := '';
                            CONTINUE;
                        END IF;
                        IF t_wrapped[i] AND lane > t_start[i] THEN
                            t_done[i] := true;
                            EXIT;
                        END IF;
                        t_cur[i] := lane;
                        t_scanned[i] := t_scanned[i] + 1;
                        -- Its kind, live leases and whether it offers one,
                        -- in one statement.
                        SELECT x.failing_since_ms IS NOT NULL,
                            (SELECT count(*) FROM (
                                SELECT 1 FROM deliveries d
                                WHERE d.tenant_id = x.tenant_id
                                  AND d.destination_id = x.destination_id
                                  AND d.lease_token IS NOT NULL
                                  AND d.lease_expires_at_ms > p_now
                                LIMIT GREATEST(p_per_failing, p_per_destination)) l),
                            EXISTS (
                                SELECT 1 FROM deliveries d
                                WHERE d.tenant_id = x.tenant_id
                                  AND d.destination_id = x.destination_id
                                  AND d.due_at_ms <= p_now
                                  AND (d.lease_expires_at_ms IS NULL
                                       OR d.lease_expires_at_ms <= p_now))
                        INTO failing_, live, offers
                        FROM destinations x WHERE x.tenant_id = t_ids[i] AND x.destination_id = lane;
                        CONTINUE WHEN NOT FOUND OR (failing_ AND p_failing_limit <= 0);
                        cap := CASE WHEN failing_ THEN p_per_failing ELSE p_per_destination END;
                        -- A lane with room and a delivery to offer.
                        CONTINUE WHEN live >= cap OR NOT offers;
                        -- One claim at a time per lane (another one on it now
                        -- serves it: skip it), counted again once held: this
                        -- statement sees every claim that held it before.
                        CONTINUE WHEN NOT pg_try_advisory_xact_lock(
                            hashtext(t_ids[i]), hashtext(lane));
                        SELECT count(*) INTO live FROM (
                            SELECT 1 FROM deliveries d
                            WHERE d.tenant_id = t_ids[i] AND d.destination_id = lane
                              AND d.lease_token IS NOT NULL AND d.lease_expires_at_ms > p_now
                            LIMIT cap) l;
                        CONTINUE WHEN live >= cap;
                        -- Its candidates: the earliest available, as many as
                        -- its room (and the claim) may take, locked until
                        -- this commits (concurrent claims skip them).
                        got := 0;
                        FOR ev, att, row_tid IN
                            SELECT d.event_id, d.attempt, d.ctid FROM deliveries d
                            WHERE d.tenant_id = t_ids[i] AND d.destination_id = lane
                              AND d.due_at_ms <= p_now
                              AND (d.lease_expires_at_ms IS NULL
                                   OR d.lease_expires_at_ms <= p_now)
                            ORDER BY d.due_at_ms
                            LIMIT LEAST(cap - live, p_limit)
                            FOR UPDATE SKIP LOCKED
                        LOOP
                            got := got + 1;
                            c_ev[n_c + got] := ev;
                            c_att[n_c + got] := att;
                            c_tid[n_c + got] := row_tid;
                        END LOOP;
                        CONTINUE WHEN got = 0;
                        n_l := n_l + 1;
                        l_off[n_l] := n_c;
                        l_cnt[n_l] := got;
                        l_used[n_l] := 0;
                        n_c := n_c + got;
                        l_dest[n_l] := lane;
                        l_room[n_l] := cap - live;
                        l_failing[n_l] := failing_;
                        l_alive[n_l] := true;
                        IF t_head[i] = 0 THEN
                            t_head[i] := n_l;
                        ELSE
                            l_next[t_tail[i]] := n_l;
                        END IF;
                        t_tail[i] := n_l;
                        l_next[n_l] := t_head[i];
                        t_count[i] := t_count[i] + 1;
                        j := n_l;
                        EXIT;
                    END LOOP;
                    IF j = 0 THEN
                        j := t_head[i];
                    END IF;
                ELSIF t_at[i] = 0 THEN
                    j := t_head[i];
                ELSE
                    j := l_next[t_at[i]];
                END IF;
                EXIT WHEN j = 0;
                t_at[i] := j;
                checked := checked + 1;
                IF l_alive[j] AND l_room[j] > 0
                   AND NOT (l_failing[j] AND failing_taken >= p_failing_limit) THEN
                    IF l_used[j] < l_cnt[j] THEN
                        l_used[j] := l_used[j] + 1;
                        ev := c_ev[l_off[j] + l_used[j]];
                        att := c_att[l_off[j] + l_used[j]];
                        taken := taken + 1;
                        r_tid[taken] := c_tid[l_off[j] + l_used[j]];
                        IF l_failing[j] THEN
                            failing_taken := failing_taken + 1;
                        END IF;
                        l_room[j] := l_room[j] - 1;
                        t_served[i] := l_dest[j];
                        progress := true;
                        o_seq := taken;
                        o_tenant := t_ids[i];
                        o_event := ev;
                        o_destination := l_dest[j];
                        o_attempt := att;
                        o_failing := l_failing[j];
                        o_next_after := NULL;
                        RETURN NEXT;
                        EXIT;
                    END IF;
                    l_alive[j] := false;
                END IF;
                IF t_done[i] AND checked >= t_count[i] THEN
                    -- Every lane found was tried: nothing more here.
                    t_alive[i] := false;
                    EXIT;
                END IF;
            END LOOP;
            IF j = 0 THEN
                t_alive[i] := false;
            END IF;
            EXIT WHEN taken >= p_limit;
        END LOOP;
        IF taken = 0 THEN
            RETURN;
        END IF;
        -- The leases, in one statement: by the rows' ids, which stay put
        -- while this transaction holds their locks.
        UPDATE deliveries d SET lease_token = p_token, lease_expires_at_ms = p_expires
        WHERE d.ctid = ANY (r_tid);
        -- The cursor row: after every delivery, so its value is final.
        o_seq := 0;
        o_tenant := NULL;
        o_event := NULL;
        o_destination := NULL;
        o_attempt := NULL;
        o_failing := NULL;
        o_next_after := COALESCE(next_after, CASE WHEN all_tenants THEN t_ids[1] ELSE cur END);
        RETURN NEXT;
        -- The lane each tenant was served last goes to the back of its ring
        -- (one statement, in tenant order: concurrent claims lock these rows
        -- in one order).
        INSERT INTO claim_turns (tenant_id, destination_id)
        SELECT u.t, u.d FROM UNNEST(t_ids, t_served) AS u(t, d)
        WHERE u.d IS NOT NULL ORDER BY u.t
        ON CONFLICT (tenant_id) DO UPDATE SET destination_id = EXCLUDED.destination_id;
        RETURN;
    END
    $fn$;"#,
    // 10: claims read the queue through its indexes whatever the
    // statistics say: a lane's due delivery through the lane's index (as
    // `EXISTS`, the planner read the table from its start, past every
    // leased and finished delivery), and no statement planned with a table
    // scan (`enable_seqscan = off` in the function: plans a session made
    // while the queue was empty kept scanning it once it was deep, the
    // leases' `UPDATE` by `ctid` among them). A lane is locked before it
    // is read (the read then sees every claim that held it before, so its
    // live leases are counted once, not twice). The same turns, caps and
    // order as migration 9's.
    r#"CREATE OR REPLACE FUNCTION prets_claim(
        p_now BIGINT, p_limit INTEGER, p_per_destination INTEGER, p_failing_limit INTEGER,
        p_per_failing INTEGER, p_token BYTEA, p_expires BIGINT, p_after TEXT,
        p_lane_scan INTEGER)
    RETURNS TABLE (o_seq INTEGER, o_tenant TEXT, o_event TEXT, o_destination TEXT,
        o_attempt BIGINT, o_failing BOOLEAN, o_next_after TEXT)
    LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
    DECLARE
        -- Tenants in the order they take turns, found one by one.
        t_ids TEXT[] := '{}';
        t_alive BOOLEAN[] := '{}';
        t_start TEXT[] := '{}';     -- its lanes start after this one
        t_cur TEXT[] := '{}';       -- the lane looked at last
        t_wrapped BOOLEAN[] := '{}';
        t_done BOOLEAN[] := '{}';   -- no lane left to find
        t_scanned INTEGER[] := '{}';
        t_count INTEGER[] := '{}';  -- lanes found
        t_head INTEGER[] := '{}';   -- its lanes: a ring through l_next
        t_tail INTEGER[] := '{}';
        t_at INTEGER[] := '{}';     -- the lane served (or passed) last
        t_served TEXT[] := '{}';
        -- Lanes with room and a due delivery when found.
        l_dest TEXT[] := '{}';
        l_room INTEGER[] := '{}';
        l_failing BOOLEAN[] := '{}';
        l_alive BOOLEAN[] := '{}';
        l_next INTEGER[] := '{}';
        -- Each lane's candidates, read and locked once when it is found:
        -- c_ev and c_att from l_off + 1, l_cnt of them, l_used taken.
        c_ev TEXT[] := '{}';
        c_att BIGINT[] := '{}';
        c_tid TID[] := '{}';
        n_c INTEGER := 0;
        l_off INTEGER[] := '{}';
        l_cnt INTEGER[] := '{}';
        l_used INTEGER[] := '{}';
        -- What the claim leases, written by one statement at the end.
        r_tid TID[] := '{}';
        got INTEGER;
        row_tid TID;
        offers BOOLEAN;
        n INTEGER := 0;
        n_l INTEGER := 0;
        i INTEGER := 0;
        j INTEGER;
        checked INTEGER;
        cur TEXT := p_after;
        nxt TEXT;
        wrapped BOOLEAN := false;
        finding BOOLEAN := true;
        all_tenants BOOLEAN := false;
        progress BOOLEAN := false;
        next_after TEXT;
        lane TEXT;
        failing_ BOOLEAN;
        cap INTEGER;
        live INTEGER;
        ev TEXT;
        att BIGINT;
        taken INTEGER := 0;
        failing_taken INTEGER := 0;
    BEGIN
        IF p_limit <= 0 THEN
            RETURN;
        END IF;
        -- Leases need no flush before the answer: one lost in a crash of
        -- the database only makes its delivery claimable again (at least
        -- once), and the claim's caller waits for no disk.
        PERFORM set_config('synchronous_commit', 'off', true);
        -- Turns: each tenant in order, its next lane, one delivery, the
        -- earliest due of the lane. The first pass finds the tenants (from
        -- the one after p_after, wrapping once), each tenant finds its lanes
        -- as its turns need them (from the lane after the one it was served
        -- last), so a claim looks at no more than it takes and passes.
        LOOP
            i := i + 1;
            IF i > n AND finding THEN
                LOOP
                    SELECT d.tenant_id INTO nxt FROM deliveries d
                    WHERE d.tenant_id > cur ORDER BY d.tenant_id LIMIT 1;
                    IF nxt IS NULL THEN
                        IF wrapped OR p_after = '' THEN
                            EXIT;
                        END IF;
                        wrapped := true;
                        cur := '';
                        CONTINUE;
                    END IF;
                    IF wrapped AND nxt > p_after THEN
                        nxt := NULL;
                    END IF;
                    EXIT;
                END LOOP;
                IF nxt IS NULL THEN
                    finding := false;
                    all_tenants := true;
                ELSE
                    cur := nxt;
                    n := n + 1;
                    t_ids[n] := nxt;
                    t_alive[n] := true;
                    SELECT c.destination_id INTO lane FROM claim_turns c WHERE c.tenant_id = nxt;
                    t_start[n] := COALESCE(lane, '');
                    t_cur[n] := t_start[n];
                    t_wrapped[n] := false;
                    t_done[n] := false;
                    t_scanned[n] := 0;
                    t_count[n] := 0;
                    t_head[n] := 0;
                    t_tail[n] := 0;
                    t_at[n] := 0;
                    t_served[n] := NULL;
                END IF;
            END IF;
            IF i > n THEN
                -- A pass is over.
                EXIT WHEN NOT progress;
                finding := false;
                progress := false;
                i := 1;
            END IF;
            IF next_after IS NULL AND NOT finding THEN
                -- The next claim starts after the last tenant looked at, or,
                -- when every tenant was, after the first one: the ring turns.
                next_after := CASE WHEN all_tenants THEN t_ids[1] ELSE cur END;
            END IF;
            CONTINUE WHEN NOT t_alive[i];
            -- Tenant i's turn: its lanes from the one after t_at, finding
            -- one more at the end of those found.
            checked := 0;
            LOOP
                j := 0;
                IF t_head[i] = 0 OR t_at[i] = t_tail[i] THEN
                    WHILE NOT t_done[i] LOOP
                        IF t_scanned[i] >= p_lane_scan THEN
                            t_done[i] := true;
                            EXIT;
                        END IF;
                        SELECT d.destination_id INTO lane FROM deliveries d
                        WHERE d.tenant_id = t_ids[i] AND d.destination_id > t_cur[i]
                        ORDER BY d.destination_id LIMIT 1;
                        IF lane IS NULL THEN
                            IF t_wrapped[i] OR t_start[i] = '' THEN
                                t_done[i] := true;
                                EXIT;
                            END IF;
                            t_wrapped[i] := true;
                            t_cur[i] := '';
                            CONTINUE;
                        END IF;
                        IF t_wrapped[i] AND lane > t_start[i] THEN
                            t_done[i] := true;
                            EXIT;
                        END IF;
                        t_cur[i] := lane;
                        t_scanned[i] := t_scanned[i] + 1;
                        -- One claim at a time per lane (another one on it now
                        -- serves it: skip it).
                        CONTINUE WHEN NOT pg_try_advisory_xact_lock(
                            hashtext(t_ids[i]), hashtext(lane));
                        -- Its kind, live leases and whether it offers one,
                        -- in one statement, whose snapshot (taken with the
                        -- lock held) sees every claim that held it before.
                        SELECT x.failing_since_ms IS NOT NULL,
                            (SELECT count(*) FROM (
                                SELECT 1 FROM deliveries d
                                WHERE d.tenant_id = x.tenant_id
                                  AND d.destination_id = x.destination_id
                                  AND d.lease_token IS NOT NULL
                                  AND d.lease_expires_at_ms > p_now
                                LIMIT GREATEST(p_per_failing, p_per_destination)) l),
                            (SELECT d.due_at_ms FROM deliveries d
                                WHERE d.tenant_id = x.tenant_id
                                  AND d.destination_id = x.destination_id
                                  AND d.due_at_ms <= p_now
                                  AND (d.lease_expires_at_ms IS NULL
                                       OR d.lease_expires_at_ms <= p_now)
                                ORDER BY d.due_at_ms LIMIT 1) IS NOT NULL
                        INTO failing_, live, offers
                        FROM destinations x WHERE x.tenant_id = t_ids[i] AND x.destination_id = lane;
                        CONTINUE WHEN NOT FOUND OR (failing_ AND p_failing_limit <= 0);
                        cap := CASE WHEN failing_ THEN p_per_failing ELSE p_per_destination END;
                        -- A lane with room and a delivery to offer.
                        CONTINUE WHEN live >= cap OR NOT offers;
                        -- Its candidates: the earliest available, as many as
                        -- its room (and the claim) may take, locked until
                        -- this commits (concurrent claims skip them).
                        got := 0;
                        FOR ev, att, row_tid IN
                            SELECT d.event_id, d.attempt, d.ctid FROM deliveries d
                            WHERE d.tenant_id = t_ids[i] AND d.destination_id = lane
                              AND d.due_at_ms <= p_now
                              AND (d.lease_expires_at_ms IS NULL
                                   OR d.lease_expires_at_ms <= p_now)
                            ORDER BY d.due_at_ms
                            LIMIT LEAST(cap - live, p_limit)
                            FOR UPDATE SKIP LOCKED
                        LOOP
                            got := got + 1;
                            c_ev[n_c + got] := ev;
                            c_att[n_c + got] := att;
                            c_tid[n_c + got] := row_tid;
                        END LOOP;
                        CONTINUE WHEN got = 0;
                        n_l := n_l + 1;
                        l_off[n_l] := n_c;
                        l_cnt[n_l] := got;
                        l_used[n_l] := 0;
                        n_c := n_c + got;
                        l_dest[n_l] := lane;
                        l_room[n_l] := cap - live;
                        l_failing[n_l] := failing_;
                        l_alive[n_l] := true;
                        IF t_head[i] = 0 THEN
                            t_head[i] := n_l;
                        ELSE
                            l_next[t_tail[i]] := n_l;
                        END IF;
                        t_tail[i] := n_l;
                        l_next[n_l] := t_head[i];
                        t_count[i] := t_count[i] + 1;
                        j := n_l;
                        EXIT;
                    END LOOP;
                    IF j = 0 THEN
                        j := t_head[i];
                    END IF;
                ELSIF t_at[i] = 0 THEN
                    j := t_head[i];
                ELSE
                    j := l_next[t_at[i]];
                END IF;
                EXIT WHEN j = 0;
                t_at[i] := j;
                checked := checked + 1;
                IF l_alive[j] AND l_room[j] > 0
                   AND NOT (l_failing[j] AND failing_taken >= p_failing_limit) THEN
                    IF l_used[j] < l_cnt[j] THEN
                        l_used[j] := l_used[j] + 1;
                        ev := c_ev[l_off[j] + l_used[j]];
                        att := c_att[l_off[j] + l_used[j]];
                        taken := taken + 1;
                        r_tid[taken] := c_tid[l_off[j] + l_used[j]];
                        IF l_failing[j] THEN
                            failing_taken := failing_taken + 1;
                        END IF;
                        l_room[j] := l_room[j] - 1;
                        t_served[i] := l_dest[j];
                        progress := true;
                        o_seq := taken;
                        o_tenant := t_ids[i];
                        o_event := ev;
                        o_destination := l_dest[j];
                        o_attempt := att;
                        o_failing := l_failing[j];
                        o_next_after := NULL;
                        RETURN NEXT;
                        EXIT;
                    END IF;
                    l_alive[j] := false;
                END IF;
                IF t_done[i] AND checked >= t_count[i] THEN
                    -- Every lane found was tried: nothing more here.
                    t_alive[i] := false;
                    EXIT;
                END IF;
            END LOOP;
            IF j = 0 THEN
                t_alive[i] := false;
            END IF;
            EXIT WHEN taken >= p_limit;
        END LOOP;
        IF taken = 0 THEN
            RETURN;
        END IF;
        -- The leases, in one statement: by the rows' ids, which stay put
        -- while this transaction holds their locks.
        UPDATE deliveries d SET lease_token = p_token, lease_expires_at_ms = p_expires
        WHERE d.ctid = ANY (r_tid);
        -- The cursor row: after every delivery, so its value is final.
        o_seq := 0;
        o_tenant := NULL;
        o_event := NULL;
        o_destination := NULL;
        o_attempt := NULL;
        o_failing := NULL;
        o_next_after := COALESCE(next_after, CASE WHEN all_tenants THEN t_ids[1] ELSE cur END);
        RETURN NEXT;
        -- The lane each tenant was served last goes to the back of its ring
        -- (one statement, in tenant order: concurrent claims lock these rows
        -- in one order).
        INSERT INTO claim_turns (tenant_id, destination_id)
        SELECT u.t, u.d FROM UNNEST(t_ids, t_served) AS u(t, d)
        WHERE u.d IS NOT NULL ORDER BY u.t
        ON CONFLICT (tenant_id) DO UPDATE SET destination_id = EXCLUDED.destination_id;
        RETURN;
    END
    $fn$"#,
    // 11: a claim commits with the WAL's flush, as every other write does
    // (claims made by migrations 4 to 10 did not): no reader may mark a
    // row's index entries dead before the commit that ended the row is
    // flushed, so claims walked the entries of every lease and completion
    // not yet flushed (the WAL writer's delay, 200 ms by default) again
    // and again. And a lane with room is read for its candidates at once,
    // not first for whether it has one due: each visit walks the head of
    // the lane's index once, not twice. No candidate found is a lane with
    // nothing due, as before. The same turns, caps and order as migration
    // 10's.
    r#"CREATE OR REPLACE FUNCTION prets_claim(
        p_now BIGINT, p_limit INTEGER, p_per_destination INTEGER, p_failing_limit INTEGER,
        p_per_failing INTEGER, p_token BYTEA, p_expires BIGINT, p_after TEXT,
        p_lane_scan INTEGER)
    RETURNS TABLE (o_seq INTEGER, o_tenant TEXT, o_event TEXT, o_destination TEXT,
        o_attempt BIGINT, o_failing BOOLEAN, o_next_after TEXT)
    LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
    DECLARE
        -- Tenants in the order they take turns, found one by one.
        t_ids TEXT[] := '{}';
        t_alive BOOLEAN[] := '{}';
        t_start TEXT[] := '{}';     -- its lanes start after this one
        t_cur TEXT[] := '{}';       -- the lane looked at last
        t_wrapped BOOLEAN[] := '{}';
        t_done BOOLEAN[] := '{}';   -- no lane left to find
        t_scanned INTEGER[] := '{}';
        t_count INTEGER[] := '{}';  -- lanes found
        t_head INTEGER[] := '{}';   -- its lanes: a ring through l_next
        t_tail INTEGER[] := '{}';
        t_at INTEGER[] := '{}';     -- the lane served (or passed) last
        t_served TEXT[] := '{}';
        -- Lanes with room and a due delivery when found.
        l_dest TEXT[] := '{}';
        l_room INTEGER[] := '{}';
        l_failing BOOLEAN[] := '{}';
        l_alive BOOLEAN[] := '{}';
        l_next INTEGER[] := '{}';
        -- Each lane's candidates, read and locked once when it is found:
        -- c_ev and c_att from l_off + 1, l_cnt of them, l_used taken.
        c_ev TEXT[] := '{}';
        c_att BIGINT[] := '{}';
        c_tid TID[] := '{}';
        n_c INTEGER := 0;
        l_off INTEGER[] := '{}';
        l_cnt INTEGER[] := '{}';
        l_used INTEGER[] := '{}';
        -- What the claim leases, written by one statement at the end.
        r_tid TID[] := '{}';
        got INTEGER;
        row_tid TID;
        n INTEGER := 0;
        n_l INTEGER := 0;
        i INTEGER := 0;
        j INTEGER;
        checked INTEGER;
        cur TEXT := p_after;
        nxt TEXT;
        wrapped BOOLEAN := false;
        finding BOOLEAN := true;
        all_tenants BOOLEAN := false;
        progress BOOLEAN := false;
        next_after TEXT;
        lane TEXT;
        failing_ BOOLEAN;
        cap INTEGER;
        live INTEGER;
        ev TEXT;
        att BIGINT;
        taken INTEGER := 0;
        failing_taken INTEGER := 0;
    BEGIN
        IF p_limit <= 0 THEN
            RETURN;
        END IF;
        -- Turns: each tenant in order, its next lane, one delivery, the
        -- earliest due of the lane. The first pass finds the tenants (from
        -- the one after p_after, wrapping once), each tenant finds its lanes
        -- as its turns need them (from the lane after the one it was served
        -- last), so a claim looks at no more than it takes and passes.
        LOOP
            i := i + 1;
            IF i > n AND finding THEN
                LOOP
                    SELECT d.tenant_id INTO nxt FROM deliveries d
                    WHERE d.tenant_id > cur ORDER BY d.tenant_id LIMIT 1;
                    IF nxt IS NULL THEN
                        IF wrapped OR p_after = '' THEN
                            EXIT;
                        END IF;
                        wrapped := true;
                        cur := '';
                        CONTINUE;
                    END IF;
                    IF wrapped AND nxt > p_after THEN
                        nxt := NULL;
                    END IF;
                    EXIT;
                END LOOP;
                IF nxt IS NULL THEN
                    finding := false;
                    all_tenants := true;
                ELSE
                    cur := nxt;
                    n := n + 1;
                    t_ids[n] := nxt;
                    t_alive[n] := true;
                    SELECT c.destination_id INTO lane FROM claim_turns c WHERE c.tenant_id = nxt;
                    t_start[n] := COALESCE(lane, '');
                    t_cur[n] := t_start[n];
                    t_wrapped[n] := false;
                    t_done[n] := false;
                    t_scanned[n] := 0;
                    t_count[n] := 0;
                    t_head[n] := 0;
                    t_tail[n] := 0;
                    t_at[n] := 0;
                    t_served[n] := NULL;
                END IF;
            END IF;
            IF i > n THEN
                -- A pass is over.
                EXIT WHEN NOT progress;
                finding := false;
                progress := false;
                i := 1;
            END IF;
            IF next_after IS NULL AND NOT finding THEN
                -- The next claim starts after the last tenant looked at, or,
                -- when every tenant was, after the first one: the ring turns.
                next_after := CASE WHEN all_tenants THEN t_ids[1] ELSE cur END;
            END IF;
            CONTINUE WHEN NOT t_alive[i];
            -- Tenant i's turn: its lanes from the one after t_at, finding
            -- one more at the end of those found.
            checked := 0;
            LOOP
                j := 0;
                IF t_head[i] = 0 OR t_at[i] = t_tail[i] THEN
                    WHILE NOT t_done[i] LOOP
                        IF t_scanned[i] >= p_lane_scan THEN
                            t_done[i] := true;
                            EXIT;
                        END IF;
                        SELECT d.destination_id INTO lane FROM deliveries d
                        WHERE d.tenant_id = t_ids[i] AND d.destination_id > t_cur[i]
                        ORDER BY d.destination_id LIMIT 1;
                        IF lane IS NULL THEN
                            IF t_wrapped[i] OR t_start[i] = '' THEN
                                t_done[i] := true;
                                EXIT;
                            END IF;
                            t_wrapped[i] := true;
                            t_cur[i] := '';
                            CONTINUE;
                        END IF;
                        IF t_wrapped[i] AND lane > t_start[i] THEN
                            t_done[i] := true;
                            EXIT;
                        END IF;
                        t_cur[i] := lane;
                        t_scanned[i] := t_scanned[i] + 1;
                        -- One claim at a time per lane (another one on it now
                        -- serves it: skip it).
                        CONTINUE WHEN NOT pg_try_advisory_xact_lock(
                            hashtext(t_ids[i]), hashtext(lane));
                        -- Its kind and live leases, in one statement, whose
                        -- snapshot (taken with the lock held) sees every
                        -- claim that held it before.
                        SELECT x.failing_since_ms IS NOT NULL,
                            (SELECT count(*) FROM (
                                SELECT 1 FROM deliveries d
                                WHERE d.tenant_id = x.tenant_id
                                  AND d.destination_id = x.destination_id
                                  AND d.lease_token IS NOT NULL
                                  AND d.lease_expires_at_ms > p_now
                                LIMIT GREATEST(p_per_failing, p_per_destination)) l)
                        INTO failing_, live
                        FROM destinations x WHERE x.tenant_id = t_ids[i] AND x.destination_id = lane;
                        CONTINUE WHEN NOT FOUND OR (failing_ AND p_failing_limit <= 0);
                        cap := CASE WHEN failing_ THEN p_per_failing ELSE p_per_destination END;
                        CONTINUE WHEN live >= cap;
                        -- Its candidates: the earliest available, as many as
                        -- its room (and the claim) may take, locked until
                        -- this commits (concurrent claims skip them). None
                        -- found: the lane has nothing due now.
                        got := 0;
                        FOR ev, att, row_tid IN
                            SELECT d.event_id, d.attempt, d.ctid FROM deliveries d
                            WHERE d.tenant_id = t_ids[i] AND d.destination_id = lane
                              AND d.due_at_ms <= p_now
                              AND (d.lease_expires_at_ms IS NULL
                                   OR d.lease_expires_at_ms <= p_now)
                            ORDER BY d.due_at_ms
                            LIMIT LEAST(cap - live, p_limit)
                            FOR UPDATE SKIP LOCKED
                        LOOP
                            got := got + 1;
                            c_ev[n_c + got] := ev;
                            c_att[n_c + got] := att;
                            c_tid[n_c + got] := row_tid;
                        END LOOP;
                        CONTINUE WHEN got = 0;
                        n_l := n_l + 1;
                        l_off[n_l] := n_c;
                        l_cnt[n_l] := got;
                        l_used[n_l] := 0;
                        n_c := n_c + got;
                        l_dest[n_l] := lane;
                        l_room[n_l] := cap - live;
                        l_failing[n_l] := failing_;
                        l_alive[n_l] := true;
                        IF t_head[i] = 0 THEN
                            t_head[i] := n_l;
                        ELSE
                            l_next[t_tail[i]] := n_l;
                        END IF;
                        t_tail[i] := n_l;
                        l_next[n_l] := t_head[i];
                        t_count[i] := t_count[i] + 1;
                        j := n_l;
                        EXIT;
                    END LOOP;
                    IF j = 0 THEN
                        j := t_head[i];
                    END IF;
                ELSIF t_at[i] = 0 THEN
                    j := t_head[i];
                ELSE
                    j := l_next[t_at[i]];
                END IF;
                EXIT WHEN j = 0;
                t_at[i] := j;
                checked := checked + 1;
                IF l_alive[j] AND l_room[j] > 0
                   AND NOT (l_failing[j] AND failing_taken >= p_failing_limit) THEN
                    IF l_used[j] < l_cnt[j] THEN
                        l_used[j] := l_used[j] + 1;
                        ev := c_ev[l_off[j] + l_used[j]];
                        att := c_att[l_off[j] + l_used[j]];
                        taken := taken + 1;
                        r_tid[taken] := c_tid[l_off[j] + l_used[j]];
                        IF l_failing[j] THEN
                            failing_taken := failing_taken + 1;
                        END IF;
                        l_room[j] := l_room[j] - 1;
                        t_served[i] := l_dest[j];
                        progress := true;
                        o_seq := taken;
                        o_tenant := t_ids[i];
                        o_event := ev;
                        o_destination := l_dest[j];
                        o_attempt := att;
                        o_failing := l_failing[j];
                        o_next_after := NULL;
                        RETURN NEXT;
                        EXIT;
                    END IF;
                    l_alive[j] := false;
                END IF;
                IF t_done[i] AND checked >= t_count[i] THEN
                    -- Every lane found was tried: nothing more here.
                    t_alive[i] := false;
                    EXIT;
                END IF;
            END LOOP;
            IF j = 0 THEN
                t_alive[i] := false;
            END IF;
            EXIT WHEN taken >= p_limit;
        END LOOP;
        IF taken = 0 THEN
            RETURN;
        END IF;
        -- The leases, in one statement: by the rows' ids, which stay put
        -- while this transaction holds their locks.
        UPDATE deliveries d SET lease_token = p_token, lease_expires_at_ms = p_expires
        WHERE d.ctid = ANY (r_tid);
        -- The cursor row: after every delivery, so its value is final.
        o_seq := 0;
        o_tenant := NULL;
        o_event := NULL;
        o_destination := NULL;
        o_attempt := NULL;
        o_failing := NULL;
        o_next_after := COALESCE(next_after, CASE WHEN all_tenants THEN t_ids[1] ELSE cur END);
        RETURN NEXT;
        -- The lane each tenant was served last goes to the back of its ring
        -- (one statement, in tenant order: concurrent claims lock these rows
        -- in one order).
        INSERT INTO claim_turns (tenant_id, destination_id)
        SELECT u.t, u.d FROM UNNEST(t_ids, t_served) AS u(t, d)
        WHERE u.d IS NOT NULL ORDER BY u.t
        ON CONFLICT (tenant_id) DO UPDATE SET destination_id = EXCLUDED.destination_id;
        RETURN;
    END
    $fn$"#,
];

/// The advisory lock every node takes (for the migration transaction only)
/// before it reads the schema version: nodes starting at once migrate one
/// after another, and the later ones find nothing to do.
/// The key is `b"prets-ds"` as a big-endian integer.
const MIGRATION_LOCK: i64 = i64::from_be_bytes(*b"prets-ds");

/// The schema version this build writes: the number of migrations.
#[must_use]
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// Brings the database to [`schema_version`], in one transaction holding
/// [`MIGRATION_LOCK`]; refuses a database whose version is newer.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), PgError> {
    migrate_to(client, MIGRATIONS.len()).await
}

/// [`migrate`], stopping at version `target` (the tests' old schemas).
pub(crate) async fn migrate_to(client: &mut Client, target: usize) -> Result<(), PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER     NOT NULL PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.len();
    let start = usize::try_from(found)
        .ok()
        .filter(|v| *v <= known)
        .ok_or_else(|| PgError::schema_too_new(found, known))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().take(target).skip(start) {
        tx.batch_execute(sql).await?;
        let version = i32::try_from(index + 1).map_err(|_| PgError::corrupt("schema version"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
