//! The server's surface as the contract fixed it: definitions exactly as
//! clients see them, each with its hash and the policy the runtime enforces.
//! The types live in `charter-surface`, which the generator writes with, so
//! the two sides cannot disagree on a field or a value.

pub use charter_surface::*;
