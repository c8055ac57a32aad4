//! The store's conditional writes, one builder per write, in the words of the parent module's
//! docs (its table of methods and the list of conditions below it). What to do when a condition
//! fails is the parent module's.

use super::codec::{
    SEALED_ATTRIBUTES, count_pk, day_pk, n, new_rev, number_day_pk, phone_pk, progress_attributes, s,
    session_item, verification_pk, window_pk,
};
use super::transact::Op;
use crate::limits::{DAY_SECS, HOUR_SECS, Limits, window_index};
use crate::store::{
    Claim, LeaseAfter, LeaseId, NumberKey, PhoneKey, Progress, SendReservation, Session, StoreError,
    Verification, VerificationKey,
};

/// How long a counter outlives its window, so a slightly late clock still finds it.
const COUNTER_TTL_MARGIN_SECS: u64 = HOUR_SECS;

/// A phone is not locked by consecutive wrong codes (`:max_failures`, `:now`).
const NOT_LOCKED: &str = "attribute_not_exists(failures) OR attribute_not_exists(failures_reset_at) \
                          OR failures < :max_failures OR failures_reset_at <= :now";

/// `reserve_send`: the reservation's window counts, the phone unlocked, its window and its day,
/// its number's day, in this order.
pub(super) fn reservation_ops(reservation: &SendReservation) -> Vec<Op> {
    let (limits, now) = (&reservation.limits, reservation.now);
    let phone_key = &reservation.phone_key;
    let mut ops = Vec::with_capacity(reservation.counts.len() + 3);
    for count in &reservation.counts {
        let window = window_index(now, count.window_secs);
        ops.push(counter_op(count_pk(&count.key, window), count.max, window, count.window_secs, now));
    }
    ops.push(
        Op::check(phone_pk(phone_key), NOT_LOCKED)
            .value(":max_failures", n(limits.max_failures_per_phone))
            .value(":now", n(now)),
    );
    let window = window_index(now, limits.send_window_secs);
    ops.push(counter_op(
        window_pk(phone_key, limits.send_window_secs, window),
        limits.sends_per_phone_window,
        window,
        limits.send_window_secs,
        now,
    ));
    ops.push(day_op(phone_key, limits, now));
    let day = window_index(now, DAY_SECS);
    ops.push(
        counter_op(
            number_day_pk(&reservation.number_key, day),
            limits.sends_per_phone_day,
            day,
            DAY_SECS,
            now,
        )
        .with_update("ADD n :one SET last_sent_at = :now, expires_at = :expires")
        .when(format!(
            "(attribute_not_exists(n) OR n < :max) AND ({BELOW_DAILY_FAILURES}) \
             AND (attribute_not_exists(last_sent_at) OR last_sent_at <= :spaced)"
        ))
        .value(":max_failures_day", n(limits.max_failures_per_phone_day))
        // The first resend delay, between any two SMS to the number (see `judge_send`).
        .value(":spaced", n(i128::from(now) - i128::from(limits.resend_delays_secs[0]))),
    );
    ops
}

/// A number's wrong codes of the day are below the daily cap (`:max_failures_day`).
const BELOW_DAILY_FAILURES: &str = "attribute_not_exists(failures) OR failures < :max_failures_day";

/// `record_wrong_code`'s count of one more wrong code in the number's day.
pub(super) fn number_failure_op(number_key: &NumberKey, now: u64) -> Op {
    let day = window_index(now, DAY_SECS);
    Op::update(number_day_pk(number_key, day), "ADD failures :one SET expires_at = :expires")
        .value(":one", n(1))
        .value(":expires", n((day + 1) * DAY_SECS + COUNTER_TTL_MARGIN_SECS))
}

/// `put_verification`'s update of the phone record: the verification becomes its current one,
/// and, when `extend`, the record lives at least a day after `created_at` (never shorter).
pub(super) fn current_op(verification: &Verification, extend: bool) -> Op {
    let op = Op::update(phone_pk(&verification.phone_key), "SET #current = :key")
        .name("#current", "current")
        .value(":key", s(verification.key.as_str()));
    if !extend {
        return op;
    }
    let expires = (verification.created_at + DAY_SECS).max(verification.expires_at);
    op.with_update("SET #current = :key, expires_at = :expires")
        .when("attribute_not_exists(expires_at) OR expires_at <= :expires")
        .value(":expires", n(expires))
}

