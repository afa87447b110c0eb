//! [`FairQueue`]: the fair, depth-independent scheduler of pending
//! deliveries, as a pure data structure (no I/O, no clock, no randomness).
//!
//! A *lane* is one destination of one organization (tenant). Claims serve
//! organizations in turn, and within an organization its lanes in turn, one
//! delivery per lane per turn; a lane has a cap on live leases; lanes of a
//! destination that keeps failing (see [`FairQueue::set_failing`]) are a
//! separate ring, the slow lane, with caps of their own. Every operation
//! costs O(log n) in the number n of pending deliveries for each delivery it
//! returns or removes: a claim of k costs O(k log n), whatever the depth of
//! any lane (amortized: a lane an earlier call left to re-check, such as one
//! found at its cap, is paid for once).

use core::fmt;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::id::{DestinationId, EventId};
use crate::tenant::TenantId;
use crate::time::Timestamp;

/// A pending delivery as [`FairQueue`] names it: the organization, the
/// destination and the event.
pub type FairKey = (TenantId, DestinationId, EventId);

/// The caps of one [`FairQueue::claim`].
///
/// A *live* lease is one whose expiry is after the claim's `now`, from this
/// claim or an earlier one. A lane is *failing* while
/// [`FairQueue::set_failing`] says so (its destination's last attempt
/// failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClaimLimits {
    /// The most deliveries the claim returns.
    pub limit: usize,
    /// After the claim, no lane that is not failing has more live leases
    /// than this.
    pub per_destination: usize,
    /// The most deliveries of failing lanes the claim returns (a host passes
    /// the free slots of its slow-lane budget, so failing destinations
    /// together never hold more than their share of its workers).
    pub failing_limit: usize,
    /// After the claim, no failing lane has more live leases than this.
    pub per_failing_destination: usize,
}

impl ClaimLimits {
    /// At most `limit` deliveries and no cap per destination or on failing
    /// destinations: one claim in due order for a host that schedules
    /// fairly itself, or a test.
    #[must_use]
    pub const fn up_to(limit: usize) -> Self {
        Self {
            limit,
            per_destination: usize::MAX,
            failing_limit: limit,
            per_failing_destination: usize::MAX,
        }
    }

    fn cap(&self, kind: Kind) -> usize {
        match kind {
            Kind::Healthy => self.per_destination,
            Kind::Failing => self.per_failing_destination,
        }
    }
}

/// [`ClaimLimits::up_to`]: at most `limit`, no other cap.
impl From<usize> for ClaimLimits {
    fn from(limit: usize) -> Self {
        Self::up_to(limit)
    }
}

/// What [`FairQueue::get`] knows of one pending delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FairEntry {
    /// When it is due: from [`push`](FairQueue::push) or
    /// [`retry`](FairQueue::retry).
    pub due: Timestamp,
    /// The expiry of its lease, while it is leased. A lease that lapsed is
    /// reported until the first claim at or after its expiry, which makes
    /// the delivery claimable again.
    pub leased_until: Option<Timestamp>,
}

