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
/// `deliveries` also reference their `events` row, which is deleted with
/// the event's last delivery. Attempts are listed newest first by a
/// backward scan of their primary key `(tenant_id, destination_id,
/// attempt_id)`; claims walk `deliveries_by_due_time`.
const MIGRATIONS: &[&str] = &[
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
    CREATE FUNCTION prets_claim(
        p_now BIGINT, p_limit INTEGER, p_per_destination INTEGER, p_failing_limit INTEGER,
        p_per_failing INTEGER, p_token BYTEA, p_expires BIGINT, p_after TEXT,
        p_lane_scan INTEGER)
    RETURNS TABLE (o_seq INTEGER, o_tenant TEXT, o_event TEXT, o_destination TEXT,
        o_attempt BIGINT, o_failing BOOLEAN, o_next_after TEXT)
    LANGUAGE plpgsql AS $fn$
    DECLARE
        t_ids TEXT[] := '{}';      -- tenants with a lane that has room, in turn order
        t_first INTEGER[] := '{}'; -- their lanes: l_* indexes t_first .. t_last
        t_last INTEGER[] := '{}';
        t_next INTEGER[] := '{}';  -- the lane to try next, per tenant
        t_served TEXT[] := '{}';   -- the lane served last, per tenant
        l_dest TEXT[] := '{}';
        l_room INTEGER[] := '{}';
        l_failing BOOLEAN[] := '{}';
        l_alive BOOLEAN[] := '{}';
        cur TEXT := p_after;
        nxt TEXT;
        wrapped BOOLEAN := false;
        lane_cur TEXT;
        lane_start TEXT;
        lane_wrapped BOOLEAN;
        lane TEXT;
        scanned INTEGER;
        enabled_ BOOLEAN;
        failing_ BOOLEAN;
        cap INTEGER;
        live INTEGER;
        first_lane INTEGER;
        taken INTEGER := 0;
        failing_taken INTEGER := 0;
        progress BOOLEAN;
        i INTEGER;
        j INTEGER;
        k INTEGER;
        ev TEXT;
        att BIGINT;
        next_after TEXT;
        all_tenants BOOLEAN := false;
    BEGIN
        IF p_limit <= 0 THEN
            RETURN;
        END IF;
        -- Tenants in turn from the one after p_after, wrapping once: at
        -- most p_limit of them with a lane that has room.
        LOOP
            SELECT d.tenant_id INTO nxt FROM deliveries d
            WHERE d.tenant_id > cur ORDER BY d.tenant_id LIMIT 1;
            IF nxt IS NULL THEN
                IF wrapped OR p_after = '' THEN
                    all_tenants := true;
                    EXIT;
                END IF;
                wrapped := true;
                cur := '';
                CONTINUE;
            END IF;
            IF wrapped AND nxt > p_after THEN
                all_tenants := true;
                EXIT;
            END IF;
            cur := nxt;
            -- Its lanes, from the one after the lane it was served last.
            SELECT c.destination_id INTO lane_start FROM claim_turns c WHERE c.tenant_id = nxt;
            lane_start := COALESCE(lane_start, '');
            lane_cur := lane_start;
            lane_wrapped := false;
            scanned := 0;
            first_lane := coalesce(array_length(l_dest, 1), 0) + 1;
            LOOP
                SELECT d.destination_id INTO lane FROM deliveries d
                WHERE d.tenant_id = nxt AND d.destination_id > lane_cur
                ORDER BY d.destination_id LIMIT 1;
                IF lane IS NULL THEN
                    EXIT WHEN lane_wrapped OR lane_start = '';
                    lane_wrapped := true;
                    lane_cur := '';
                    CONTINUE;
                END IF;
                EXIT WHEN lane_wrapped AND lane > lane_start;
                lane_cur := lane;
                scanned := scanned + 1;
                SELECT x.enabled, x.failing_since_ms IS NOT NULL INTO enabled_, failing_
                FROM destinations x WHERE x.tenant_id = nxt AND x.destination_id = lane;
                IF FOUND AND NOT (failing_ AND p_failing_limit <= 0) THEN
                    cap := CASE WHEN failing_ THEN p_per_failing ELSE p_per_destination END;
                    SELECT count(*) INTO live FROM (
                        SELECT 1 FROM deliveries d
                        WHERE d.tenant_id = nxt AND d.destination_id = lane
                          AND d.lease_token IS NOT NULL AND d.lease_expires_at_ms > p_now
                        LIMIT cap) l;
                    -- A lane with room and a delivery to offer.
                    IF live < cap AND EXISTS (
                        SELECT 1 FROM deliveries d
                        WHERE d.tenant_id = nxt AND d.destination_id = lane
                          AND d.due_at_ms <= p_now
                          AND (d.lease_expires_at_ms IS NULL OR d.lease_expires_at_ms <= p_now))
                    THEN
                        l_dest := l_dest || lane;
                        l_room := l_room || (cap - live);
                        l_failing := l_failing || failing_;
                        l_alive := l_alive || true;
                    END IF;
                END IF;
                EXIT WHEN scanned >= p_lane_scan;
            END LOOP;
            IF coalesce(array_length(l_dest, 1), 0) >= first_lane THEN
                t_ids := t_ids || nxt;
                t_first := t_first || first_lane;
                t_last := t_last || array_length(l_dest, 1);
                t_next := t_next || first_lane;
                t_served := t_served || NULL::TEXT;
                EXIT WHEN array_length(t_ids, 1) >= p_limit;
            END IF;
        END LOOP;
        IF coalesce(array_length(t_ids, 1), 0) = 0 THEN
            RETURN;
        END IF;
        -- The next claim starts after the last tenant looked at, or, when
        -- every tenant was, after the first one served: the ring turns.
        next_after := CASE WHEN all_tenants THEN t_ids[1] ELSE cur END;
        -- Turns: each tenant in order, its next lane with room, one
        -- delivery, the earliest due of the lane.
        <<turns>>
        LOOP
            progress := false;
            FOR i IN 1 .. array_length(t_ids, 1) LOOP
                j := t_next[i];
                FOR k IN 0 .. t_last[i] - t_first[i] LOOP
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
                            o_seq := taken;
                            o_tenant := t_ids[i];
                            o_event := ev;
                            o_destination := l_dest[j];
                            o_attempt := att;
                            o_failing := l_failing[j];
                            o_next_after := next_after;
                            RETURN NEXT;
                            progress := true;
                            j := CASE WHEN j >= t_last[i] THEN t_first[i] ELSE j + 1 END;
                            EXIT;
                        END IF;
                        l_alive[j] := false;
                    END IF;
                    j := CASE WHEN j >= t_last[i] THEN t_first[i] ELSE j + 1 END;
                END LOOP;
                t_next[i] := j;
                EXIT turns WHEN taken >= p_limit;
            END LOOP;
            EXIT WHEN NOT progress;
        END LOOP;
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