/// `claim_verification`: the phone record still names `key` current and is unlocked, its number's
/// wrong codes of the day are below the cap, and the verification is still the revision `rev` that
/// was read; then it takes the claim's lease.
pub(super) fn claim_ops(verification: &Verification, rev: String, claim: &Claim) -> Vec<Op> {
    let (key, phone_key) = (&verification.key, &verification.phone_key);
    let phone = Op::check(phone_pk(phone_key), format!("#current = :key AND ({NOT_LOCKED})"))
        .name("#current", "current")
        .value(":key", s(key.as_str()))
        .value(":max_failures", n(claim.limits.max_failures_per_phone))
        .value(":now", n(claim.now));
    let day = window_index(claim.now, DAY_SECS);
    let number = Op::check(number_day_pk(&verification.number_key(), day), BELOW_DAILY_FAILURES)
        .value(":max_failures_day", n(claim.limits.max_failures_per_phone_day));
    let lease = Op::update(
        verification_pk(key),
        "SET lease_id = :lease_id, lease_until = :lease_until, rev = :new_rev",
    )
    .when("rev = :rev")
    .value(":lease_id", s(claim.lease.id.as_str()))
    .value(":lease_until", n(claim.lease.until))
    .value(":new_rev", new_rev())
    .value(":rev", s(rev));
    vec![phone, number, lease]
}

/// `record_wrong_code`'s update of the verification under `lease_id`: one more wrong code than
/// `seen` (of `max`), or, when `ends`, all of them; the lease is released either way.
pub(super) fn wrong_code_op(
    key: &VerificationKey,
    lease_id: &LeaseId,
    seen: u32,
    max: u32,
    ends: bool,
) -> Op {
    let pk = verification_pk(key);
    if ends {
        Op::update(pk, "SET wrong_codes = max_wrong_codes, rev = :rev REMOVE lease_id, lease_until")
            .when("lease_id = :lease")
    } else {
        Op::update(pk, "SET wrong_codes = :counted, rev = :rev REMOVE lease_id, lease_until")
            .when("lease_id = :lease AND wrong_codes = :seen AND max_wrong_codes = :max")
            .value(":counted", n(seen + 1))
            .value(":seen", n(seen))
            .value(":max", n(max))
    }
    .value(":lease", s(lease_id.as_str()))
    .value(":rev", new_rev())
}

/// `save_progress`: under `lease_id`, the verification's `stage` and its sealed value set (the
/// other sealed values removed), the lease kept or removed.
pub(super) fn progress_op(
    key: &VerificationKey,
    lease_id: &LeaseId,
    progress: &Progress,
    lease: LeaseAfter,
) -> Op {
    let (stage, sealed) = progress_attributes(progress);
    let mut set = vec!["stage = :stage", "rev = :rev"];
    let mut remove: Vec<&str> =
        SEALED_ATTRIBUTES.into_iter().filter(|a| sealed.is_none_or(|(kept, _)| kept != *a)).collect();
    let sealed_set;
    if let Some((attribute, _)) = sealed {
        sealed_set = format!("{attribute} = :sealed");
        set.push(&sealed_set);
    }
    if lease == LeaseAfter::Released {
        remove.extend(["lease_id", "lease_until"]);
    }
    let op = Op::update(verification_pk(key), format!("SET {} REMOVE {}", set.join(", "), remove.join(", ")))
        .when("lease_id = :lease")
        .value(":lease", s(lease_id.as_str()))
        .value(":stage", s(stage))
        .value(":rev", new_rev());
    match sealed {
        Some((_, value)) => op.value(":sealed", s(value)),
        None => op,
    }
}

/// `complete_verification`: the verification completed under `lease_id` (its sealed session
/// kept, its lease released: it stays until it expires, for the same request retried), the
/// session put (a new one), and the phone's failures cleared.
pub(super) fn complete_ops(
    verification: &Verification,
    lease_id: &LeaseId,
    session: &Session,
    sealed_session: &str,
) -> Result<Vec<Op>, StoreError> {
    let completed = Progress::Completed { sealed_session: sealed_session.to_owned() };
    Ok(vec![
        progress_op(&verification.key, lease_id, &completed, LeaseAfter::Released),
        Op::put(session_item(session)?).when("attribute_not_exists(pk)"),
        // A verified number starts counting again. (Should the phone record be gone, this
        // writes one that expires like any other.)
        Op::update(
            phone_pk(&verification.phone_key),
            "SET failures = :zero, expires_at = if_not_exists(expires_at, :expires)",
        )
        .value(":zero", n(0))
        .value(":expires", n(session.verified_at + DAY_SECS)),
    ])
}

/// A counter of the window `[index * secs, (index + 1) * secs)`: one more, if below `max` and
/// not paused (only the fraud guard pauses counts, a country's).
fn counter_op(pk: String, max: u32, index: u64, secs: u64, now: u64) -> Op {
    Op::update(pk, "ADD n :one SET expires_at = :expires")
        .when("(attribute_not_exists(n) OR n < :max) AND (attribute_not_exists(paused_until) OR paused_until <= :now)")
        .value(":now", n(now))
        .value(":one", n(1))
        .value(":max", n(max))
        .value(":expires", n((index + 1) * secs + COUNTER_TTL_MARGIN_SECS))
}

