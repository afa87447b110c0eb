//! Fair claims through indexes: the lanes, the organizations' rings and
//! [`claim`]. The same guarantees as the core's
//! [`FairQueue`](prets_destinations::delivery::FairQueue) (turns across
//! organizations and their destinations, each lane within its cap, healthy
//! work at least half of a claim), in its own round order (below).
//!
//! A *lane* (a row of `lanes`) is one destination of one organization. It is
//! *ready* while it may have a delivery to offer, and then sits in its
//! organization's ring of its kind (healthy or failing) by `turn`; otherwise
//! it sleeps until `wake_ms`, the earliest of its unleased deliveries' due
//! times and its leases' expiries (NULL: nothing pending). An organization
//! has a row in `rings` per kind while it may have ready lanes of that kind,
//! also by `turn`. Every write that gives a lane something to offer
//! ([`schedule`]: enqueue, retry, release) only lowers its `wake_ms`; a
//! claim wakes the lanes whose time has come, then walks the rings.
//!
//! A claim takes turns a pass at a time, as the core's queue does: the
//! organizations of a ring in turn order, each given an equal share of what
//! is left of the claim, and within one its ready lanes in turn order, each
//! given an equal share of the organization's, never past the lane's cap of
//! live leases (counted through `deliveries_leased`, up to the cap). A lane
//! or organization served goes to the back of its ring; one found with
//! nothing to offer leaves it (a lane falls asleep, an organization's row is
//! deleted); one found at its cap goes to the back. A round offers the
//! failing ring half of what is left of the claim (rounded down, within its
//! `failing_limit`), then the healthy ring the rest, then the failing ring
//! what healthy work left: so a claim reads each lane once when its share
//! covers the lane's room, where the core's queue (healthy work first)
//! may visit the healthy ring two or three times.
//!
//! Each statement reads or writes through an index with a bound: a claim
//! visits the organizations and lanes it serves, those it finds empty (once:
//! they leave the ring) and those at their cap (each holds live leases, so
//! there are at most as many as leases in flight), whatever the number of
//! deliveries queued.

use std::collections::HashSet;

use prets_destinations::delivery::{
    ClaimLimits, Claimed, DeliveryKey, Event, EventId, EventType, Lease, LeaseRequest, LeaseToken,
    Payload,
};
use prets_destinations::{TenantId, Timestamp};
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::error::{JobResult, SqliteError};
use super::rows::{millis, records_of, timestamp};

const SCHEDULE: &str =
    "INSERT INTO lanes (tenant_id, destination_id, failing, ready, wake_ms, turn)
     VALUES (?1, ?2,
         coalesce((SELECT failing_since_ms IS NOT NULL FROM destinations
                   WHERE tenant_id = ?1 AND destination_id = ?2), 0),
         0, ?3, 0)
     ON CONFLICT (tenant_id, destination_id) DO UPDATE SET
         wake_ms = CASE WHEN ready = 1 THEN NULL
                        ELSE min(coalesce(wake_ms, excluded.wake_ms), excluded.wake_ms) END";

const SET_FAILING: &str = "UPDATE lanes SET failing = ?3, ready = 0,
         wake_ms = CASE WHEN ready = 1 THEN 0 ELSE wake_ms END
     WHERE tenant_id = ?1 AND destination_id = ?2 AND failing != ?3";

const READ_TURN: &str = "SELECT next FROM turns WHERE id = 0";

const WRITE_TURN: &str = "UPDATE turns SET next = ?1 WHERE id = 0";

const WAKE: &str = "UPDATE lanes SET ready = 1, wake_ms = NULL, turn = ?2
     WHERE wake_ms <= ?1
     RETURNING tenant_id, failing";

const ENTER_RING: &str = "INSERT INTO rings (tenant_id, failing, turn) VALUES (?1, ?2, ?3)
     ON CONFLICT (tenant_id, failing) DO NOTHING";

const RING_ORGS: &str = "SELECT tenant_id, turn FROM rings
     WHERE failing = ?1 AND (turn, tenant_id) > (?2, ?3) AND turn < ?4
     ORDER BY turn, tenant_id LIMIT ?5";

const RING_BACK: &str = "UPDATE rings SET turn = ?3 WHERE tenant_id = ?1 AND failing = ?2";