/// The pending deliveries of every organization, ready to be claimed fairly.
///
/// It is the scheduling half of an in-memory outbox: the host keeps what it
/// delivers (events, attempt counts, lease tokens) beside it, keyed the same
/// way, and tells the queue what happens to each key. The queue tracks keys
/// and times only; checking who holds a lease is the host's job, so
/// [`finish`](Self::finish), [`retry`](Self::retry), [`release`](Self::release)
/// and [`renew`](Self::renew) act on any pending key.
///
/// - [`push`](Self::push) a delivery, claimable from its due time;
/// - [`claim`](Self::claim) at `now`: up to [`ClaimLimits::limit`] available
///   deliveries (due, not leased or their lease lapsed), organizations in
///   turn, within each its lanes in turn, one delivery per lane per turn,
///   earliest available first within a lane, never past a lane's cap of live
///   leases; failing lanes take turns in a ring of their own, alternating with
///   the others, within [`ClaimLimits::failing_limit`]. The organization and
///   lane just served go to the back of their rings. The claimed deliveries
///   are leased until the given expiry;
/// - then [`finish`](Self::finish) (done), [`retry`](Self::retry) (due again
///   later), [`release`](Self::release) (given back, due as before) or
///   [`renew`](Self::renew).
///
/// A lease that lapses makes its delivery claimable again (ordered by the
/// lease's expiry) and frees its lane's slot, at the first claim whose `now`
/// is at or after the expiry. Nothing panics whatever the order of calls,
/// and a clock that goes backwards between calls loses nothing: a delivery
/// not yet available at the earlier `now` is offered once it is.
///
/// Deterministic: the same calls give the same claims.
///
/// ```
/// use std::time::Duration;
/// use prets_destinations::delivery::{ClaimLimits, EventId, FairQueue};
/// use prets_destinations::{DestinationId, TenantId, Timestamp};
///
/// let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
/// let (a, b): (TenantId, TenantId) = ("org_a".parse()?, "org_b".parse()?);
/// let (slow, fast) = (DestinationId::from_parts(now, 1), DestinationId::from_parts(now, 2));
/// let event = |i: u32| format!("evt_01HF2V3J6T0Q8X5Y7Z9A{i:06}").parse::<EventId>();
///
/// let mut queue = FairQueue::new();
/// for i in 0..1000 {
///     queue.push(&a, slow, event(i)?, now);
/// }
/// queue.push(&b, fast, event(1000)?, now);
///
/// let limits = ClaimLimits {
///     limit: 2,
///     per_destination: 4,
///     failing_limit: 1,
///     per_failing_destination: 1,
/// };
/// let claimed = queue.claim(now, &limits, now.saturating_add(Duration::from_secs(30)));
/// // A's backlog of 1,000 does not delay B: one each, A's earliest first.
/// assert_eq!(claimed, [(a.clone(), slow, event(0)?), (b.clone(), fast, event(1000)?)]);
///
/// assert!(queue.finish(&b, fast, event(1000)?));
/// assert_eq!((queue.len(), queue.leased()), (1000, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
//
// Invariants, true between public calls (`check_invariants` in the tests
// asserts them):
//
// 1. Every pending delivery (item) of a lane is in exactly one of
//    `lane.queued`, as `(available_at, event)` with state `Queued(available_at)`,
//    or `self.leases`, as `(expiry, lane, event)` with state `Leased(expiry)`.
//    `lane.in_flight` is the number of its leased items and `self.items` the
//    number of items of all lanes.
// 2. Every lane is in exactly one place, the one `lane.place` names: `Idle`
//    (no set; then `lane.queued` is empty), `Waiting(t)` in `self.waiting` as
//    `(t, lane)` with `t` the lane's earliest availability, `Ready(turn)` in
//    its organization's `ready` ring of the lane's kind as `(turn, lane)`, or
//    `Blocked(n)` in `self.blocked` of the lane's kind as `(n, lane)` with
//    `n == lane.in_flight` (found at its cap by a claim). So a lane with
//    queued items is never `Idle`: it is offered by the next claim whose
//    `now` reaches its head (`Waiting`), when its count of leases changes or
//    the cap grows past it (`Blocked`), or when its turn comes (`Ready`).
// 3. An organization is in `self.ring` of a kind, as `(org.turn, org)`, iff
//    its `ready` ring of that kind is not empty.
// 4. A lane exists iff it has items or is failing; an organization exists
//    iff it has lanes. The index maps name exactly the live slots.
// 5. Turns only grow, so a ring ordered by turn is first-in first-out.
//
// Only `claim` moves lanes into a `ready` ring: `Ready` lanes are checked
// when their turn comes (their head may have been finished, or their count
// of leases may have reached this claim's cap) and moved to their place.
pub struct FairQueue {
    orgs: Slab<Org>,
    org_index: HashMap<TenantId, usize>,
    lanes: Slab<Lane>,
    /// Organizations with `Ready` lanes, by turn.
    ring: PerKind<BTreeSet<(u64, usize)>>,
    /// Lanes whose head becomes available at a time, by that time.
    waiting: BTreeSet<(Timestamp, usize)>,
    /// Lanes a claim found at its cap, by their count of leases then.
    blocked: PerKind<BTreeSet<(usize, usize)>>,
    /// Every lease, by expiry.
    leases: BTreeSet<(Timestamp, usize, EventId)>,
    items: usize,
    next_turn: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Healthy,
    Failing,
}

impl Kind {
    fn of(failing: bool) -> Self {
        if failing {
            Self::Failing
        } else {
            Self::Healthy
        }
    }
}

#[derive(Debug, Default)]
struct PerKind<T> {
    healthy: T,
    failing: T,
}

impl<T> PerKind<T> {
    fn get(&self, kind: Kind) -> &T {
        match kind {
            Kind::Healthy => &self.healthy,
            Kind::Failing => &self.failing,
        }
    }

    fn get_mut(&mut self, kind: Kind) -> &mut T {
        match kind {
            Kind::Healthy => &mut self.healthy,
            Kind::Failing => &mut self.failing,
        }
    }
}

struct Org {
    tenant: TenantId,
    lanes: HashMap<DestinationId, usize>,
    /// Its `Ready` lanes, by turn.
    ready: PerKind<BTreeSet<(u64, usize)>>,
    /// Its turn in `FairQueue::ring`, while it has `Ready` lanes.
    turn: PerKind<Option<u64>>,
}