/// The day's send counter: one more if below the daily limit and the resend delay has passed.
fn day_op(phone_key: &PhoneKey, limits: &Limits, now: u64) -> Op {
    let day = window_index(now, DAY_SECS);
    let mut op = counter_op(day_pk(phone_key, day), limits.sends_per_phone_day, day, DAY_SECS, now)
        .with_update("ADD n :one SET last_sent_at = :now, expires_at = :expires");
    let mut spaced = vec!["attribute_not_exists(last_sent_at)".to_owned(), "n = :zero".to_owned()];
    for (i, (first, last, delay)) in resend_tiers(limits).into_iter().enumerate() {
        spaced.push(format!("(n BETWEEN :f{i} AND :l{i} AND last_sent_at <= :t{i})"));
        op = op
            .value(&format!(":f{i}"), n(first))
            .value(&format!(":l{i}"), n(last))
            .value(&format!(":t{i}"), n(i128::from(now) - i128::from(delay)));
    }
    op.when(format!("attribute_not_exists(n) OR (n < :max AND ({}))", spaced.join(" OR ")))
        .value(":now", n(now))
        .value(":zero", n(0))
}

/// The resend delay after the n-th send of a day, for every n that may still send (below the
/// daily limit), as runs `(first n, last n, delay)` of equal delays. The last listed delay repeats.
fn resend_tiers(limits: &Limits) -> Vec<(u32, u32, u64)> {
    let delays = &limits.resend_delays_secs;
    let repeat_from = delays.len().max(1); // the n whose delay is the last listed one
    let max_n = limits.sends_per_phone_day.saturating_sub(1);
    let mut tiers: Vec<(u32, u32, u64)> = Vec::new();
    let mut sends = 1;
    while sends <= max_n {
        let index = sends as usize - 1;
        let delay = delays.get(index.min(repeat_from - 1)).copied().unwrap_or(0);
        let last = if sends as usize >= repeat_from { max_n } else { sends };
        match tiers.last_mut() {
            Some(tier) if tier.2 == delay => tier.1 = last,
            _ => tiers.push((sends, last, delay)),
        }
        sends = last + 1;
    }
    tiers
}

/// One more consecutive failure for the phone: counted on (`restart` false: they are live or
/// there are none) or from 1 (`restart`: they have expired); `extend` also extends the expiry.
pub(super) fn failure_op(phone_key: &PhoneKey, now: u64, restart: bool, extend: bool) -> Op {
    let (failures, condition) = if restart {
        ("failures = :one", "failures_reset_at <= :now")
    } else {
        (
            "failures = if_not_exists(failures, :zero) + :one",
            "(attribute_not_exists(failures_reset_at) OR failures_reset_at > :now)",
        )
    };
    let (update, condition) = if extend {
        (
            format!("SET {failures}, failures_reset_at = :reset_at, expires_at = :reset_at"),
            format!("{condition} AND (attribute_not_exists(expires_at) OR expires_at <= :reset_at)"),
        )
    } else {
        (format!("SET {failures}, failures_reset_at = :reset_at"), condition.to_owned())
    };
    Op::update(phone_pk(phone_key), update)
        .when(condition)
        .value(":one", n(1))
        .value(":zero", n(0))
        .value(":now", n(now))
        .value(":reset_at", n(now + DAY_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(day: u32, delays: &[u64]) -> Limits {
        Limits { sends_per_phone_day: day, resend_delays_secs: delays.to_vec(), ..Limits::default() }
    }

    #[test]
    fn resend_tiers_cover_every_send_below_the_daily_limit() {
        assert_eq!(
            resend_tiers(&limits(10, &[30, 60, 120, 300, 600, 1800])),
            vec![(1, 1, 30), (2, 2, 60), (3, 3, 120), (4, 4, 300), (5, 5, 600), (6, 9, 1800)]
        );
        assert_eq!(resend_tiers(&limits(10, &[0, 3600])), vec![(1, 1, 0), (2, 9, 3600)]);
        assert_eq!(resend_tiers(&limits(3, &[30, 60, 120, 300])), vec![(1, 1, 30), (2, 2, 60)]);
        assert_eq!(resend_tiers(&limits(5, &[60, 60, 120])), vec![(1, 2, 60), (3, 4, 120)]);
        assert_eq!(resend_tiers(&limits(1, &[30])), vec![]);
        assert_eq!(resend_tiers(&limits(u32::MAX, &[5])), vec![(1, u32::MAX - 1, 5)]);
    }
}