const RING_LEAVE: &str = "DELETE FROM rings WHERE tenant_id = ?1 AND failing = ?2";

const READY_LANES: &str = "SELECT destination_id, turn FROM lanes
     WHERE tenant_id = ?1 AND failing = ?2 AND ready = 1
         AND (turn, destination_id) > (?3, ?4) AND turn < ?5
     ORDER BY turn, destination_id LIMIT ?6";

const STANDING: &str = "SELECT enabled, failing_since_ms IS NOT NULL FROM destinations
     WHERE tenant_id = ?1 AND destination_id = ?2";

const LANE_KIND: &str = "UPDATE lanes SET failing = ?3, turn = ?4
     WHERE tenant_id = ?1 AND destination_id = ?2";

const DROP_LAPSED: &str = "DELETE FROM deliveries INDEXED BY deliveries_by_lane
     WHERE tenant_id = ?1 AND destination_id = ?2
         AND (lease_expires_ms IS NULL OR lease_expires_ms <= ?3)";

const DUE: &str = "SELECT d.event_id, d.attempt, e.event_type, e.created_at_ms, e.payload
     FROM deliveries d
     JOIN events e ON e.tenant_id = d.tenant_id AND e.event_id = d.event_id
     WHERE d.tenant_id = ?1 AND d.destination_id = ?2 AND d.due_at_ms <= ?3
         AND (d.lease_expires_ms IS NULL OR d.lease_expires_ms <= ?3)
     ORDER BY d.due_at_ms, d.event_id
     LIMIT ?4";

const LEASE: &str = "UPDATE deliveries SET lease_token = ?3, lease_expires_ms = ?4
     WHERE tenant_id = ?1 AND destination_id = ?2
         AND event_id IN (SELECT value FROM json_each(?5))";

pub(super) const STANDING_AND_LEASES: &str = "SELECT x.enabled, x.failing_since_ms IS NOT NULL,
         (SELECT count(*) FROM (
             SELECT 1 FROM deliveries d
             WHERE d.tenant_id = ?1 AND d.destination_id = ?2
                 AND d.lease_token IS NOT NULL AND d.lease_expires_ms > ?3
             LIMIT ?4))
     FROM destinations x
     WHERE x.tenant_id = ?1 AND x.destination_id = ?2";

const LANE_BACK: &str = "UPDATE lanes SET turn = ?3 WHERE tenant_id = ?1 AND destination_id = ?2";

const SLEEP: &str = "UPDATE lanes SET ready = 0, wake_ms = (
         SELECT min(at) FROM (
             SELECT * FROM (
                 SELECT due_at_ms AS at FROM deliveries
                 WHERE tenant_id = ?1 AND destination_id = ?2
                     AND lease_expires_ms IS NULL
                 ORDER BY due_at_ms LIMIT 1)
             UNION ALL
             SELECT * FROM (
                 SELECT lease_expires_ms AS at FROM deliveries
                 WHERE tenant_id = ?1 AND destination_id = ?2
                     AND lease_token IS NOT NULL
                 ORDER BY lease_expires_ms LIMIT 1)))
     WHERE tenant_id = ?1 AND destination_id = ?2";

/// Every statement of a claim, by name: the plans test reads them.
#[cfg(test)]
pub(super) const STATEMENTS: &[(&str, &str)] = &[
    ("schedule", SCHEDULE),
    ("set_failing", SET_FAILING),
    ("read_turn", READ_TURN),
    ("write_turn", WRITE_TURN),
    ("wake", WAKE),
    ("enter_ring", ENTER_RING),
    ("ring_orgs", RING_ORGS),
    ("ring_back", RING_BACK),
    ("ring_leave", RING_LEAVE),
    ("ready_lanes", READY_LANES),
    ("standing", STANDING),
    ("lane_kind", LANE_KIND),
    ("drop_lapsed", DROP_LAPSED),
    ("due", DUE),
    ("lease", LEASE),
    ("standing_and_leases", STANDING_AND_LEASES),
    ("records", super::rows::RECORDS_OF_KEYS),
    ("lane_back", LANE_BACK),
    ("sleep", SLEEP),
];