struct Lane {
    org: usize,
    destination: DestinationId,
    /// Every item, by event id. A B-tree rather than a hash map: event ids
    /// begin with their creation time, so the deliveries a claim takes (the
    /// oldest) and a publish adds (the newest) sit together at its two ends,
    /// and a deep queue is not a cache miss per delivery.
    items: BTreeMap<EventId, Item>,
    /// Items not leased, by availability.
    queued: BTreeSet<(Timestamp, EventId)>,
    in_flight: usize,
    failing: bool,
    place: Place,
}

impl Lane {
    fn kind(&self) -> Kind {
        Kind::of(self.failing)
    }

    fn head(&self) -> Option<Timestamp> {
        self.queued.first().map(|&(at, _)| at)
    }
}

#[derive(Clone, Copy)]
struct Item {
    due: Timestamp,
    state: State,
}

#[derive(Clone, Copy)]
enum State {
    /// Claimable from this time: the due time, or a lapsed lease's expiry.
    Queued(Timestamp),
    /// Leased until this time.
    Leased(Timestamp),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Idle,
    Waiting(Timestamp),
    Ready(u64),
    Blocked(usize),
}

/// A vector of slots with a free list: indices stay valid until removed.
struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, value: T) -> usize {
        if let Some(i) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(i)
        {
            *slot = Some(value);
            return i;
        }
        self.slots.push(Some(value));
        self.slots.len() - 1
    }

    fn remove(&mut self, i: usize) -> Option<T> {
        let value = self.slots.get_mut(i)?.take()?;
        self.free.push(i);
        Some(value)
    }

    fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i)?.as_ref()
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i)?.as_mut()
    }

    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

impl Default for FairQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FairQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FairQueue")
            .field("len", &self.items)
            .field("leased", &self.leases.len())
            .field("lanes", &self.lanes.len())
            .field("organizations", &self.orgs.len())
            .finish()
    }
}

