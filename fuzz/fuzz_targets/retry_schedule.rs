//! Arbitrary text as a `--retry-schedule` value: parsing never panics; an
//! accepted schedule has 1 to `MAX_STEPS` non-decreasing steps of at most
//! `MAX_STEP`, prints as text that parses back to the same schedule, and its
//! jittered delays stay within a tenth above each step.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prets_destinations::delivery::{JITTER_DIVISOR, MAX_STEP, MAX_STEPS, RetrySchedule};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(schedule) = text.parse::<RetrySchedule>() else {
        return;
    };
    let steps: Vec<_> = schedule.steps().collect();
    assert!(!steps.is_empty() && steps.len() <= MAX_STEPS);
    assert!(steps.windows(2).all(|w| w[0] <= w[1]));
    assert!(steps.iter().all(|s| *s <= MAX_STEP));
    assert_eq!(schedule.longest(), steps[steps.len() - 1]);
    assert_eq!(schedule.max_attempts() as usize, steps.len() + 1);

    let again: RetrySchedule = schedule.to_string().parse().expect("the text form parses");
    assert_eq!(again, schedule);

    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    for (i, step) in steps.iter().enumerate() {
        let attempt = u32::try_from(i + 1).expect("at most 32 steps");
        assert_eq!(schedule.delay_after(attempt), Some(*step));
        let d = schedule
            .jittered_delay_after(attempt, &mut rng)
            .expect("a step follows this attempt");
        assert!(d >= *step && d <= *step + *step / JITTER_DIVISOR);
    }
    assert_eq!(schedule.delay_after(schedule.max_attempts()), None);
});