/// A count or limit as SQLite's integer, saturating.
pub(super) fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Gives the lane of `(tenant, destination)` something to offer from
/// `at_ms` (a delivery due then, or given back): a sleeping lane wakes by
/// then, a ready one stays as it is. Creates the lane if needed (the
/// destination must exist).
pub(super) fn schedule(
    conn: &Connection,
    tenant: &str,
    destination: &str,
    at_ms: i64,
) -> JobResult<()> {
    conn.prepare_cached(SCHEDULE)?
        .execute(params![tenant, destination, at_ms])?;
    Ok(())
}

/// Keeps the lane's kind in step with the destination's failure streak
/// after a write that may have changed it. A ready lane that changes kind
/// wakes again at the next claim, which puts it in the ring of its kind.
pub(super) fn set_failing(
    conn: &Connection,
    tenant: &str,
    destination: &str,
    failing: bool,
) -> JobResult<()> {
    conn.prepare_cached(SET_FAILING)?
        .execute(params![tenant, destination, failing])?;
    Ok(())
}

/// [`set_failing`] as the destination's stored failure streak says.
pub(super) fn sync_failing(conn: &Connection, tenant: &str, destination: &str) -> JobResult<()> {
    let failing: Option<bool> = conn
        .prepare_cached(STANDING)?
        .query_row(params![tenant, destination], |r| r.get(1))
        .optional()?;
    match failing {
        Some(failing) => set_failing(conn, tenant, destination, failing),
        None => Ok(()),
    }
}

/// Leases up to `limits.limit` due deliveries fairly (see the module doc).
pub(super) fn claim(
    conn: &Connection,
    now: Timestamp,
    limits: ClaimLimits,
    lease: LeaseRequest,
) -> JobResult<Vec<Claimed>> {
    let next_turn: i64 = conn
        .prepare_cached(READ_TURN)?
        .query_row([], |r| r.get(0))?;
    let mut claim = Claim {
        conn,
        now_ms: millis(now),
        limits,
        expires_at: now.saturating_add(lease.duration),
        token: lease.token.to_bytes(),
        next_turn,
        taken: 0,
        served: Vec::new(),
        failing_left: limits.failing_limit,
        dry: HashSet::new(),
        capped: HashSet::new(),
    };
    claim.wake()?;
    claim.run()?;
    conn.prepare_cached(WRITE_TURN)?
        .execute(params![claim.next_turn])?;
    claim.finish()
}

/// Healthy or failing: which ring.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Healthy,
    Failing,
}

impl Kind {
    const fn failing(self) -> bool {
        matches!(self, Self::Failing)
    }

    const fn of(failing: bool) -> Self {
        if failing {
            Self::Failing
        } else {
            Self::Healthy
        }
    }
}

/// What serving one lane did.
enum Served {
    /// Leased this many (at least one).
    Took(usize),
    /// At its cap (or the claim's failing limit): left in the ring, at the
    /// back.
    Full,
    /// Nothing to offer now, or it moved to the other ring: out of this
    /// ring.
    Left,
}

/// One claim in progress, on the writer's connection.
struct Claim<'c> {
    conn: &'c Connection,
    now_ms: i64,
    limits: ClaimLimits,
    expires_at: Timestamp,
    token: [u8; 16],
    /// The next turn to hand out: a lane or organization sent to the back
    /// of its ring takes it.
    next_turn: i64,
    /// Deliveries leased so far.
    taken: usize,
    /// What each lane served gave, in the order served; the deliveries are
    /// given their destinations' records once, at the end.
    served: Vec<ServedLane>,
    failing_left: usize,
    /// Organizations (and ring) this claim found with nothing to give.
    dry: HashSet<(String, Kind)>,
    /// Lanes (organization, destination) this claim found or left at their
    /// cap: not read again before the claim ends.
    capped: HashSet<(String, String)>,
}

