//! Measures, pure: A/B readouts that agree with GrowthBook's engine on the same sufficient
//! statistics ([`experiment`]), and funnels over profiles' unified timelines ([`funnel`]),
//! defined in TOML and judged on any host's profiles in the segment language ([`definition`]).
//! No database and no async: the host gathers each profile's events and each variant's
//! sums, and this crate does the arithmetic.

pub mod definition;
pub mod experiment;
pub mod funnel;