impl FairQueue {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        Self {
            orgs: Slab::default(),
            org_index: HashMap::new(),
            lanes: Slab::default(),
            ring: PerKind::default(),
            waiting: BTreeSet::new(),
            blocked: PerKind::default(),
            leases: BTreeSet::new(),
            items: 0,
            next_turn: 0,
        }
    }

    /// The number of pending deliveries, leased or not.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items
    }

    /// Whether no delivery is pending.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The number of leased deliveries (a lapsed lease counts until the
    /// first claim at or after its expiry).
    #[must_use]
    pub fn leased(&self) -> usize {
        self.leases.len()
    }

    /// The number of lanes held: destinations with pending deliveries or
    /// marked failing. Memory is proportional to this plus [`len`](Self::len).
    #[must_use]
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The pending delivery `(tenant, destination, event)`, if there is one.
    #[must_use]
    pub fn get(
        &self,
        tenant: &TenantId,
        destination: DestinationId,
        event: EventId,
    ) -> Option<FairEntry> {
        let lane = self.lanes.get(self.lane_of(tenant, destination)?)?;
        let item = lane.items.get(&event)?;
        Some(FairEntry {
            due: item.due,
            leased_until: match item.state {
                State::Queued(_) => None,
                State::Leased(until) => Some(until),
            },
        })
    }

    /// Whether the lane of `(tenant, destination)` is failing.
    #[must_use]
    pub fn is_failing(&self, tenant: &TenantId, destination: DestinationId) -> bool {
        self.lane_of(tenant, destination)
            .and_then(|id| self.lanes.get(id))
            .is_some_and(|lane| lane.failing)
    }

    /// Adds a pending delivery, claimable from `due`. `false` (and nothing
    /// changed) if the key is already pending.
    pub fn push(
        &mut self,
        tenant: &TenantId,
        destination: DestinationId,
        event: EventId,
        due: Timestamp,
    ) -> bool {
        let id = self.lane_or_insert(tenant, destination);
        let Some(lane) = self.lanes.get_mut(id) else {
            return false;
        };
        match lane.items.entry(event) {
            Entry::Occupied(_) => return false,
            Entry::Vacant(slot) => {
                slot.insert(Item {
                    due,
                    state: State::Queued(due),
                });
            }
        }
        lane.queued.insert((due, event));
        self.items += 1;
        self.touch(id);
        true
    }

    /// Claims up to `limits.limit` available deliveries at `now`, fairly
    /// (see [`FairQueue`]), and leases them until `lease_expires_at`.
    ///
    /// Available: due at or before `now`, and not leased or under a lease
    /// that expired at or before `now`. Within a lane, the earliest
    /// available first (ties by event id). Healthy and failing lanes take
    /// turns, one delivery each, while both have claimable work and
    /// `limits.failing_limit` is not reached.
    pub fn claim(
        &mut self,
        now: Timestamp,
        limits: &ClaimLimits,
        lease_expires_at: Timestamp,
    ) -> Vec<FairKey> {
        self.expire(now);
        self.unblock(limits);
        self.wake(now, limits);
        let mut out = Vec::with_capacity(limits.limit.min(self.items));
        let mut failing_left = limits.failing_limit;
        let mut healthy_open = true;
        let mut failing_open = failing_left > 0;
        let mut next = Kind::Healthy;
        while out.len() < limits.limit && (healthy_open || failing_open) {
            let kind = match next {
                Kind::Healthy if healthy_open => Kind::Healthy,
                Kind::Failing if failing_open => Kind::Failing,
                _ if healthy_open => Kind::Healthy,
                _ => Kind::Failing,
            };
            next = match kind {
                Kind::Healthy => Kind::Failing,
                Kind::Failing => Kind::Healthy,
            };
            match (self.serve(kind, now, limits, lease_expires_at), kind) {
                (Some(key), Kind::Healthy) => out.push(key),
                (Some(key), Kind::Failing) => {
                    out.push(key);
                    failing_left -= 1;
                    failing_open = failing_left > 0;
                }
                (None, Kind::Healthy) => healthy_open = false,
                (None, Kind::Failing) => failing_open = false,
            }
        }
        out
    }

    /// Extends the lease of a pending delivery to `expires_at`; a delivery
    /// not leased (its lease lapsed, or it was never claimed) is leased
    /// again, taking a slot of its lane. `false` if it is not pending.
    pub fn renew(
        &mut self,
        tenant: &TenantId,
        destination: DestinationId,
        event: EventId,
        expires_at: Timestamp,
    ) -> bool {
        let Some(id) = self.lane_of(tenant, destination) else {
            return false;
        };
        let Some(lane) = self.lanes.get_mut(id) else {
            return false;
        };
        let Some(item) = lane.items.get_mut(&event) else {
            return false;
        };
        match item.state {
            State::Leased(until) => {
                self.leases.remove(&(until, id, event));
            }
            State::Queued(at) => {
                lane.queued.remove(&(at, event));
                lane.in_flight += 1;
            }
        }
        item.state = State::Leased(expires_at);
        self.leases.insert((expires_at, id, event));
        self.touch(id);
        true
    }

    /// Clears a pending delivery's lease (if any): it is offered again from
    /// its due time, which is kept. `false` if it is not pending.
    pub fn release(
        &mut self,
        tenant: &TenantId,
        destination: DestinationId,
        event: EventId,
    ) -> bool {
        self.requeue(tenant, destination, event, None)
    }

    /// Clears a pending delivery's lease (if any) and makes it due at `due`.
    /// `false` if it is not pending.
    pub fn retry(
        &mut self,
        tenant: &TenantId,
        destination: DestinationId,
        event: EventId,
        due: Timestamp,
    ) -> bool {
        self.requeue(tenant, destination, event, Some(due))
    }

    /// Removes a pending delivery, leased or not. `false` if it is not
    /// pending.
    pub fn finish(
        &mut self,
        tenant: &TenantId,
        destination: DestinationId,
        event: EventId,
    ) -> bool {
        let Some(id) = self.lane_of(tenant, destination) else {
            return false;
        };
        let Some(lane) = self.lanes.get_mut(id) else {
            return false;
        };
        let Some(item) = lane.items.remove(&event) else {
            return false;
        };
        match item.state {
            State::Queued(at) => {
                lane.queued.remove(&(at, event));
            }
            State::Leased(until) => {
                lane.in_flight = lane.in_flight.saturating_sub(1);
                self.leases.remove(&(until, id, event));
            }
        }
        self.items = self.items.saturating_sub(1);
        self.touch(id);
        true
    }

    /// Marks the lane of `(tenant, destination)` failing or not. A failing
    /// lane is served in the slow lane, within
    /// [`ClaimLimits::failing_limit`] and
    /// [`ClaimLimits::per_failing_destination`]. The mark is kept while the
    /// lane is empty, until it is cleared or the lane removed.
    pub fn set_failing(&mut self, tenant: &TenantId, destination: DestinationId, failing: bool) {
        let id = if failing {
            self.lane_or_insert(tenant, destination)
        } else {
            match self.lane_of(tenant, destination) {
                Some(id) => id,
                None => return,
            }
        };
        if self
            .lanes
            .get(id)
            .is_none_or(|lane| lane.failing == failing)
        {
            return;
        }
        // Out of the old kind's sets before the kind changes.
        self.unplace(id);
        if let Some(lane) = self.lanes.get_mut(id) {
            lane.failing = failing;
        }
        self.touch(id);
    }

    /// Removes the lane of `(tenant, destination)` with every pending
    /// delivery in it, leased or not, and its failing mark (a deleted
    /// destination). Returns the removed events, in order.
    pub fn remove_lane(&mut self, tenant: &TenantId, destination: DestinationId) -> Vec<EventId> {
        let Some(id) = self.lane_of(tenant, destination) else {
            return Vec::new();
        };
        let events: Vec<EventId> = self
            .lanes
            .get(id)
            .map(|lane| lane.items.keys().copied().collect())
            .unwrap_or_default();
        self.drop_lane(id);
        events
    }

    /// Removes the pending deliveries of `(tenant, destination)` that are
    /// not leased (a disabled destination: its leased deliveries are
    /// finished by their holders). A lapsed lease counts as leased until the
    /// first claim at or after its expiry. Returns the removed events, in
    /// the order they would have been claimed.
    pub fn remove_unleased(
        &mut self,
        tenant: &TenantId,
        destination: DestinationId,
    ) -> Vec<EventId> {
        let Some(id) = self.lane_of(tenant, destination) else {
            return Vec::new();
        };
        let Some(lane) = self.lanes.get_mut(id) else {
            return Vec::new();
        };
        let queued = core::mem::take(&mut lane.queued);
        let events: Vec<EventId> = queued.into_iter().map(|(_, event)| event).collect();
        for event in &events {
            lane.items.remove(event);
        }
        self.items = self.items.saturating_sub(events.len());
        self.touch(id);
        events
    }

    // --- lookups ---

    fn lane_of(&self, tenant: &TenantId, destination: DestinationId) -> Option<usize> {
        let org = self.orgs.get(*self.org_index.get(tenant)?)?;
        org.lanes.get(&destination).copied()
    }

    fn lane_or_insert(&mut self, tenant: &TenantId, destination: DestinationId) -> usize {
        let org_id = match self.org_index.get(tenant) {
            Some(&id) => id,
            None => {
                let id = self.orgs.insert(Org {
                    tenant: tenant.clone(),
                    lanes: HashMap::new(),
                    ready: PerKind::default(),
                    turn: PerKind::default(),
                });
                self.org_index.insert(tenant.clone(), id);
                id
            }
        };
        if let Some(&id) = self
            .orgs
            .get(org_id)
            .and_then(|o| o.lanes.get(&destination))
        {
            return id;
        }
        let id = self.lanes.insert(Lane {
            org: org_id,
            destination,
            items: BTreeMap::new(),
            queued: BTreeSet::new(),
            in_flight: 0,
            failing: false,
            place: Place::Idle,
        });
        if let Some(org) = self.orgs.get_mut(org_id) {
            org.lanes.insert(destination, id);
        }
        id
    }

    fn turn(&mut self) -> u64 {
        let turn = self.next_turn;
        self.next_turn = self.next_turn.wrapping_add(1);
        turn
    }

    // --- moving items ---

    fn requeue(
        &mut self,
        tenant: &TenantId,
        destination: DestinationId,
        event: EventId,
        due: Option<Timestamp>,
    ) -> bool {
        let Some(id) = self.lane_of(tenant, destination) else {
            return false;
        };
        let Some(lane) = self.lanes.get_mut(id) else {
            return false;
        };
        let Some(item) = lane.items.get_mut(&event) else {
            return false;
        };
        match item.state {
            State::Queued(at) => {
                lane.queued.remove(&(at, event));
            }
            State::Leased(until) => {
                lane.in_flight = lane.in_flight.saturating_sub(1);
                self.leases.remove(&(until, id, event));
            }
        }
        if let Some(due) = due {
            item.due = due;
        }
        item.state = State::Queued(item.due);
        lane.queued.insert((item.due, event));
        self.touch(id);
        true
    }

    /// Makes every lease that expired at or before `now` lapse: its item is
    /// queued again at its expiry (or its due time, if later) and its lane's
    /// slot is freed.
    fn expire(&mut self, now: Timestamp) {
        while let Some(&(until, id, event)) = self.leases.first() {
            if until > now {
                break;
            }
            self.leases.pop_first();
            if let Some(lane) = self.lanes.get_mut(id)
                && let Some(item) = lane.items.get_mut(&event)
            {
                let at = item.due.max(until);
                item.state = State::Queued(at);
                lane.queued.insert((at, event));
                lane.in_flight = lane.in_flight.saturating_sub(1);
            }
            self.touch(id);
        }
    }

    // --- placing lanes ---

    /// After a change to a lane outside a claim: an empty lane is dropped;
    /// a `Ready` lane stays in its ring (its turn re-checks it); any other
    /// lane is parked by its head.
    fn touch(&mut self, id: usize) {
        let Some(lane) = self.lanes.get(id) else {
            return;
        };
        if lane.items.is_empty() && !lane.failing {
            self.drop_lane(id);
            return;
        }
        match lane.place {
            Place::Ready(_) => {}
            Place::Waiting(at) if lane.head() == Some(at) => {}
            _ => {
                self.unplace(id);
                self.park(id);
            }
        }
    }

    /// An `Idle` lane to `Waiting` at its head, or left `Idle` if it has no
    /// queued item.
    fn park(&mut self, id: usize) {
        let Some(lane) = self.lanes.get_mut(id) else {
            return;
        };
        if let Some(at) = lane.head() {
            lane.place = Place::Waiting(at);
            self.waiting.insert((at, id));
        }
    }

    /// An `Idle` lane, during a claim at `now`: `Blocked` at its cap,
    /// `Waiting` for its head, or `Ready` at the back of its organization's
    /// ring (and the organization at the back of the ring, if it was not in
    /// it).
    fn arrange(&mut self, id: usize, now: Timestamp, limits: &ClaimLimits) {
        let Some(lane) = self.lanes.get(id) else {
            return;
        };
        let Some(head) = lane.head() else {
            if lane.items.is_empty() && !lane.failing {
                self.drop_lane(id);
            }
            return;
        };
        let kind = lane.kind();
        let in_flight = lane.in_flight;
        let org_id = lane.org;
        if in_flight >= limits.cap(kind) {
            self.blocked.get_mut(kind).insert((in_flight, id));
            self.set_place(id, Place::Blocked(in_flight));
        } else if head > now {
            self.waiting.insert((head, id));
            self.set_place(id, Place::Waiting(head));
        } else {
            let turn = self.turn();
            let org_turn = self.turn();
            let Some(org) = self.orgs.get_mut(org_id) else {
                return;
            };
            org.ready.get_mut(kind).insert((turn, id));
            if org.turn.get(kind).is_none() {
                *org.turn.get_mut(kind) = Some(org_turn);
                self.ring.get_mut(kind).insert((org_turn, org_id));
            }
            self.set_place(id, Place::Ready(turn));
        }
    }

    fn set_place(&mut self, id: usize, place: Place) {
        if let Some(lane) = self.lanes.get_mut(id) {
            lane.place = place;
        }
    }

    /// Takes a lane out of its place's set, leaving it `Idle`.
    fn unplace(&mut self, id: usize) {
        let Some(lane) = self.lanes.get_mut(id) else {
            return;
        };
        let place = core::mem::replace(&mut lane.place, Place::Idle);
        let kind = lane.kind();
        let org_id = lane.org;
        match place {
            Place::Idle => {}
            Place::Waiting(at) => {
                self.waiting.remove(&(at, id));
            }
            Place::Blocked(n) => {
                self.blocked.get_mut(kind).remove(&(n, id));
            }
            Place::Ready(turn) => {
                let Some(org) = self.orgs.get_mut(org_id) else {
                    return;
                };
                let ready = org.ready.get_mut(kind);
                ready.remove(&(turn, id));
                if ready.is_empty()
                    && let Some(org_turn) = org.turn.get_mut(kind).take()
                {
                    self.ring.get_mut(kind).remove(&(org_turn, org_id));
                }
            }
        }
    }

    /// Removes a lane with its items and leases, and its organization if it
    /// was the last lane.
    fn drop_lane(&mut self, id: usize) {
        self.unplace(id);
        let Some(lane) = self.lanes.remove(id) else {
            return;
        };
        for (event, item) in &lane.items {
            if let State::Leased(until) = item.state {
                self.leases.remove(&(until, id, *event));
            }
        }
        self.items = self.items.saturating_sub(lane.items.len());
        let Some(org) = self.orgs.get_mut(lane.org) else {
            return;
        };
        org.lanes.remove(&lane.destination);
        if org.lanes.is_empty()
            && let Some(org) = self.orgs.remove(lane.org)
        {
            self.org_index.remove(&org.tenant);
        }
    }

    // --- claiming ---

    /// Lanes blocked below this claim's caps are parked again (then woken).
    fn unblock(&mut self, limits: &ClaimLimits) {
        for kind in [Kind::Healthy, Kind::Failing] {
            let cap = limits.cap(kind);
            while let Some(&(n, id)) = self.blocked.get(kind).first() {
                if n >= cap {
                    break;
                }
                self.unplace(id);
                self.park(id);
            }
        }
    }

    /// Lanes whose head is available at `now` are arranged (into their
    /// rings, unless at their cap).
    fn wake(&mut self, now: Timestamp, limits: &ClaimLimits) {
        while let Some(&(at, id)) = self.waiting.first() {
            if at > now {
                break;
            }
            self.unplace(id);
            self.arrange(id, now, limits);
        }
    }

    /// One delivery from the ring of `kind`: the first organization's first
    /// lane's head, if that lane is claimable; otherwise that lane is moved
    /// to its place and the next one tried. `None` when the ring is empty.
    fn serve(
        &mut self,
        kind: Kind,
        now: Timestamp,
        limits: &ClaimLimits,
        lease_expires_at: Timestamp,
    ) -> Option<FairKey> {
        loop {
            let &(org_turn, org_id) = self.ring.get(kind).first()?;
            let Some(&(_, id)) = self
                .orgs
                .get(org_id)
                .and_then(|o| o.ready.get(kind).first())
            else {
                // Not reached (invariant 3); repaired rather than looped on.
                self.ring.get_mut(kind).remove(&(org_turn, org_id));
                if let Some(org) = self.orgs.get_mut(org_id) {
                    *org.turn.get_mut(kind) = None;
                }
                continue;
            };
            self.unplace(id);
            let Some(lane) = self.lanes.get_mut(id) else {
                continue;
            };
            let cap = limits.cap(kind);
            let Some(&(at, event)) = lane.queued.first() else {
                self.arrange(id, now, limits);
                continue;
            };
            if at > now || lane.in_flight >= cap {
                self.arrange(id, now, limits);
                continue;
            }
            lane.queued.pop_first();
            let Some(item) = lane.items.get_mut(&event) else {
                // Not reached (invariant 1): the stray entry is dropped.
                self.arrange(id, now, limits);
                continue;
            };
            item.state = State::Leased(lease_expires_at);
            lane.in_flight += 1;
            let destination = lane.destination;
            self.leases.insert((lease_expires_at, id, event));
            self.arrange(id, now, limits);
            // The organization served goes to the back of the ring.
            let back = self.turn();
            let org = self.orgs.get_mut(org_id)?;
            let slot = org.turn.get_mut(kind);
            if let Some(old) = *slot {
                *slot = Some(back);
                self.ring.get_mut(kind).remove(&(old, org_id));
                self.ring.get_mut(kind).insert((back, org_id));
            }
            return Some((org.tenant.clone(), destination, event));
        }
    }
}

