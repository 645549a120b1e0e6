//! Measures, pure: A/B readouts that agree with GrowthBook's engine on the same sufficient
//! statistics ([`experiment`]); funnels over profiles' unified timelines ([`funnel`]),
//! defined in TOML and judged on any host's profiles in the segment language ([`definition`]);
//! customer health scores with context and alerts by exception ([`health`]), judged against
//! what happened beside a logistic baseline ([`classify`]); NPS with its interval ([`nps`]);
//! and Reichheld's earned growth ([`growth`]).
//! No database and no async: the host gathers each profile's events and each variant's
//! sums, and this crate does the arithmetic.

pub mod classify;
pub mod definition;
pub mod experiment;
pub mod funnel;
pub mod growth;
pub mod health;
pub mod nps;
