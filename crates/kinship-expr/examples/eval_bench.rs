//! Evaluates a three-condition segment over 1,000,000 synthetic profiles holding 20 events each, single
//! threaded and with rayon, and checks the answer against hand-written Rust.
//!
//! `cargo run --release -p kinship-expr --example eval_bench`

use std::time::{Duration, Instant};

use kinship_expr::{compile_segment, EvalContext, EventView, ProfileView, Program, Scalar, Schema};
use rayon::prelude::*;

const PROFILES: usize = 1_000_000;
const EVENTS_PER_PROFILE: usize = 20;
const DAY_MS: i64 = 86_400_000;
/// 2026-01-31T00:00:00Z.
const NOW_MS: i64 = 1_769_817_600_000;
const EVENT_NAMES: [&str; 4] = ["Page Viewed", "Product Added", "Order Completed", "Ticket Opened"];
const COUNTRIES: [&str; 5] = ["AU", "NZ", "US", "GB", "DE"];

struct Event {
    timestamp_ms: i64,
    /// Index into [`EVENT_NAMES`].
    name: u8,
    revenue: f64,
}

impl EventView for Event {
    fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    fn property(&self, name: &str) -> Scalar<'_> {
        match name {
            "revenue" => Scalar::Number(self.revenue),
            _ => Scalar::Null,
        }
    }
}

struct Profile {
    country: &'static str,
    email: Option<String>,
    /// Oldest first.
    events: Vec<Event>,
}

impl ProfileView for Profile {
    type Event = Event;

    fn trait_value(&self, name: &str) -> Scalar<'_> {
        match name {
            "country" => Scalar::Str(self.country),
            "email" => self.email.as_deref().map_or(Scalar::Null, Scalar::Str),
            _ => Scalar::Null,
        }
    }

    fn computed(&self, _name: &str) -> Scalar<'_> {
        Scalar::Null
    }

    fn in_segment(&self, _name: &str) -> bool {
        false
    }

    fn event_name<'a>(&'a self, event: &'a Event) -> &'a str {
        EVENT_NAMES[usize::from(event.name)]
    }

    fn events<'a>(&'a self, name: Option<&'a str>) -> impl DoubleEndedIterator<Item = &'a Event> + 'a {
        // An unknown name selects nothing: u8::MAX is no event's index.
        let wanted = name.map(|name| EVENT_NAMES.iter().position(|known| *known == name).map_or(u8::MAX, |index| index as u8));
        self.events.iter().filter(move |event| wanted.is_none_or(|wanted| event.name == wanted))
    }
}

/// xorshift64*: deterministic and dependency-free.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn synthetic_profiles() -> Vec<Profile> {
    let mut random = Random(0x5eed_cafe_f00d_1234);
    (0..PROFILES)
        .map(|index| {
            let mut events: Vec<Event> = (0..EVENTS_PER_PROFILE)
                .map(|_| Event {
                    // Over the past two years.
                    timestamp_ms: NOW_MS - random.below(730 * DAY_MS as u64) as i64,
                    name: [0, 0, 0, 1, 1, 2, 2, 3][random.below(8) as usize],
                    revenue: random.below(20_000) as f64 / 100.0,
                })
                .collect();
            events.sort_by_key(|event| event.timestamp_ms);
            Profile {
                country: COUNTRIES[random.below(COUNTRIES.len() as u64) as usize],
                email: (random.below(10) < 8).then(|| format!("customer{index}@example.com")),
                events,
            }
        })
        .collect()
}

/// The segment written by hand, to check the program's answer.
fn hand_written(profile: &Profile) -> bool {
    let window_start = NOW_MS - 90 * DAY_MS;
    let recent_orders =
        profile.events.iter().filter(|event| event.name == 2 && event.timestamp_ms > window_start && event.timestamp_ms <= NOW_MS).count();
    profile.country == "AU" && recent_orders >= 2 && profile.email.is_some()
}

/// The best of three runs.
fn best_of_three(run: impl Fn() -> usize) -> (usize, Duration) {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            let matched = run();
            (matched, started.elapsed())
        })
        .min_by_key(|(_, elapsed)| *elapsed)
        .unwrap_or_default()
}

fn measure(label: &str, source: &str, profiles: &[Profile], expected: usize) {
    let program: Program = compile_segment(source, &Schema::new()).unwrap_or_else(|error| panic!("{}", error.render(source)));
    let context = EvalContext::at(NOW_MS);
    let (single_matched, single) = best_of_three(|| profiles.iter().filter(|profile| program.matches(*profile, &context)).count());
    let (parallel_matched, parallel) = best_of_three(|| profiles.par_iter().filter(|profile| program.matches(*profile, &context)).count());
    assert_eq!((single_matched, parallel_matched), (expected, expected), "{label}: the program disagrees with the hand-written segment");
    println!("{label}: `{source}`");
    println!(
        "  {expected} matches; 1 thread {:.1} ms ({:.0} ns/profile); rayon on {} threads {:.1} ms",
        single.as_secs_f64() * 1e3,
        single.as_nanos() as f64 / PROFILES as f64,
        rayon::current_num_threads(),
        parallel.as_secs_f64() * 1e3,
    );
}

fn main() {
    let started = Instant::now();
    let profiles = synthetic_profiles();
    println!("built {PROFILES} profiles with {} events in {:.1} s", PROFILES * EVENTS_PER_PROFILE, started.elapsed().as_secs_f64());
    let expected = profiles.iter().filter(|profile| hand_written(profile)).count();

    let (hand_matched, hand) = best_of_three(|| profiles.iter().filter(|profile| hand_written(profile)).count());
    assert_eq!(hand_matched, expected);
    println!("hand-written Rust baseline: 1 thread {:.1} ms", hand.as_secs_f64() * 1e3);

    measure(
        "trait first",
        r#"traits.country == "AU" and count("Order Completed", last 90 days) >= 2 and exists(traits.email)"#,
        &profiles,
        expected,
    );
    // The behavioural condition first: every profile's events are read.
    measure(
        "events first",
        r#"count("Order Completed", last 90 days) >= 2 and traits.country == "AU" and exists(traits.email)"#,
        &profiles,
        expected,
    );
}