#[cfg(test)]
impl FairQueue {
    /// Asserts the invariants listed on [`FairQueue`].
    pub(crate) fn check_invariants(&self) {
        let mut items = 0;
        let mut leased = 0;
        for (id, lane) in self.lanes.slots.iter().enumerate() {
            let Some(lane) = lane else { continue };
            assert!(!lane.items.is_empty() || lane.failing, "empty lane kept");
            let org = self.orgs.get(lane.org).expect("lane's organization");
            assert_eq!(org.lanes.get(&lane.destination), Some(&id));
            let mut in_flight = 0;
            let mut queued = 0;
            for (event, item) in &lane.items {
                match item.state {
                    State::Queued(at) => {
                        queued += 1;
                        assert!(lane.queued.contains(&(at, *event)));
                    }
                    State::Leased(until) => {
                        in_flight += 1;
                        assert!(self.leases.contains(&(until, id, *event)));
                    }
                }
            }
            assert_eq!(queued, lane.queued.len());
            assert_eq!(in_flight, lane.in_flight);
            items += lane.items.len();
            leased += in_flight;
            let kind = lane.kind();
            match lane.place {
                Place::Idle => assert!(lane.queued.is_empty(), "idle lane with queued items"),
                Place::Waiting(at) => {
                    assert_eq!(lane.head(), Some(at));
                    assert!(self.waiting.contains(&(at, id)));
                }
                Place::Ready(turn) => assert!(org.ready.get(kind).contains(&(turn, id))),
                Place::Blocked(n) => {
                    assert_eq!(n, lane.in_flight);
                    assert!(self.blocked.get(kind).contains(&(n, id)));
                }
            }
        }
        assert_eq!(items, self.items);
        assert_eq!(leased, self.leases.len());
        let places = |want: fn(&Place) -> bool| {
            self.lanes
                .slots
                .iter()
                .flatten()
                .filter(|l| want(&l.place))
                .count()
        };
        assert_eq!(
            self.waiting.len(),
            places(|p| matches!(p, Place::Waiting(_)))
        );
        assert_eq!(
            self.blocked.healthy.len() + self.blocked.failing.len(),
            places(|p| matches!(p, Place::Blocked(_)))
        );
        let mut ready = 0;
        for (org_id, org) in self.orgs.slots.iter().enumerate() {
            let Some(org) = org else { continue };
            assert!(!org.lanes.is_empty(), "empty organization kept");
            assert_eq!(self.org_index.get(&org.tenant), Some(&org_id));
            for kind in [Kind::Healthy, Kind::Failing] {
                let lanes = org.ready.get(kind);
                ready += lanes.len();
                for &(turn, id) in lanes {
                    let lane = self.lanes.get(id).expect("ready lane");
                    assert_eq!(
                        (lane.place, lane.org, lane.kind()),
                        (Place::Ready(turn), org_id, kind)
                    );
                }
                match *org.turn.get(kind) {
                    Some(turn) => {
                        assert!(!lanes.is_empty());
                        assert!(self.ring.get(kind).contains(&(turn, org_id)));
                    }
                    None => assert!(lanes.is_empty()),
                }
            }
        }
        assert_eq!(ready, places(|p| matches!(p, Place::Ready(_))));
        assert_eq!(
            self.ring.healthy.len() + self.ring.failing.len(),
            self.orgs
                .slots
                .iter()
                .flatten()
                .map(|o| usize::from(o.turn.healthy.is_some())
                    + usize::from(o.turn.failing.is_some()))
                .sum::<usize>()
        );
        assert_eq!(self.org_index.len(), self.orgs.len());
        let lanes: usize = self
            .orgs
            .slots
            .iter()
            .flatten()
            .map(|o| o.lanes.len())
            .sum();
        assert_eq!(lanes, self.lanes.len());
    }
}

