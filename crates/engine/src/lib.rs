//! Archipel's engine: turns codec + providers + meta into the five promises.
//!
//! Built so far: [`placement`] — bucket policies (k, m, write quorum, placement rules over
//! provider labels), their validation, and the choice of which providers hold an object's
//! shards. The PUT/GET pipelines, degraded and hedged reads, multipart, GC and the background
//! jobs come next (issue 5).

pub mod placement;

pub use placement::{
    Placement, PlacementError, PlacementReport, PlacementRules, Policy, ProviderInfo, ProviderState,
};