impl Claim<'_> {
    fn turn(&mut self) -> i64 {
        let turn = self.next_turn;
        self.next_turn = self.next_turn.saturating_add(1);
        turn
    }

    fn left(&self) -> usize {
        self.limits.limit.saturating_sub(self.taken)
    }

    /// The lanes whose time has come are ready, at the back of their rings,
    /// and their organizations are in the rings of their kinds.
    fn wake(&mut self) -> JobResult<()> {
        let turn = self.turn();
        let woken: Vec<(String, bool)> = self
            .conn
            .prepare_cached(WAKE)?
            .query_map(params![self.now_ms, turn], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let orgs: HashSet<(String, bool)> = woken.into_iter().collect();
        for (tenant, failing) in orgs {
            self.enter_ring(&tenant, Kind::of(failing))?;
        }
        Ok(())
    }

    /// Puts the organization in the ring of `kind`, at the back, unless it
    /// is there.
    fn enter_ring(&mut self, tenant: &str, kind: Kind) -> JobResult<()> {
        let turn = self.turn();
        self.conn
            .prepare_cached(ENTER_RING)?
            .execute(params![tenant, kind.failing(), turn])?;
        Ok(())
    }

    /// Failing and healthy rings in turn, until the claim is full or a
    /// round finds nothing new: failing work may take half of what is left
    /// (rounded down, within the claim's failing limit), healthy work all
    /// the rest, then failing work what healthy work left. So healthy work
    /// always has at least half, and takes what failing work leaves in the
    /// same round instead of the next one: a claim visits each lane once
    /// when its share covers the lane's room.
    fn run(&mut self) -> JobResult<()> {
        loop {
            let before = (self.taken, self.dry.len());
            let left = self.left();
            if left == 0 {
                break;
            }
            let failing = (left / 2).min(self.failing_left);
            if failing > 0 {
                self.pass(Kind::Failing, failing)?;
            }
            let healthy = self.left();
            if healthy > 0 {
                self.pass(Kind::Healthy, healthy)?;
            }
            // What healthy work left (all of a claim of one).
            let failing = self.left().min(self.failing_left);
            if failing > 0 {
                self.pass(Kind::Failing, failing)?;
            }
            if (self.taken, self.dry.len()) == before {
                break;
            }
        }
        Ok(())
    }

    /// Serves up to `budget` from the organizations of one ring, in turn,
    /// an equal share each.
    fn pass(&mut self, kind: Kind, budget: usize) -> JobResult<()> {
        let bound = self.next_turn;
        let mut cursor = (i64::MIN, String::new());
        let mut left = budget;
        while left > 0 {
            let orgs: Vec<(String, i64)> = self
                .conn
                .prepare_cached(RING_ORGS)?
                .query_map(
                    params![kind.failing(), cursor.0, cursor.1, bound, sql_count(left)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let Some(last) = orgs.last() else {
                break;
            };
            cursor = (last.1, last.0.clone());
            let fresh: Vec<String> = orgs
                .into_iter()
                .map(|(tenant, _)| tenant)
                .filter(|tenant| !self.dry.contains(&(tenant.clone(), kind)))
                .collect();
            let share = left.div_ceil(fresh.len().max(1));
            for tenant in fresh {
                let quota = share.min(left);
                if quota == 0 {
                    break;
                }
                let (got, keep) = self.serve_org(&tenant, kind, quota)?;
                left = left.saturating_sub(got);
                if got == 0 {
                    self.dry.insert((tenant.clone(), kind));
                }
                if got > 0 || keep {
                    let turn = self.turn();
                    self.conn.prepare_cached(RING_BACK)?.execute(params![
                        tenant,
                        kind.failing(),
                        turn
                    ])?;
                } else {
                    self.conn
                        .prepare_cached(RING_LEAVE)?
                        .execute(params![tenant, kind.failing()])?;
                }
                if kind == Kind::Failing && self.failing_left == 0 {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Serves up to `quota` from the organization's ready lanes of `kind`,
    /// in turn, an equal share each: how many it took, and whether a lane
    /// at its cap keeps the organization in the ring.
    fn serve_org(&mut self, tenant: &str, kind: Kind, quota: usize) -> JobResult<(usize, bool)> {
        let bound = self.next_turn;
        let mut cursor = (i64::MIN, String::new());
        let (mut got, mut keep) = (0, false);
        while got < quota {
            let left = quota - got;
            let lanes: Vec<(String, i64)> = self
                .conn
                .prepare_cached(READY_LANES)?
                .query_map(
                    params![
                        tenant,
                        kind.failing(),
                        cursor.0,
                        cursor.1,
                        bound,
                        sql_count(left)
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let Some(last) = lanes.last() else {
                break;
            };
            cursor = (last.1, last.0.clone());
            // Lanes this claim left at their cap keep the organization in
            // the ring, unread, and take no share.
            let (full, open): (Vec<_>, Vec<_>) = lanes.into_iter().partition(|(destination, _)| {
                self.capped
                    .contains(&(tenant.to_owned(), destination.clone()))
            });
            keep |= !full.is_empty();
            let share = left.div_ceil(open.len().max(1));
            for (destination, _) in open {
                if kind == Kind::Failing && self.failing_left == 0 {
                    // The rest wait for a claim with room for failing work.
                    return Ok((got, true));
                }
                let want = share.min(quota - got);
                if want == 0 {
                    break;
                }
                match self.serve_lane(tenant, &destination, kind, want)? {
                    Served::Took(n) => got += n,
                    Served::Full => keep = true,
                    Served::Left => {}
                }
            }
        }
        // Lanes not reached keep the organization in the ring too.
        Ok((got, keep || got >= quota))
    }

    /// Leases up to `want` of the lane's available deliveries, earliest due
    /// first, within its cap.
    fn serve_lane(
        &mut self,
        tenant: &str,
        destination: &str,
        kind: Kind,
        want: usize,
    ) -> JobResult<Served> {
        let lane = (tenant.to_owned(), destination.to_owned());
        let standing: Option<(bool, bool, i64)> = self
            .conn
            .prepare_cached(STANDING_AND_LEASES)?
            .query_row(
                params![tenant, destination, self.now_ms, self.lease_count_limit()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        // The lane goes with its destination (a foreign key); none is
        // found here.
        let Some((enabled, failing, live)) = standing else {
            return Ok(Served::Left);
        };
        if failing != kind.failing() {
            // Its streak changed by a write that did not say so: into the
            // other ring, served there.
            let turn = self.turn();
            self.conn.prepare_cached(LANE_KIND)?.execute(params![
                tenant,
                destination,
                failing,
                turn
            ])?;
            self.enter_ring(tenant, Kind::of(failing))?;
            return Ok(Served::Left);
        }
        if !enabled {
            // Disabling dropped the unleased deliveries; a lease that ran out
            // since is finished here (an event row goes with its last
            // delivery: a trigger).
            self.conn.prepare_cached(DROP_LAPSED)?.execute(params![
                tenant,
                destination,
                self.now_ms
            ])?;
            self.sleep(tenant, destination)?;
            return Ok(Served::Left);
        }
        let cap = if kind.failing() {
            self.limits.per_failing_destination
        } else {
            self.limits.per_destination
        };
        // Counted up to the larger finite cap: at least up to this one.
        let live = usize::try_from(live).unwrap_or(usize::MAX);
        let mut room = if cap == usize::MAX {
            usize::MAX
        } else {
            cap.saturating_sub(live)
        };
        if kind.failing() {
            room = room.min(self.failing_left);
        }
        if room == 0 {
            self.send_back(tenant, destination)?;
            self.capped.insert(lane);
            return Ok(Served::Full);
        }
        let take = want.min(room);
        let rows: Vec<DueRow> = self
            .conn
            .prepare_cached(DUE)?
            .query_map(
                params![tenant, destination, self.now_ms, sql_count(take)],
                DueRow::read,
            )?
            .collect::<rusqlite::Result<_>>()?;
        if rows.len() >= take {
            self.send_back(tenant, destination)?;
            if take == room {
                self.capped.insert(lane);
            }
        }
        if rows.is_empty() {
            self.sleep(tenant, destination)?;
            return Ok(Served::Left);
        }
        // The stored text, not re-encoded: the key columns match exactly.
        let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        let ids = serde_json::to_string(&ids).map_err(|_| SqliteError::corrupt("event id"))?;
        let leased = self.conn.prepare_cached(LEASE)?.execute(params![
            tenant,
            destination,
            &self.token[..],
            millis(self.expires_at),
            ids
        ])?;
        if leased != rows.len() {
            return Err(SqliteError::corrupt("delivery key"));
        }
        // Nothing more to offer now: asleep until its next due time or the
        // earliest expiry of its leases (these included: a lease that runs
        // out is offered again).
        if rows.len() < take {
            self.sleep(tenant, destination)?;
        }
        let n = rows.len();
        self.taken += n;
        if failing {
            self.failing_left = self.failing_left.saturating_sub(n);
        }
        self.served.push(ServedLane {
            tenant: tenant.to_owned(),
            destination: destination.to_owned(),
            failing,
            rows,
        });
        Ok(Served::Took(n))
    }

    /// How far a lane's live leases (expiring after now) are counted: the
    /// larger of the finite caps (a lane's is one of them), 0 when neither
    /// is finite.
    fn lease_count_limit(&self) -> i64 {
        [
            self.limits.per_destination,
            self.limits.per_failing_destination,
        ]
        .into_iter()
        .filter(|&cap| cap != usize::MAX)
        .max()
        .map_or(0, sql_count)
    }

    /// The claimed deliveries, each with its destination's record: the
    /// records of every lane served read in one statement.
    fn finish(self) -> JobResult<Vec<Claimed>> {
        if self.served.is_empty() {
            return Ok(Vec::new());
        }
        let records = records_of(
            self.conn,
            self.served
                .iter()
                .map(|l| (l.tenant.as_str(), l.destination.as_str())),
        )?;
        let mut out = Vec::with_capacity(self.taken);
        for lane in self.served {
            let record = records
                .get(&(lane.tenant.clone(), lane.destination))
                .ok_or_else(|| SqliteError::corrupt("delivery destination"))?;
            let tenant_id =
                TenantId::try_from(lane.tenant).map_err(|_| SqliteError::corrupt("tenant id"))?;
            for row in lane.rows {
                let (event, attempt) = row.decode()?;
                out.push(Claimed {
                    lease: Lease {
                        token: LeaseToken::from_bytes(self.token),
                        delivery: DeliveryKey {
                            tenant: tenant_id.clone(),
                            event_id: event.event_id,
                            destination_id: record.destination_id,
                        },
                        expires_at: self.expires_at,
                    },
                    event,
                    attempt,
                    destination: record.clone(),
                    failing: lane.failing,
                });
            }
        }
        Ok(out)
    }

    /// Sends a lane to the back of its organization's ring.
    fn send_back(&mut self, tenant: &str, destination: &str) -> JobResult<()> {
        let turn = self.turn();
        self.conn
            .prepare_cached(LANE_BACK)?
            .execute(params![tenant, destination, turn])?;
        Ok(())
    }

    /// Takes a lane with nothing to offer now out of its ring, asleep until
    /// its earliest unleased due time or lease expiry (never, if it has
    /// neither).
    fn sleep(&self, tenant: &str, destination: &str) -> JobResult<()> {
        self.conn
            .prepare_cached(SLEEP)?
            .execute(params![tenant, destination])?;
        Ok(())
    }
}

/// The deliveries one lane gave a claim.
struct ServedLane {
    tenant: String,
    destination: String,
    failing: bool,
    rows: Vec<DueRow>,
}

/// A due delivery's raw columns with its event's, decoded outside rusqlite's
/// row callback so that decoding errors keep their own type.
struct DueRow {
    event_id: String,
    attempt: i64,
    event_type: String,
    created_at: i64,
    payload: String,
}

impl DueRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            event_id: row.get(0)?,
            attempt: row.get(1)?,
            event_type: row.get(2)?,
            created_at: row.get(3)?,
            payload: row.get(4)?,
        })
    }

    fn decode(self) -> JobResult<(Event, u32)> {
        let event_id =
            EventId::try_from(self.event_id).map_err(|_| SqliteError::corrupt("event id"))?;
        let event = Event {
            event_id,
            event_type: EventType::try_from(self.event_type)
                .map_err(|_| SqliteError::corrupt("event type"))?,
            created_at: timestamp(self.created_at, "event created at")?,
            payload: Payload::from_json(self.payload)
                .map_err(|_| SqliteError::corrupt("event payload"))?,
        };
        let attempt = u32::try_from(self.attempt).map_err(|_| SqliteError::corrupt("attempt"))?;
        Ok((event, attempt))
    }
}