#[cfg(test)]
mod tests {
    //! The structural invariants after every call of random sequences; the
    //! behaviour against a naive model is in `tests/it/fair_queue.rs`.

    use proptest::prelude::*;

    use super::{ClaimLimits, FairQueue};
    use crate::id::{DestinationId, EventId};
    use crate::tenant::TenantId;
    use crate::time::Timestamp;

    #[derive(Clone, Debug)]
    enum Op {
        Push(usize, u64, u64),
        Claim(usize, usize, usize, usize, u64, u64),
        Finish(usize, u64),
        Retry(usize, u64, u64),
        Release(usize, u64),
        Renew(usize, u64, u64),
        SetFailing(usize, bool),
        RemoveLane(usize),
        RemoveUnleased(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let t = 0u64..50;
        prop_oneof![
            4 => (0usize..4, 0u64..40, t.clone()).prop_map(|(l, e, d)| Op::Push(l, e, d)),
            4 => (0usize..6, 0usize..3, 0usize..3, 0usize..2, t.clone(), t.clone())
                .prop_map(|(a, b, c, d, n, u)| Op::Claim(a, b, c, d, n, u)),
            2 => (0usize..4, 0u64..40).prop_map(|(l, e)| Op::Finish(l, e)),
            1 => (0usize..4, 0u64..40, t.clone()).prop_map(|(l, e, d)| Op::Retry(l, e, d)),
            1 => (0usize..4, 0u64..40).prop_map(|(l, e)| Op::Release(l, e)),
            1 => (0usize..4, 0u64..40, t).prop_map(|(l, e, d)| Op::Renew(l, e, d)),
            1 => (0usize..4, any::<bool>()).prop_map(|(l, f)| Op::SetFailing(l, f)),
            1 => (0usize..4).prop_map(Op::RemoveLane),
            1 => (0usize..4).prop_map(Op::RemoveUnleased),
        ]
    }

    proptest! {
        // A failing case is kept beside this file, as the integration tests do.
        #![proptest_config(ProptestConfig {
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
            )),
            ..ProptestConfig::default()
        })]
        #[test]
        fn invariants_hold_after_every_call(ops in proptest::collection::vec(op(), 1..120)) {
            let tenants: Vec<TenantId> = ["org_a", "org_b"].iter().map(|t| t.parse().unwrap()).collect();
            let at = |s: u64| Timestamp::from_unix_seconds(1_700_000_000 + s).unwrap();
            // Lanes 0 and 1 in one organization, 2 and 3 in the other.
            let lane = |l: usize| (&tenants[l / 2], DestinationId::from_parts(at(0), l as u128));
            let event = |e: u64| format!("evt_{e:026}").parse::<EventId>().unwrap();
            let mut q = FairQueue::new();
            for op in ops {
                match op {
                    Op::Push(l, e, d) => { let (t, id) = lane(l); q.push(t, id, event(e), at(d)); }
                    Op::Claim(limit, per, fl, pf, now, until) => {
                        let limits = ClaimLimits { limit, per_destination: per, failing_limit: fl, per_failing_destination: pf };
                        let got = q.claim(at(now), &limits, at(until));
                        prop_assert!(got.len() <= limit);
                    }
                    Op::Finish(l, e) => { let (t, id) = lane(l); q.finish(t, id, event(e)); }
                    Op::Retry(l, e, d) => { let (t, id) = lane(l); q.retry(t, id, event(e), at(d)); }
                    Op::Release(l, e) => { let (t, id) = lane(l); q.release(t, id, event(e)); }
                    Op::Renew(l, e, d) => { let (t, id) = lane(l); q.renew(t, id, event(e), at(d)); }
                    Op::SetFailing(l, f) => { let (t, id) = lane(l); q.set_failing(t, id, f); }
                    Op::RemoveLane(l) => { let (t, id) = lane(l); q.remove_lane(t, id); }
                    Op::RemoveUnleased(l) => { let (t, id) = lane(l); q.remove_unleased(t, id); }
                }
                q.check_invariants();
            }
        }
    }
}
